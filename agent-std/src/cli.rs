//! The command line: the Actor and beacons by default, other modes as subcommands.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Args, Parser, Subcommand};
use reflex_agent::{AgentConfig, Error};

/// The reflex host agent: performs allow-listed actions from the Publisher and runs the
/// configured host beacons, reporting to the Manager.
#[derive(Debug, Parser)]
#[command(name = "reflex-agent", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Another mode than the default Actor and beacons.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The default mode's options.
    #[command(flatten)]
    pub actor: ActorArgs,
}

/// The modes other than the default one.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serial gateway: forwards a device's framed events to the Manager and its actions down
    /// the line (see docs/firmware.md).
    Gateway(GatewayArgs),
}

/// Options of `reflex-agent gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The serial line: a tty such as /dev/ttyUSB0, or a pseudo-terminal.
    #[arg(long, value_name = "PATH")]
    pub serial: PathBuf,
    /// Baud rate of a tty.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// The Manager's events endpoint.
    #[arg(long, value_name = "ENDPOINT", default_value = reflex_core::endpoint::EVENTS)]
    pub manager: String,
    /// The Publisher's endpoint.
    #[arg(long, value_name = "ENDPOINT", default_value = reflex_core::endpoint::PUBLISH)]
    pub publisher: String,
    /// The gateway's id, in its log lines [default: gateway-<file name of PATH>].
    #[arg(long)]
    pub id: Option<String>,
    /// Seconds between two log lines of counters.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub stats_interval: u64,
}

fn run_gateway(args: GatewayArgs) -> Result<(), Error> {
    let mut opts = reflex_agent::gateway::GatewayOptions::new(args.serial);
    opts.baud = args.baud;
    opts.manager = args.manager;
    opts.publisher = args.publisher;
    if let Some(id) = args.id {
        opts.id = id;
    }
    opts.stats_every = std::time::Duration::from_secs(args.stats_interval.max(1));
    reflex_agent::gateway::run(opts, shutdown_on_signal()?).map(|_| ())
}

/// Options of the default mode: the Actor plus the configured host beacons. Flags override
/// the configuration file.
#[derive(Debug, Args)]
pub struct ActorArgs {
    /// This agent's id (overrides `id:` in the configuration).
    #[arg(long)]
    pub id: Option<String>,
    /// The Manager's events endpoint [default: tcp://127.0.0.1:4510].
    #[arg(long, value_name = "ENDPOINT")]
    pub manager: Option<String>,
    /// The Publisher's endpoint [default: tcp://127.0.0.1:4511].
    #[arg(long, value_name = "ENDPOINT")]
    pub publisher: Option<String>,
    /// The configuration file (agent.yml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The plugins directory: <DIR>/reactions/actor/<name> is reactions.actor.<name>.
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// This agent's Ed25519 secret key file, which signs what it sends (overrides `key:`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The Manager's Ed25519 public key file: only actions it signed are performed (overrides
    /// `manager_key:`).
    #[arg(long, value_name = "FILE")]
    pub manager_key: Option<PathBuf>,
    /// Lab mode: perform unsigned actions (sets `insecure: true`; excludes --manager-key).
    #[arg(long)]
    pub insecure: bool,
    /// The Actor's state directory, holding its replay floor (overrides `state_dir:`)
    /// [default: state/ beside the configuration file].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl Cli {
    /// Runs the chosen mode until SIGINT or SIGTERM.
    pub fn run(self) -> Result<(), Error> {
        match self.command {
            None => run_actor(self.actor),
            Some(Command::Gateway(args)) => run_gateway(args),
        }
    }
}

impl ActorArgs {
    /// The configuration file's contents (or the defaults), with the flags applied.
    pub fn config(self) -> Result<AgentConfig, Error> {
        let mut config = match &self.config {
            Some(path) => AgentConfig::from_yaml_file(path)?,
            None => AgentConfig::new(""),
        };
        if let Some(id) = self.id {
            config.id = id;
        }
        if let Some(manager) = self.manager {
            config.manager = manager;
        }
        if let Some(publisher) = self.publisher {
            config.publisher = publisher;
        }
        if let Some(plugins) = self.plugins {
            config.plugins = Some(plugins);
        }
        if let Some(key) = self.key {
            config.key = Some(key);
        }
        if let Some(manager_key) = self.manager_key {
            config.manager_key = Some(manager_key);
        }
        if self.insecure {
            config.insecure = true;
        }
        if let Some(dir) = self.state_dir {
            config.state_dir = Some(dir);
        }
        if config.state_dir.is_none() {
            config.state_dir = self
                .config
                .as_deref()
                .map(|c| c.parent().unwrap_or(std::path::Path::new("")).join("state"));
        }
        Ok(config)
    }
}

fn run_actor(args: ActorArgs) -> Result<(), Error> {
    let config = args.config()?;
    reflex_agent::run(config, shutdown_on_signal()?)
}

/// A flag set by SIGINT or SIGTERM; a second one exits at once with status 130.
pub fn shutdown_on_signal() -> Result<Arc<AtomicBool>, Error> {
    reflex_core::host::process::stop_flag(130).map_err(|source| Error::System {
        what: "handle SIGINT/SIGTERM",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yml");
        std::fs::write(
            &file,
            "id: from-file\nmanager: tcp://10.0.0.1:1\nheartbeat_s: 7\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "reflex-agent",
            "--config",
            file.to_str().unwrap(),
            "--id",
            "from-flag",
            "--publisher",
            "tcp://10.0.0.2:2",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let c = cli.actor.config().unwrap();
        assert_eq!(c.id, "from-flag");
        assert_eq!(c.manager, "tcp://10.0.0.1:1");
        assert_eq!(c.publisher, "tcp://10.0.0.2:2");
        assert_eq!(c.heartbeat_s, 7);
    }

    #[test]
    fn no_file_means_defaults() {
        let cli = Cli::try_parse_from(["reflex-agent", "--id", "a"]).unwrap();
        let c = cli.actor.config().unwrap();
        assert_eq!(c, AgentConfig::new("a"));
        assert!(Cli::try_parse_from(["reflex-agent", "--bogus"]).is_err());
    }
}
