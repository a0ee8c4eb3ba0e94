//! `reflex man`: the manual pages of `reflex`, generated from the same command-line
//! definition the binary parses: `reflex(1)` on stdout, or with `--out DIR` one page per
//! command (`reflex.1`, `reflex-manager.1`, `reflex-keys-gen.1`, ...) written into DIR.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

/// Arguments of `reflex man`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Write one page per command into DIR (created when missing) and print their paths,
    /// instead of printing reflex(1).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `reflex man`: exit 0 with the page(s) written, 1 with a message.
pub fn main(args: &ManArgs) -> ExitCode {
    let mut cmd = super::Cli::command();
    cmd.build();
    let result = match &args.out {
        None => render(&cmd, &mut std::io::stdout().lock()),
        Some(dir) => write_pages(&cmd, dir).map(|paths| {
            for path in paths {
                println!("{}", path.display());
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reflex man: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Renders the page of `cmd` into `out`.
fn render(cmd: &clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd.clone()).render(out)
}

/// Writes the page of `cmd` and of each of its visible subcommands, nested ones included,
/// into `dir`; returns the paths written.
fn write_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let mut pending = vec![(cmd.get_name().to_string(), cmd.clone())];
    while let Some((page, cmd)) = pending.pop() {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() == "help" {
                continue;
            }
            let name = format!("{page}-{}", sub.get_name());
            let page = sub.clone().name(name.clone()).version(version.clone());
            pending.push((name, page));
        }
        let path = dir.join(format!("{page}.1"));
        let mut file = std::fs::File::create(&path)?;
        render(&cmd, &mut file)?;
        written.push(path);
    }
    written.sort();
    Ok(written)
}
