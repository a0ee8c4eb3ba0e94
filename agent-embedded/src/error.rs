//! The crate-wide error type.

use core::fmt;

use reflex_beacons::BeaconError;

/// Everything that can go wrong in the device agent. Each variant names what went wrong; none
/// of them is ever a panic. Errors met while running (a damaged frame, a full buffer, a failed
/// beacon) are counted in [`crate::Stats`] and the agent carries on; [`crate::Agent::new`]
/// returns the ones that make a firmware image unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The core refused something: an event or a result over capacity, an envelope that does
    /// not fit [`crate::TX_FRAME_LEN`], a damaged or malformed frame.
    Core(reflex_core::Error),
    /// A beacon failed to sample.
    Beacon(BeaconError),
    /// The UART reported an error.
    Uart(embedded_io::ErrorKind),
    /// The output pin reported an error.
    Pin(embedded_hal::digital::ErrorKind),
    /// The device id breaks the one id rule of [`reflex_core::id`].
    InvalidId,
    /// The compiled rulebook refers outside its own tables.
    ProgramCorrupt,
    /// The rulebook holds more reactions than [`crate::MAX_REACTIONS`].
    TooManyReactions,
    /// A reaction of the rulebook is not a device reaction (`reactions.device.*`, see
    /// [`crate::DeviceFn`]), or carries a `target:`: a device performs its own reactions only.
    /// Holds the reaction's index in the program's reaction table.
    UnsupportedReaction(u16),
    /// An action or reaction lacks an argument it needs, or the argument has the wrong type.
    /// Holds the argument's name.
    BadArgument(&'static str),
    /// An action names a function the device does not have.
    UnknownFunction,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Core(e) => write!(f, "{e}"),
            Error::Beacon(e) => write!(f, "beacon: {e}"),
            Error::Uart(kind) => write!(f, "UART error: {kind:?}"),
            Error::Pin(kind) => write!(f, "output pin error: {kind:?}"),
            Error::InvalidId => f.write_str(
                "device id must be 1 to 32 bytes, not start with '.', and hold no '/', '\\', \
                 whitespace, control or glob characters",
            ),
            Error::ProgramCorrupt => f.write_str("compiled rulebook refers outside its tables"),
            Error::TooManyReactions => write!(
                f,
                "rulebook holds more than {} reactions",
                crate::MAX_REACTIONS
            ),
            Error::UnsupportedReaction(i) => write!(
                f,
                "reaction #{i} is not a local device reaction (reactions.device.*, no target)"
            ),
            Error::BadArgument(name) => write!(f, "missing or invalid argument `{name}`"),
            Error::UnknownFunction => f.write_str("unknown device function"),
        }
    }
}

impl core::error::Error for Error {}

impl From<reflex_core::Error> for Error {
    fn from(e: reflex_core::Error) -> Self {
        Error::Core(e)
    }
}

impl From<BeaconError> for Error {
    fn from(e: BeaconError) -> Self {
        Error::Beacon(e)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Error {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Error::Core(e) => defmt::write!(f, "core: {}", e),
            Error::Beacon(_) => defmt::write!(f, "beacon failed"),
            Error::Uart(_) => defmt::write!(f, "UART error"),
            Error::Pin(_) => defmt::write!(f, "output pin error"),
            Error::InvalidId => defmt::write!(f, "invalid device id"),
            Error::ProgramCorrupt => defmt::write!(f, "compiled rulebook corrupt"),
            Error::TooManyReactions => defmt::write!(f, "too many reactions"),
            Error::UnsupportedReaction(i) => defmt::write!(f, "unsupported reaction #{}", i),
            Error::BadArgument(name) => defmt::write!(f, "bad argument {=str}", name),
            Error::UnknownFunction => defmt::write!(f, "unknown device function"),
        }
    }
}
