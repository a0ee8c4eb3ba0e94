//! `reflex manager`: the Manager's command line, turned into a [`Config`] in one place.

use std::path::PathBuf;

use crate::Error;
use crate::daemon::DEFAULT_ACTION_TTL_S;
use crate::daemon::{
    self, Config, DEFAULT_EVENTS, DEFAULT_ID, DEFAULT_METRICS, DEFAULT_PUBLISH, DEFAULT_QUEUE,
    DEFAULT_WATCH, DEFAULT_WORKERS,
};
use reflex_core::host::process;

/// Arguments of `reflex manager`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManagerArgs {
    /// The rulebook: a YAML file, or a directory whose `*.yml` / `*.yaml` files form one
    /// rulebook.
    #[arg(long, value_name = "PATH")]
    pub rules: PathBuf,
    /// A plugin directory (`<DIR>/reactions/<module>/<function>`); repeatable. Default: the
    /// `plugins/` directory beside the rulebook.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugins: Vec<PathBuf>,
    /// Where events, results and heartbeats arrive (PULL, bound).
    #[arg(long, value_name = "ENDPOINT", default_value = DEFAULT_EVENTS)]
    pub events: String,
    /// Where the Publisher broadcasts actions (PUB, bound by the Publisher).
    #[arg(long, value_name = "ENDPOINT", default_value = DEFAULT_PUBLISH)]
    pub publish: String,
    /// Where everything the Manager sees and does is published (PUB, bound).
    #[arg(long, value_name = "ENDPOINT", default_value = DEFAULT_WATCH)]
    pub watch: String,
    /// The Manager-to-Publisher socket (PUSH, bound). Default:
    /// `ipc://$TMPDIR/reflex-manager-<pid>/feed.ipc` (a directory of mode 0700).
    #[arg(long, value_name = "ENDPOINT")]
    pub feed: Option<String>,
    /// Keep register state in DIR (snapshot and log), restored at start, so a restart or a
    /// crash loses no window, armed edge or cooldown; also where `manager.pid` is written.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Address of the Prometheus endpoint (`GET /metrics`), the live dashboard (`GET /`) and
    /// `POST /reload`; `off` for none.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_METRICS)]
    pub metrics: String,
    /// Take events over HTTP on HOST:PORT: `POST /events` (JSON) and `POST /alertmanager`
    /// (the Alertmanager webhook), each with a bearer token from the --trust directory
    /// (`reflex keys gen --token`). Off by default.
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// The Manager's id, the source of its actions.
    #[arg(long, default_value = DEFAULT_ID)]
    pub id: String,
    /// Worker threads performing local reactions.
    #[arg(long, default_value_t = DEFAULT_WORKERS, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Capacity of each queue: the events socket's receive queue, local reactions waiting
    /// for a worker, actions waiting for the Publisher.
    #[arg(long, default_value_t = DEFAULT_QUEUE, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue: u32,
    /// The Manager's Ed25519 secret key (`reflex keys gen --name manager`): signs every
    /// action.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// The allow-list: a directory of `<id>.pub` (an agent's public key) and `<id>.mac` (a
    /// device's key) files, and `<id>.token` files for `--http` and `POST /reload`. Messages
    /// from other sources, unsigned, forged or replayed ones are dropped and counted.
    #[arg(long, value_name = "DIR")]
    pub trust: Option<PathBuf>,
    /// Lab mode: run without --key and --trust, accepting unauthenticated messages from
    /// sources without a key. Warned about loudly, and exposed as `reflex_insecure 1`.
    #[arg(long)]
    pub insecure: bool,
    /// Seconds an action is valid: an Actor refuses it later, and the Manager reports it
    /// expired (`/reflex/expired/<target>`) when no result came back by then.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ACTION_TTL_S, value_parser = clap::value_parser!(u32).range(1..))]
    pub action_ttl: u32,
    /// Partitioned deployment (NATS JetStream), boxed: most Managers do not use it.
    #[cfg(feature = "nats")]
    #[command(flatten)]
    pub scale: Box<ScaleArgs>,
}

/// The flags of `reflex manager --nats`.
#[cfg(feature = "nats")]
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Join a partitioned deployment on this NATS server (JetStream enabled) instead of
    /// binding the ZeroMQ sockets; `reflex ingest` is its edge.
    #[arg(long, value_name = "URL", requires = "partitions")]
    pub nats: Option<String>,
    /// Partitions of the deployment (with --nats).
    #[arg(long, requires = "nats", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: Option<u32>,
    /// Prefix of the deployment's streams, subjects and buckets (with --nats).
    #[arg(long, default_value = "reflex")]
    pub prefix: String,
    /// How long a partition lease lasts without renewal, in milliseconds (with --nats).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(200..))]
    pub lease_ms: u64,
}

impl ManagerArgs {
    /// The configuration these arguments describe, starting this executable as the
    /// Publisher.
    pub fn config(&self) -> Result<Config, Error> {
        let exe =
            std::env::current_exe().map_err(|e| Error::io("find the reflex executable", e))?;
        Ok(Config {
            rules: self.rules.clone(),
            plugins: self.plugins.clone(),
            events: self.events.clone(),
            publish: self.publish.clone(),
            watch: self.watch.clone(),
            feed: self.feed.clone(),
            state: self.state.clone(),
            metrics: (self.metrics != "off").then(|| self.metrics.clone()),
            http: self.http.clone(),
            id: self.id.clone(),
            workers: usize::from(self.workers),
            queue: self.queue as usize,
            publisher: Some(exe),
            key: self.key.clone(),
            trust: self.trust.clone(),
            insecure: self.insecure,
            action_ttl_ms: u64::from(self.action_ttl) * 1000,
        })
    }
}

/// Runs `reflex manager`: exit status 0 after a clean stop (SIGINT, SIGTERM), 1 when the
/// rulebook is invalid or a socket cannot be bound. SIGHUP reloads the rulebook.
pub fn main(args: &ManagerArgs) -> std::process::ExitCode {
    let shutdown = process::stop_flag(1).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot install the signal handler");
        std::sync::Arc::default()
    });
    let reload = process::reload_flag().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot install the SIGHUP handler; reload with POST /reload");
        std::sync::Arc::default()
    });
    #[cfg(feature = "nats")]
    if let (Some(url), Some(partitions)) = (&args.scale.nats, args.scale.partitions) {
        let result = args.config().and_then(|manager| {
            let config = crate::scale::owner::OwnerConfig {
                url: url.clone(),
                partitions,
                names: crate::scale::names::Names::new(&args.scale.prefix),
                lease: std::time::Duration::from_millis(args.scale.lease_ms),
                checkpoint_every: std::time::Duration::from_millis(500),
                manager,
            };
            crate::scale::owner::run(&config, &shutdown)
        });
        return finish(result);
    }
    let result = args.config().and_then(|c| daemon::run(c, shutdown, reload));
    finish(result)
}

/// The exit status of a Manager that ended with `result`.
fn finish(result: Result<(), Error>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Error::Rulebook(errors)) => {
            for d in &errors {
                eprintln!("{d}");
            }
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("reflex manager: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        args: ManagerArgs,
    }

    #[test]
    fn default_feed_is_a_per_process_ipc_socket() {
        let line = Line::try_parse_from(["reflex", "--rules", "rules.yml"]).unwrap();
        let c = line.args.config().unwrap();
        let feed = c.feed_endpoint();
        assert!(feed.starts_with("ipc://"));
        assert!(feed.ends_with(&format!("reflex-manager-{}/feed.ipc", std::process::id())));
    }
}
