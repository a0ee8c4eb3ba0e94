//! Beacons: what turns a host's or a device's state into reflex events.
//!
//! A [`Beacon`] samples something (load average, free memory, a sensor) and writes the fields
//! of one event. It does not decide when it runs: a runner (the host agent, the firmware's main
//! loop) asks a [`Schedule`] whether the beacon is due, and the schedule also filters the
//! result when a beacon reports only on change.
//!
//! * [`device`]: firmware beacons, `no_std` and allocation-free: [`device::CpuLoad`] (idle-loop
//!   measurement), [`device::Uptime`] and [`device::Sensor`] over any [`device::SensorRead`],
//!   such as the embedded-hal I2C register reader [`device::I2cRegister`].
//! * `host` (feature `std`, Linux): load and iowait, memory, disk, process liveness and a
//!   command's output, plus `HostBeaconSpec`, their configuration.
//! * [`schedule`]: intervals, on-change filtering and heartbeats.
//!
//! Tags follow one convention: `/client/<kind>/<source>` on hosts (`/client/load/web-1`) and
//! `/device/<kind>/<id>` on devices (`/device/uptime/node-7`).
//!
//! ```
//! use reflex_beacons::{device::Uptime, Beacon, Emit, Schedule};
//! use reflex_core::{Event, Value};
//!
//! let mut uptime = Uptime::new("node-7").unwrap();
//! let mut schedule = Schedule::every(10_000);
//! let mut event = Event::new("/", "node-7").unwrap();
//! // The runner's loop, at t = 42 s:
//! let emit = schedule.run(&mut uptime, 42_000, &mut event).unwrap();
//! assert_eq!(emit, Emit::Event);
//! assert_eq!(event.tag.as_str(), "/device/uptime/node-7");
//! assert_eq!(event.get("uptime_s"), Some(&Value::Int(42)));
//! // Not due again before t = 52 s.
//! assert_eq!(schedule.run(&mut uptime, 43_000, &mut event).unwrap(), Emit::Skip);
//! ```
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod device;
pub mod error;
#[cfg(feature = "std")]
pub mod host;
pub mod schedule;
mod text;

pub use error::BeaconError;
pub use schedule::Schedule;

use reflex_core::Event;

/// Whether a sample produced an event to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Emit {
    /// The event is complete: send it.
    Event,
    /// Nothing to send this time (a first sample that only sets a baseline, a calibration
    /// window, or an unchanged reading filtered by a [`Schedule`]).
    Skip,
}

/// Something that samples a host's or a device's state into one event.
///
/// The runner hands [`sample`](Beacon::sample) an event whose tag is already
/// [`tag`](Beacon::tag) and whose data is empty ([`Schedule::run`] does both), and fills in
/// `source`, `time` and `seq` itself. A beacon only writes fields.
///
/// ```
/// use reflex_beacons::{Beacon, BeaconError, Emit};
/// use reflex_core::{Event, Value};
///
/// /// Reports a constant, for the example.
/// struct Answer;
///
/// impl Beacon for Answer {
///     fn tag(&self) -> &str {
///         "/device/answer/node-7"
///     }
///     fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
///         event.push("value", Value::Int(42))?;
///         Ok(Emit::Event)
///     }
/// }
///
/// let mut event = Event::new(Answer.tag(), "node-7").unwrap();
/// assert_eq!(Answer.sample(0, &mut event), Ok(Emit::Event));
/// assert_eq!(event.get("value"), Some(&Value::Int(42)));
/// ```
pub trait Beacon {
    /// The tag of this beacon's events, such as `/client/load/web-1`.
    fn tag(&self) -> &str;

    /// Samples now (`now_ms`: the runner's monotonic clock, in milliseconds) and writes the
    /// event's fields, returning whether the event should be sent.
    fn sample(&mut self, now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError>;
}

impl<B: Beacon + ?Sized> Beacon for &mut B {
    fn tag(&self) -> &str {
        (**self).tag()
    }

    fn sample(&mut self, now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        (**self).sample(now_ms, event)
    }
}

#[cfg(feature = "std")]
impl<B: Beacon + ?Sized> Beacon for Box<B> {
    fn tag(&self) -> &str {
        (**self).tag()
    }

    fn sample(&mut self, now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        (**self).sample(now_ms, event)
    }
}
