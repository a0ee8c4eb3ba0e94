//! The command line: one subcommand per variant of [`Command`], each in its own file, which
//! holds its arguments and its `main`. Adding a subcommand is adding a file and a variant.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod check;
pub mod completions;
pub mod demo;
#[cfg(feature = "nats")]
pub mod ingest;
pub mod keys;
pub mod man;
pub mod manager;
pub mod publisher;
pub mod reload;
pub mod replay;
pub mod send;
pub mod test;
pub mod watch;

/// reflex: event-driven infrastructure automation.
#[derive(Debug, Parser)]
#[command(name = "reflex", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate rulebooks: one summary line and exit 0 when valid, `file:line:col: message`
    /// lines on stderr and exit 1 when not.
    Check(check::CheckArgs),
    /// Run the Manager and its Publisher: receive events, evaluate the rulebook, react.
    Manager(manager::ManagerArgs),
    /// The Publisher process, started and supervised by `reflex manager`.
    #[command(hide = true)]
    Publisher(publisher::PublisherArgs),
    /// Send one event to the Manager.
    Send(send::SendArgs),
    /// Print the Manager's live stream of events and reactions, one line each.
    Watch(watch::WatchArgs),
    /// Reload the running Manager's rulebook: ask it over its metrics endpoint and print the
    /// outcome (default), or send it SIGHUP (`--pid`, `--state`).
    Reload(reload::ReloadArgs),
    /// Run the Manager, its Publisher, an Actor with host beacons and simulated hosts on
    /// loopback with the example rulebook, printing the live stream; Ctrl-C stops everything.
    Demo(demo::DemoArgs),
    /// Generate keys: an Ed25519 key pair for the Manager or an agent, or a device's HMAC
    /// key (`reflex keys gen`).
    Keys(keys::KeysArgs),
    /// The stateless edge of a partitioned deployment: check events from the ZeroMQ edge
    /// and publish them in batches to the NATS partition streams.
    #[cfg(feature = "nats")]
    Ingest(ingest::IngestArgs),
    /// Run rule test files against a rulebook on a virtual clock: exit 0, or 1 with a
    /// `file:line:col: expected ..., got ...` line per failed expectation.
    Test(test::TestArgs),
    /// Run a `reflex watch --json` recording through a rulebook on a virtual clock and print
    /// what would fire: rule, group and rendered reaction arguments.
    Replay(replay::ReplayArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    Completions(completions::CompletionsArgs),
    /// Print the manual page reflex(1), or write one page per command into a directory.
    Man(man::ManArgs),
}

/// Runs `reflex` with the process's arguments: logs to stderr, then the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    reflex_core::host::process::init_logging();
    match cli.command {
        Command::Check(args) => check::main(&args),
        Command::Manager(args) => manager::main(&args),
        Command::Publisher(args) => publisher::main(&args),
        Command::Send(args) => send::main(&args),
        Command::Watch(args) => watch::main(&args),
        Command::Reload(args) => reload::main(&args),
        Command::Demo(args) => demo::main(&args),
        Command::Keys(args) => keys::main(&args),
        #[cfg(feature = "nats")]
        Command::Ingest(args) => ingest::main(&args),
        Command::Test(args) => test::main(&args),
        Command::Replay(args) => replay::main(&args),
        Command::Completions(args) => completions::main(&args),
        Command::Man(args) => man::main(&args),
    }
}

/// Compiles `rulebook` with the plugin directories `plugins`, or the `plugins/` directory
/// beside it when none is given; the diagnostics go to `err`, one line each.
fn compile(
    rulebook: &std::path::Path,
    plugins: &[std::path::PathBuf],
    err: &mut impl std::io::Write,
) -> Option<reflex_rules::Compiled> {
    let dirs = if plugins.is_empty() {
        vec![reflex_rules::default_plugin_dir(rulebook)]
    } else {
        plugins.to_vec()
    };
    match reflex_rules::compile_path(rulebook, &reflex_rules::Catalog::with_plugins(&dirs)) {
        Ok(compiled) => Some(compiled),
        Err(errors) => {
            for d in &errors {
                let _ = writeln!(err, "{d}");
            }
            None
        }
    }
}

/// Exit status 0 for `true`, 1 for `false`.
fn status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A flag SIGINT, SIGTERM and SIGHUP set, for a subcommand that stops cleanly; a second
/// signal exits at once (status 1). A handler that cannot be installed is logged.
fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use reflex_core::host::process;
    let stop = process::stop_flag(1).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot install the signal handler");
        std::sync::Arc::default()
    });
    if let Err(e) = process::stop_on_hangup(&stop, 1) {
        tracing::warn!(error = %e, "cannot install the SIGHUP handler");
    }
    stop
}
