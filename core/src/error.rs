//! The crate-wide error type.

use core::fmt;

/// Everything that can go wrong in the core. Each variant names what went wrong; none of them
/// is ever a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// A tag is longer than [`crate::event::MAX_TAG_LEN`].
    TagTooLong,
    /// A tag does not start with `/`, or contains a control character.
    TagInvalid,
    /// A source id is longer than [`crate::event::MAX_SOURCE_LEN`].
    SourceTooLong,
    /// A field or argument name is longer than [`crate::value::MAX_NAME_LEN`].
    NameTooLong,
    /// A string value is longer than [`crate::value::MAX_STR_LEN`].
    StringTooLong,
    /// An event already holds [`crate::event::MAX_FIELDS`] fields.
    TooManyFields,
    /// An action already holds [`crate::wire::MAX_ARGS`] arguments.
    TooManyArgs,
    /// A text (action output, function key, target) exceeds its capacity.
    TextTooLong,
    /// An authentication tag is longer than [`crate::wire::MAX_AUTH_LEN`].
    AuthTooLong,
    /// The envelope's version byte is not [`crate::wire::WIRE_VERSION`].
    UnsupportedVersion(u8),
    /// The bytes end before the envelope does.
    UnexpectedEnd,
    /// The bytes are not a valid envelope.
    Malformed,
    /// Bytes remain after a complete envelope.
    TrailingBytes,
    /// The envelope is larger than [`crate::wire::MAX_ENVELOPE_LEN`].
    EnvelopeTooLarge,
    /// An output buffer is too small for what is written into it.
    BufferFull,
    /// A serial frame's CRC does not match its contents.
    FrameCrc,
    /// A serial frame is not valid COBS.
    FrameCobs,
    /// A serial frame is longer than the deframer's buffer.
    FrameTooLong,
    /// A serial frame is too short to hold a CRC.
    FrameTooShort,
    /// The register store is full: no slot for a new rule/group pair.
    StoreFull,
    /// A compiled program refers outside its own tables.
    ProgramCorrupt,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TagTooLong => write!(f, "tag longer than {} bytes", crate::event::MAX_TAG_LEN),
            Error::TagInvalid => {
                f.write_str("tag must start with '/' and hold no control characters")
            }
            Error::SourceTooLong => {
                write!(
                    f,
                    "source id longer than {} bytes",
                    crate::event::MAX_SOURCE_LEN
                )
            }
            Error::NameTooLong => {
                write!(f, "name longer than {} bytes", crate::value::MAX_NAME_LEN)
            }
            Error::StringTooLong => {
                write!(
                    f,
                    "string value longer than {} bytes",
                    crate::value::MAX_STR_LEN
                )
            }
            Error::TooManyFields => {
                write!(
                    f,
                    "more than {} fields in one event",
                    crate::event::MAX_FIELDS
                )
            }
            Error::TooManyArgs => write!(f, "more than {} action arguments", crate::wire::MAX_ARGS),
            Error::TextTooLong => f.write_str("text longer than its capacity"),
            Error::AuthTooLong => {
                write!(
                    f,
                    "authentication tag longer than {} bytes",
                    crate::wire::MAX_AUTH_LEN
                )
            }
            Error::UnsupportedVersion(v) => write!(
                f,
                "unsupported envelope version {v} (this build speaks {})",
                crate::wire::WIRE_VERSION
            ),
            Error::UnexpectedEnd => f.write_str("envelope truncated"),
            Error::Malformed => f.write_str("malformed envelope"),
            Error::TrailingBytes => f.write_str("trailing bytes after envelope"),
            Error::EnvelopeTooLarge => {
                write!(
                    f,
                    "envelope larger than {} bytes",
                    crate::wire::MAX_ENVELOPE_LEN
                )
            }
            Error::BufferFull => f.write_str("output buffer full"),
            Error::FrameCrc => f.write_str("frame CRC mismatch"),
            Error::FrameCobs => f.write_str("frame is not valid COBS"),
            Error::FrameTooLong => f.write_str("frame longer than the deframer's buffer"),
            Error::FrameTooShort => f.write_str("frame too short to hold a CRC"),
            Error::StoreFull => f.write_str("register store full"),
            Error::ProgramCorrupt => f.write_str("compiled rulebook refers outside its tables"),
        }
    }
}

impl core::error::Error for Error {}
