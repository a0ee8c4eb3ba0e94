//! The reflex device agent: the firmware side of reflex, `no_std` and allocation-free.
//!
//! An [`Agent`] owns a UART to the serial gateway ([`embedded_io`] traits), an output pin
//! ([`embedded_hal::digital::OutputPin`]), a [`Clock`], a compiled rulebook
//! ([`reflex_core::program::Program`], usually a `static` in flash written by the firmware's
//! build script) and a fixed-capacity register store. Its [`poll`](Agent::poll):
//!
//! 1. reads the line, deframes ([`reflex_core::frame`]) and decodes ([`downlink`], the
//!    wire format of [`reflex_core::wire`]) what arrives; performs each action addressed to the device's id
//!    (a [device reaction](DeviceFn)) and answers it with a result envelope. Damaged frames,
//!    undecodable envelopes and actions for others are dropped and counted;
//! 2. runs the beacons that are due ([`reflex_beacons`]), sends each event framed up the line,
//!    evaluates it against the rulebook ([`reflex_core::engine`]), performs the reactions that
//!    fire and reports each as a `/device/reaction/<id>` event (fields `rule`, `function`,
//!    `ok`, and `error` when it failed);
//! 3. sends a heartbeat every [`HEARTBEAT_MS`].
//!
//! With a device key ([`Agent::with_key`], a [`MacKey`] shared with the Manager), everything
//! sent carries the key's HMAC tag and only actions tagged with it are performed, once each,
//! before they expire; without one (lab mode) nothing is tagged or checked.
//!
//! Every buffer has a named capacity ([`TX_FRAME_LEN`], [`MAX_REACTIONS`],
//! [`MAX_REPORTS_PER_EVENT`], [`RECENT_ACTIONS`], the store's `SLOTS` in [`AgentMemory`]),
//! and everything
//! dropped is counted in [`Stats`].
//!
//! ```no_run
//! # fn demo<U, P>(uart: U, pin: P, program: reflex_core::program::Program<'static>)
//! # where U: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady,
//! #       P: embedded_hal::digital::OutputPin {
//! use reflex_agent_embedded::{Agent, AgentMemory, Clock, Scheduled};
//! use reflex_beacons::{device::Uptime, Schedule};
//!
//! struct Ticks(u64);
//! impl Clock for Ticks {
//!     fn now_ms(&mut self) -> u64 { self.0 }
//! }
//!
//! // In firmware: `static mut MEMORY: AgentMemory<4> = AgentMemory::new();` at the top of
//! // cortex-m-rt's `#[entry]` function, which hands it over as a `&'static mut`.
//! let mut memory = AgentMemory::<4>::new();
//! let mut agent = Agent::new("node-7", uart, pin, Ticks(0), program, &mut memory).unwrap();
//! let mut uptime = Uptime::new("node-7").unwrap();
//! let mut beacons = [Scheduled::new(&mut uptime, Schedule::every(1_000))];
//! loop {
//!     let idle_ms = agent.poll(&mut beacons);
//!     // sleep or count idle time for up to `idle_ms`
//! #   let _ = idle_ms; break;
//! }
//! # }
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod agent;
#[cfg(feature = "build")]
pub mod build;
pub mod downlink;
mod error;
mod log;
pub mod reaction;
mod stats;
mod store;

pub use agent::{
    Agent, AgentMemory, CODE_FAILED, CODE_UNKNOWN_FUNCTION, HEARTBEAT_MS, MAX_DEVICE_ENVELOPE_LEN,
    MAX_DOWNLINK_LEN, MAX_REACTIONS, MAX_REPORTS_PER_EVENT, RECENT_ACTIONS, RX_BUDGET,
    RX_FRAME_LEN, Scheduled, TX_FRAME_LEN,
};
pub use error::Error;
pub use reaction::{DEVICE_KEYS, DEVICE_MODULE, DeviceFn};
pub use reflex_core::auth::MacKey;
pub use stats::Stats;
pub use store::SlotStore;

/// A monotonic clock: milliseconds since boot. On a Cortex-M, SysTick counting milliseconds
/// does; in tests, a counter the test advances.
pub trait Clock {
    /// Milliseconds since boot; never decreases.
    fn now_ms(&mut self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &mut C {
    fn now_ms(&mut self) -> u64 {
        (**self).now_ms()
    }
}
