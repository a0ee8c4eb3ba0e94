//! The reflex host agent: an Actor that performs allow-listed actions from the Publisher, and
//! a runner for the host beacons, both reporting to the Manager.
//!
//! The `reflex-agent` binary is a thin layer over [`run`]; other programs (such as
//! `reflex demo`) run an agent in-process the same way:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::sync::atomic::AtomicBool;
//! use reflex_agent::{AgentConfig, run};
//!
//! let config = AgentConfig::from_yaml_file("agent.yml").unwrap();
//! let shutdown = Arc::new(AtomicBool::new(false));
//! // Another thread sets `shutdown` to stop the agent; `run` returns within ~200 ms.
//! run(config, shutdown).unwrap();
//! ```
//!
//! * [`config`] reads `agent.yml`;
//! * [`allow`] holds the allow-list, and says why it is shaped as it is;
//! * [`exec`] (core's `host::exec`, shared with the Manager and the command beacon) runs a
//!   command without a shell, with a timeout and bounded output;
//! * [`actor`] receives, checks and performs actions;
//! * [`recent`] makes repeated actions run at most once;
//! * [`gateway`] joins a device on a serial line to the bus (`reflex-agent gateway`).
//!
//! The protocol (sockets, topics, envelopes) is described in `docs/architecture.md`; the
//! agent's use of it in `docs/agent.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod actor;
pub mod allow;
pub mod config;
mod error;
pub mod floor;
pub use reflex_core::host::exec;
pub mod gateway;
pub mod recent;
mod runner;
mod sender;
mod stats;

pub use config::AgentConfig;
pub use error::Error;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stats::Stats;

/// Runs an agent until `shutdown` is set: the Actor on the calling thread, the beacon runner
/// and the sender on threads of their own.
///
/// The configuration is validated and every beacon built before anything connects, so a bad
/// configuration is an error at once. Afterwards only a broken socket ends the agent early:
/// a Manager or Publisher that goes away is reconnected to by ZeroMQ, and what cannot be sent
/// meanwhile is dropped and counted. Returns within about 200 ms of `shutdown` being set.
pub fn run(config: AgentConfig, shutdown: Arc<AtomicBool>) -> Result<(), Error> {
    config.validate()?;
    let (signer, verifier) = config.load_keys()?;
    let beacons = runner::build(&config.id, &config.beacons)?;
    let floors = match &config.state_dir {
        Some(dir) => {
            let floors = floor::Floors::open(dir)?;
            tracing::info!(
                state_dir = %dir.display(),
                issuers = floors.all().len(),
                "replay floor restored: actions at or below it are replays"
            );
            Some(floors)
        }
        None => {
            tracing::warn!(
                "no state_dir: the replay floor is kept in memory only, so a copy of an action \
                 performed before a restart could run again within its validity"
            );
            None
        }
    };
    if config.insecure {
        tracing::warn!(
            "INSECURE: this agent performs unsigned actions, which anyone who can publish to it \
             can send; {}. For a lab only: give manager_key and key to secure it",
            if signer.is_some() {
                "what it sends is signed"
            } else {
                "what it sends is unsigned"
            }
        );
    }
    let ctx = zmq::Context::new();
    let stats = Arc::new(Stats::default());
    let (outbox, sender) = sender::start(
        &ctx,
        &config.manager,
        &config.id,
        Duration::from_secs(config.heartbeat_s),
        signer,
        stats.clone(),
    )?;
    let started = actor::subscribe(&ctx, &config.publisher, &config.id).and_then(|socket| {
        let runner = runner::start(
            &config.id,
            beacons,
            outbox.clone(),
            shutdown.clone(),
            stats.clone(),
        )?;
        Ok((socket, runner))
    });
    let (socket, runner) = match started {
        Ok(s) => s,
        Err(e) => {
            drop(outbox);
            sender.stop();
            return Err(e);
        }
    };
    tracing::info!(
        "agent {} up: events to {}, actions from {}, {} beacon(s), allow-list: {} run, {} fire_event, {} plugin(s)",
        config.id,
        config.manager,
        config.publisher,
        config.beacons.len(),
        config.allow.run.len(),
        config.allow.fire_event.len(),
        config.allow.plugins.len(),
    );

    let mut actor = actor::Actor::new(&config, outbox, stats.clone(), verifier, floors);
    let result = actor.run(&socket, &shutdown);
    drop(socket);
    shutdown.store(true, Ordering::Relaxed);
    runner.thread().unpark();
    let _ = runner.join();
    drop(actor);
    sender.stop();
    tracing::info!("agent {} stopped: {stats}", config.id);
    result
}
