//! The crate-wide error type.

use core::fmt;

/// Everything that can go wrong while building or sampling a beacon. Each variant names what
/// went wrong; odd input (a truncated `/proc` file, a failing bus) is one of these, never a
/// panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeaconError {
    /// A source of readings could not be read; names it (such as `/proc/loadavg`).
    Unreadable(&'static str),
    /// A source was read but its contents are not in the expected format; names it.
    Malformed(&'static str),
    /// The event could not hold what the beacon wrote (a tag or a field over capacity).
    Event(reflex_core::Error),
    /// An I2C transaction failed.
    Bus(embedded_hal::i2c::ErrorKind),
    /// A sensor could not be read (the error of a [`crate::device::SensorRead`] that has no
    /// more specific variant).
    SensorFailed,
    /// A sensor returned a reading that is not a finite number.
    InvalidReading,
    /// A command's program was not found.
    CommandNotFound,
    /// A command could not be started (permissions, resources).
    CommandNotStarted,
    /// A command ran longer than its timeout and was killed.
    CommandTimedOut,
    /// A beacon's configuration is invalid; names the setting and what it needs.
    InvalidConfig(&'static str),
}

impl fmt::Display for BeaconError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BeaconError::Unreadable(what) => write!(f, "cannot read {what}"),
            BeaconError::Malformed(what) => write!(f, "unexpected contents in {what}"),
            BeaconError::Event(e) => write!(f, "event: {e}"),
            BeaconError::Bus(kind) => write!(f, "I2C transaction failed: {kind}"),
            BeaconError::SensorFailed => f.write_str("sensor read failed"),
            BeaconError::InvalidReading => f.write_str("sensor reading is not a finite number"),
            BeaconError::CommandNotFound => f.write_str("command not found"),
            BeaconError::CommandNotStarted => f.write_str("command could not be started"),
            BeaconError::CommandTimedOut => f.write_str("command timed out and was killed"),
            BeaconError::InvalidConfig(what) => write!(f, "invalid beacon configuration: {what}"),
        }
    }
}

impl From<reflex_core::Error> for BeaconError {
    fn from(e: reflex_core::Error) -> Self {
        BeaconError::Event(e)
    }
}

impl From<embedded_hal::i2c::ErrorKind> for BeaconError {
    fn from(kind: embedded_hal::i2c::ErrorKind) -> Self {
        BeaconError::Bus(kind)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BeaconError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_what_went_wrong() {
        assert_eq!(
            BeaconError::Unreadable("/proc/loadavg").to_string(),
            "cannot read /proc/loadavg"
        );
        assert_eq!(
            BeaconError::InvalidConfig("interval_s must be positive").to_string(),
            "invalid beacon configuration: interval_s must be positive"
        );
        assert!(
            BeaconError::Bus(embedded_hal::i2c::ErrorKind::Overrun)
                .to_string()
                .starts_with("I2C transaction failed")
        );
    }
}
