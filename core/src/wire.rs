//! The wire envelope.

/// The envelope version this build speaks.
pub const WIRE_VERSION: u8 = 1;
/// Most arguments in one action.
pub const MAX_ARGS: usize = 16;
/// Longest authentication tag.
pub const MAX_AUTH_LEN: usize = 64;
/// Largest encoded envelope.
pub const MAX_ENVELOPE_LEN: usize = 2048;
