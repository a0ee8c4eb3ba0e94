//! `reflex-agent`: the reflex host agent. See `docs/agent.md`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    reflex_core::host::process::init_logging();
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reflex-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
