//! `reflex test RULEBOOK TESTS...`: runs rule test files against a rulebook on a virtual
//! clock, with the real compiler and engine in process. Exit status 0 when every expectation
//! holds; 1 with a `file:line:col: expected ..., got ...` line for each that does not (or with
//! the rulebook's or a test file's own errors). `--explain` describes every evaluation.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::testing::{file, run};

/// Arguments of `reflex test`.
#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// A plugin directory (`<DIR>/reactions/<module>/<function>`); repeatable. Default: the
    /// `plugins/` directory beside the rulebook.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugins: Vec<PathBuf>,
    /// For each event, print every matched rule's register value, condition, chain terms and
    /// why it fired or did not.
    #[arg(long)]
    pub explain: bool,
    /// The rulebook: a file, or a directory whose `*.yml` / `*.yaml` files form one.
    #[arg(value_name = "RULEBOOK")]
    pub rulebook: PathBuf,
    /// Test files.
    #[arg(value_name = "TESTS", required = true)]
    pub tests: Vec<PathBuf>,
}

/// Runs `reflex test`.
pub fn main(args: &TestArgs) -> ExitCode {
    super::status(test(args, &mut std::io::stdout().lock()))
}

/// Runs every test file of `args`, writing results to `out`; returns whether all passed.
pub fn test(args: &TestArgs, out: &mut impl Write) -> bool {
    let Some(compiled) = super::compile(&args.rulebook, &args.plugins, out) else {
        return false;
    };
    let mut ok = true;
    let mut total = run::Tally::default();
    for path in &args.tests {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(out, "{name}:1:1: cannot read: {e}");
                ok = false;
                continue;
            }
        };
        let cases = match file::parse(&text) {
            Ok(c) => c,
            Err(problems) => {
                for (pos, message) in problems {
                    let _ = writeln!(out, "{name}:{}:{}: {message}", pos.line, pos.col);
                }
                ok = false;
                continue;
            }
        };
        let tally = run::run(&compiled, &name, &cases, args.explain, out);
        ok &= tally.failed == 0;
        total.cases += tally.cases;
        total.events += tally.events;
        total.checked += tally.checked;
        total.failed += tally.failed;
    }
    let verdict = if ok { "ok" } else { "FAILED" };
    let _ = writeln!(
        out,
        "{verdict}: {} cases, {} events, {} expectations, {} failed",
        total.cases, total.events, total.checked, total.failed
    );
    ok
}
