//! `reflex check`: compile rulebooks and report.
//!
//! Valid: one line on stdout, `ok: <rulebooks>: <summary>` (counts summed over all the
//! rulebooks given), exit status 0. Invalid: every `file:line:col: message` on stderr, exit
//! status 1. Each rulebook is compiled on its own, against the `--plugins` directories or,
//! when none is given, the `plugins/` directory beside it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use reflex_rules::{Catalog, Summary, compile_path, default_plugin_dir};

use clap::Args;

/// Arguments of `reflex check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// A plugin directory (`<DIR>/reactions/<module>/<function>`); repeatable. Default: the
    /// `plugins/` directory beside each rulebook.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugins: Vec<PathBuf>,
    /// Rulebook files, or directories whose `*.yml` / `*.yaml` files form one rulebook.
    #[arg(value_name = "RULEBOOK", required = true)]
    pub rulebooks: Vec<PathBuf>,
}

/// Runs `reflex check`.
pub fn main(args: &CheckArgs) -> ExitCode {
    let ok = check(
        args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Compiles every rulebook of `args`, writing the summary to `out` or the diagnostics to
/// `err`; returns whether all were valid.
pub fn check(args: &CheckArgs, out: &mut impl Write, err: &mut impl Write) -> bool {
    let mut total = Summary::default();
    let mut valid = true;
    for path in &args.rulebooks {
        let dirs = if args.plugins.is_empty() {
            vec![default_plugin_dir(path)]
        } else {
            args.plugins.clone()
        };
        match compile_path(path, &Catalog::with_plugins(&dirs)) {
            Ok(compiled) => total += compiled.summary(),
            Err(errors) => {
                valid = false;
                for d in &errors {
                    let _ = writeln!(err, "{d}");
                }
            }
        }
    }
    if valid {
        let names: Vec<String> = args
            .rulebooks
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let _ = writeln!(out, "ok: {}: {total}", names.join(", "));
    }
    valid
}
