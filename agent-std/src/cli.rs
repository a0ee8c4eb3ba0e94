//! The command line: the Actor and beacons by default, other modes as subcommands.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
pub enum Command {}

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
}

impl Cli {
    /// Runs the chosen mode until SIGINT or SIGTERM.
    pub fn run(self) -> Result<(), Error> {
        match self.command {
            None => run_actor(self.actor),
            Some(command) => match command {},
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
        Ok(config)
    }
}

fn run_actor(args: ActorArgs) -> Result<(), Error> {
    let config = args.config()?;
    reflex_agent::run(config, shutdown_on_signal()?)
}

/// A flag set by SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> Result<Arc<AtomicBool>, Error> {
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            // A second signal: the user insists.
            std::process::exit(130);
        }
    })
    .map_err(|e| Error::ConfigInvalid(format!("cannot handle SIGINT/SIGTERM: {e}")))?;
    Ok(shutdown)
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
