//! `reflex check`: compile rulebooks and report.
//!
//! Valid: one line on stdout, `ok: <rulebooks>: <summary>` (counts summed over all the
//! rulebooks given), exit status 0. Invalid: every `file:line:col: message` on stderr, exit
//! status 1. Each rulebook is compiled on its own, against the `--plugins` directories or,
//! when none is given, the `plugins/` directory beside it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use reflex_rules::Summary;

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
    super::status(check(
        args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}

/// Compiles every rulebook of `args`, writing the summary to `out` or the diagnostics to
/// `err`; returns whether all were valid.
pub fn check(args: &CheckArgs, out: &mut impl Write, err: &mut impl Write) -> bool {
    let mut total = Summary::default();
    let mut valid = true;
    for path in &args.rulebooks {
        match super::compile(path, &args.plugins, err) {
            Some(compiled) => total += compiled.summary(),
            None => valid = false,
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
