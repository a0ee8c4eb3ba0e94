//! The reflex Manager, its Publisher, and the `reflex` command-line tool, laid out by role:
//!
//! * `cli/`: one file per subcommand (`reflex manager`, `publisher`, `send`, `watch`,
//!   `check`, `demo`, `keys`, `reload`), each with its arguments and its `main`.
//! * `daemon/`: the Manager process — its configuration, loading the rulebook, starting its
//!   threads, the event loop (receive → decode → evaluate → dispatch in `event_loop.rs`), the
//!   pure fan-out of firings, watch publishing and the reload server.
//! * `reactions/`: the local reactions, one file each, their arguments and their worker pool.
//! * `actions/`: a firing turned into an action, the Actors the Manager knows, the outbox to
//!   the Publisher, and the Publisher process with its supervision.
//! * `state/`: registers kept across restarts under `--state`: format, restore, writer,
//!   directory.
//! * `http/`: the bounded HTTP server of the metrics address (`/metrics`, the dashboard,
//!   `/reload`) and of `--http` ingest (JSON events, Alertmanager), with bearer tokens.
//! * `metrics/`: every counter, rendered for `/metrics`.
//! * `testing/`: `reflex test`'s test files and their runner on a virtual clock.
//! * `trust.rs`: what the Manager signs with and whom it believes.
//! * `scale/` (feature `nats`): partitioned Managers on NATS JetStream and `reflex ingest`.
//! * host code (clock, signals, logging, key files, sockets, JSON, exec) is core's
//!   `reflex_core::host`, shared with the Actor and the beacons.
//!
//! The library exports what the binary runs: [`main`]. The protocol between the processes is
//! described in `docs/architecture.md`, and how to run them in `docs/operations.md`.
#![deny(missing_docs)]

mod actions;
mod cli;
mod daemon;
mod error;
mod http;
mod metrics;
mod reactions;
#[cfg(feature = "nats")]
mod scale;
mod state;
mod testing;
mod trust;

pub use cli::main;
use error::Error;
