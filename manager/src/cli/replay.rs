//! `reflex replay RULEBOOK FILE`: runs a `reflex watch --json` recording through a rulebook
//! with the real compiler and engine in process, and prints what would fire: one line per
//! reaction with its rule, group and rendered arguments, then a summary. Exit status 0, or 1
//! when the rulebook does not compile or a line of the recording is not an event.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::testing::replay;

/// Arguments of `reflex replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A plugin directory (`<DIR>/reactions/<module>/<function>`); repeatable. Default: the
    /// `plugins/` directory beside the rulebook.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugins: Vec<PathBuf>,
    /// The rulebook: a file, or a directory whose `*.yml` / `*.yaml` files form one.
    #[arg(value_name = "RULEBOOK")]
    pub rulebook: PathBuf,
    /// The recording: lines of `reflex watch --json`.
    #[arg(value_name = "FILE")]
    pub recording: PathBuf,
}

/// Runs `reflex replay`.
pub fn main(args: &ReplayArgs) -> ExitCode {
    super::status(run(
        args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}

/// Replays as `args` say, firings and the summary to `out`, problems to `err`; returns
/// whether every line was an event and the rulebook compiled.
pub fn run(args: &ReplayArgs, out: &mut impl Write, err: &mut impl Write) -> bool {
    let Some(compiled) = super::compile(&args.rulebook, &args.plugins, err) else {
        return false;
    };
    let name = args.recording.display().to_string();
    let text = match std::fs::read_to_string(&args.recording) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "{name}:1:1: cannot read: {e}");
            return false;
        }
    };
    let tally = replay::replay(&compiled, &name, &text, out, err);
    let _ = writeln!(
        out,
        "replayed {} events: {} firings, {} lines refused",
        tally.events, tally.firings, tally.refused
    );
    tally.refused == 0
}
