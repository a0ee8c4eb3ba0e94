//! The command line: one subcommand per variant of [`Command`], each run by its own module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    Check(CheckArgs),
    /// Run the Manager and its Publisher: receive events, evaluate the rulebook, react.
    Manager(reflex_manager::daemon::ManagerArgs),
    /// The Publisher process, started and supervised by `reflex manager`.
    #[command(hide = true)]
    Publisher(reflex_manager::publisher::PublisherArgs),
    /// Send one event to the Manager.
    Send(reflex_manager::send::SendArgs),
    /// Print the Manager's live stream of events and reactions, one line each.
    Watch(reflex_manager::watch::WatchArgs),
    /// Reload the running Manager's rulebook: ask it over its metrics endpoint and print the
    /// outcome (default), or send it SIGHUP (`--pid`, `--state`).
    Reload(reflex_manager::reload::ReloadArgs),
    /// Run the Manager, its Publisher, an Actor with host beacons and simulated hosts on
    /// loopback with the example rulebook, printing the live stream; Ctrl-C stops everything.
    Demo(reflex_manager::demo::DemoArgs),
    /// Generate keys: an Ed25519 key pair for the Manager or an agent, or a device's HMAC
    /// key (`reflex keys gen`).
    Keys(reflex_manager::keys::KeysArgs),
}

/// Arguments of `reflex check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A plugin directory (`<DIR>/reactions/<module>/<function>`); repeatable. Default: the
    /// `plugins/` directory beside each rulebook.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugins: Vec<PathBuf>,
    /// Rulebook files, or directories whose `*.yml` / `*.yaml` files form one rulebook.
    #[arg(value_name = "RULEBOOK", required = true)]
    pub rulebooks: Vec<PathBuf>,
}
