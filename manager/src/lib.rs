//! The reflex Manager, its Publisher, and the pieces of the `reflex` command-line tool.
//!
//! The Manager ([`daemon`]) receives events on a ZeroMQ PULL socket, evaluates them against a
//! compiled rulebook with the core engine, performs local reactions on a pool of workers
//! ([`reactions`]) and hands remote ones, as actions, to the Publisher ([`publisher`]): a
//! separate process it starts and supervises, which broadcasts them to Actors. Everything it
//! sees and does is published on a watch socket ([`watch`]) and counted ([`metrics`]).
//!
//! * [`daemon`]: `reflex manager` — configuration, loading, the event thread.
//! * [`actions`]: action ids, known Actors, target expansion, the outbox to the Publisher.
//! * [`publisher`]: `reflex publisher` and its supervision.
//! * [`reactions`]: the local reactions, one module each, and their worker pool.
//! * [`render`]: reaction arguments rendered to text and JSON.
//! * Programs (`reactions.exec.run`, plugins) run through `reflex_agent::exec`, shared with
//!   the Actor: no shell, a timeout killing the process group, bounded output.
//! * [`metrics`]: counters and the `/metrics` HTTP endpoint.
//! * [`send`] and [`watch`]: `reflex send` and `reflex watch`.
//! * [`demo`]: `reflex demo`, everything on loopback with the example rulebook.
//! * [`state`] and [`reload`]: registers kept across restarts under `--state`, and rulebook
//!   reloads (SIGHUP, `reflex reload`).
//! * [`keys`] and [`trust`]: `reflex keys gen`, and what the Manager signs with and believes.
//!
//! The protocol between the processes is described in `docs/architecture.md`, and how to run
//! them in `docs/operations.md`.
#![deny(missing_docs)]

pub mod actions;
pub mod clock;
pub mod daemon;
pub mod demo;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod publisher;
pub mod reactions;
pub mod reload;
pub mod render;
pub mod send;
pub mod state;
pub mod trust;
pub mod watch;

pub use error::Error;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Sends logs (`tracing`) to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A flag set by SIGINT, SIGTERM or SIGHUP, for a clean stop. Installs the process's signal
/// handler, so call it once per process.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    if let Err(e) = ctrlc::set_handler(move || set.store(true, Relaxed)) {
        tracing::warn!(error = %e, "cannot install the signal handler");
    }
    flag
}

/// The Manager's signals: SIGINT and SIGTERM set the first flag (stop), SIGHUP the second
/// (reload the rulebook). A second SIGINT or SIGTERM while stopping exits at once (status 1).
pub fn manager_signals() -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        let conditional = signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone());
        let plain = signal_hook::flag::register(sig, stop.clone());
        if let Err(e) = conditional.and(plain) {
            tracing::warn!(error = %e, signal = sig, "cannot install the signal handler");
        }
    }
    if let Err(e) = signal_hook::flag::register(SIGHUP, hup.clone()) {
        tracing::warn!(error = %e, "cannot install the SIGHUP handler; reload with POST /reload");
    }
    (stop, hup)
}
