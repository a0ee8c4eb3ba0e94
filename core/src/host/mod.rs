//! Host code written once for every std part of reflex (feature `host`): the Manager, the
//! Actor and the serial gateway, and the host beacons.
//!
//! * [`exec`]: running a program with a timeout, its process group killed at the end, its
//!   output bounded, or only its first line kept.
//! * [`plugin`]: the one JSON object every plugin reads on its standard input, and event
//!   values as JSON.
//! * [`clock`]: the wall clock.
//! * `process` (feature `host-main`): a binary's logging and its stop and reload signals.
//! * `socket` (feature `sockets`): ZeroMQ sockets with their options, made one way.
//! * [`sys`]: every call into the C library, each with its safety argument; the only module
//!   of the crate allowed `unsafe`.
//!
//! It lives in core, behind a feature that only adds, because core is the one crate below all
//! of those users: the beacons depend on core alone, and the Manager must not depend on the
//! agent for it. Firmware builds never enable it, so core stays `no_std` there.

pub mod clock;
pub mod exec;
pub mod plugin;
#[cfg(feature = "host-main")]
pub mod process;
#[cfg(feature = "sockets")]
pub mod socket;
pub mod sys;
