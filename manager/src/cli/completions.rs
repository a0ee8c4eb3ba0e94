//! `reflex completions SHELL`: the shell completion script of `reflex`, generated from the
//! same command-line definition the binary parses, so it never lags behind a new flag.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// Arguments of `reflex completions`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Runs `reflex completions`: prints the script on stdout, exit 0 (1 when stdout cannot be
/// written).
///
/// Install it where the shell looks, for example
/// `reflex completions bash > /usr/share/bash-completion/completions/reflex`.
pub fn main(args: &CompletionsArgs) -> ExitCode {
    let mut cmd = visible(super::Cli::command());
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "reflex", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reflex completions: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cmd` without its hidden subcommands (the Publisher, started by the Manager alone), which
/// some generators would offer.
fn visible(cmd: clap::Command) -> clap::Command {
    let shown: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut bare = clap::Command::new(cmd.get_name().to_string())
        .version(cmd.get_version().unwrap_or_default().to_string())
        .subcommand_required(true)
        .subcommands(shown);
    if let Some(about) = cmd.get_about() {
        bare = bare.about(about.clone());
    }
    bare
}
