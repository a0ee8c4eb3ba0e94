//! Host code the Manager's roles share: the clock, signals, logging, key files, the host's
//! name, text clipping, socket set-up and values as JSON. Each file is one concern, so that
//! moving one to a crate shared with the Actor and the beacons changes one `use` line in its
//! users.

pub mod clock;
pub mod hostname;
pub mod json;
pub mod keyfiles;
pub mod logging;
pub mod signals;
pub mod sockets;
pub mod text;
