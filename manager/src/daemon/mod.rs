//! The Manager process (`reflex manager`): its configuration ([`config`]), loading the
//! rulebook ([`load`]), starting and stopping its threads and sockets ([`run`]), the event
//! loop from receive to dispatch (`event_loop.rs`), the pure fan-out of firings
//! (`fan_out.rs`), watch publishing (`watch.rs`) and rulebook reloads ([`reload`]).

pub mod config;
mod event_loop;
mod fan_out;
pub mod load;
pub mod reload;
pub mod run;
mod watch;

pub use config::{
    Config, DEFAULT_EVENTS, DEFAULT_ID, DEFAULT_METRICS, DEFAULT_PUBLISH, DEFAULT_QUEUE,
    DEFAULT_WATCH, DEFAULT_WORKERS,
};
pub use run::run_reloadable;
