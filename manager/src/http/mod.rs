//! The Manager's HTTP endpoints, on a small bounded server ([`server`]): the metrics address
//! (`GET /metrics`, the live dashboard at `/`, `POST /reload`) and, with `--http`, the ingest
//! address (`POST /events`, `POST /alertmanager`), authenticated by bearer tokens kept in the
//! trust directory ([`tokens`]).

pub mod dashboard;
pub mod ingest;
pub mod request;
pub mod routes;
pub mod server;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::Error;

pub use dashboard::{Board, View};
pub use routes::{Control, Ingest, Inject, ReloadRoute, no_reload};
pub use server::Limits;
pub use tokens::Tokens;

/// Serves the metrics address `addr` with `control`; returns the bound address.
pub fn serve_control(addr: &str, control: Control) -> Result<SocketAddr, Error> {
    let counters = control.metrics.http.clone();
    let handler: server::Handler = Arc::new(move |r| control.answer(r));
    server::serve(addr, "metrics", Limits::default(), counters, handler)
}

/// Serves the ingest address `addr` with `ingest`; returns the bound address.
pub fn serve_ingest(addr: &str, ingest: Ingest) -> Result<SocketAddr, Error> {
    let counters = ingest.metrics.http.clone();
    let handler: server::Handler = Arc::new(move |r| ingest.answer(r));
    server::serve(addr, "ingest", Limits::default(), counters, handler)
}
