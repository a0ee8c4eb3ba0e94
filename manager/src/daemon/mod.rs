//! The Manager process (`reflex manager`): its configuration (`config.rs`), loading the
//! rulebook (`load.rs`), starting and stopping its threads and sockets (`run.rs`), the event
//! loop from receive to dispatch (`event_loop.rs`), the pure fan-out of firings
//! (`fan_out.rs`), watch publishing (`watch.rs`) and rulebook reloads ([`reload`]).

mod config;
mod event_loop;
mod fan_out;
mod load;
pub mod reload;
mod run;
mod watch;

pub use config::{
    Config, DEFAULT_ACTION_TTL_S, DEFAULT_EVENTS, DEFAULT_ID, DEFAULT_METRICS, DEFAULT_PUBLISH,
    DEFAULT_QUEUE, DEFAULT_WATCH, DEFAULT_WORKERS,
};
pub use run::run;
#[cfg(feature = "nats")]
pub(crate) use {
    event_loop::result_event,
    fan_out::{Fired, Step, fan_out},
    load::load,
};
