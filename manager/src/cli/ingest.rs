//! `reflex ingest`: the stateless ZeroMQ edge of a partitioned deployment
//! (`crate::scale::ingest`).

use std::path::PathBuf;
use std::time::Duration;

use crate::Error;
use crate::daemon::{DEFAULT_EVENTS, DEFAULT_QUEUE};
use crate::scale::ingest::{self, IngestConfig};
use crate::scale::names::Names;

/// Arguments of `reflex ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// The NATS server (JetStream enabled).
    #[arg(long, value_name = "URL")]
    pub nats: String,
    /// Partitions of the deployment: the same number for every ingest and Manager.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: u32,
    /// Prefix of the deployment's streams, subjects and buckets.
    #[arg(long, default_value = "reflex")]
    pub prefix: String,
    /// Where events, results and heartbeats arrive (PULL, bound).
    #[arg(long, value_name = "ENDPOINT", default_value = DEFAULT_EVENTS)]
    pub events: String,
    /// Most events in one message of a partition stream.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Longest an event waits for its batch to fill, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// The allow-list directory, as for `reflex manager --trust`.
    #[arg(long, value_name = "DIR")]
    pub trust: Option<PathBuf>,
    /// Lab mode: accept unauthenticated messages from sources without a key.
    #[arg(long)]
    pub insecure: bool,
    /// This ingest's id, the start of its message ids.
    #[arg(long, default_value = "ingest")]
    pub id: String,
    /// Capacity of the events socket's receive queue.
    #[arg(long, default_value_t = DEFAULT_QUEUE)]
    pub queue: u32,
}

/// Runs `reflex ingest`: exit 0 after a clean stop (SIGINT, SIGTERM), 1 on a failure.
pub fn main(args: &IngestArgs) -> std::process::ExitCode {
    let shutdown = super::stop_on_signals();
    let config = IngestConfig {
        url: args.nats.clone(),
        partitions: args.partitions,
        names: Names::new(&args.prefix),
        events: args.events.clone(),
        batch: args.batch as usize,
        linger: Duration::from_millis(args.linger_ms),
        trust: args.trust.clone(),
        insecure: args.insecure,
        id: args.id.clone(),
        queue: args.queue as usize,
    };
    match ingest::run(&config, &shutdown) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

fn report(e: &Error) {
    tracing::error!("{e}");
    eprintln!("reflex ingest: {e}");
}
