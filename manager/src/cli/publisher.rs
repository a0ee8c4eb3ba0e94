//! `reflex publisher`: the Publisher process, started and supervised by `reflex manager`.

use crate::actions::publisher;

/// Arguments of `reflex publisher` (started by the Manager; not meant to be run by hand).
#[derive(Debug, Clone, clap::Args)]
pub struct PublisherArgs {
    /// The Manager's feed socket (connected with PULL).
    #[arg(long, value_name = "ENDPOINT")]
    pub feed: String,
    /// Where to broadcast actions (PUB, bound).
    #[arg(long, value_name = "ENDPOINT", default_value = crate::daemon::DEFAULT_PUBLISH)]
    pub publish: String,
    /// The Manager's process id: stop when it is gone.
    #[arg(long, value_name = "PID")]
    pub parent: Option<u32>,
}

/// Runs `reflex publisher`.
pub fn main(args: &PublisherArgs) -> std::process::ExitCode {
    let shutdown = super::stop_on_signals();
    let config = publisher::Config {
        feed: args.feed.clone(),
        publish: args.publish.clone(),
        parent: args.parent,
    };
    match publisher::run(&config, shutdown) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("publisher: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
