//! Small text helpers shared by the beacons: building tags, checking names, string fields.

use core::fmt::Write;

use reflex_core::Error;
use reflex_core::event::{Tag, check_tag};
#[cfg(feature = "std")]
use reflex_core::value::{MAX_STR_LEN, Str};
#[cfg(feature = "std")]
use reflex_core::{Event, Value};

use crate::BeaconError;

/// Builds a tag from its parts, such as `format_args!("/client/load/{source}")`.
pub(crate) fn tag(args: core::fmt::Arguments<'_>) -> Result<Tag, BeaconError> {
    let mut t = Tag::new();
    t.write_fmt(args).map_err(|_| Error::TagTooLong)?;
    check_tag(&t)?;
    Ok(t)
}

/// Checks that a name used inside a tag (a command or sensor name) is one tag segment, by
/// the rule of [`reflex_core::id::check_segment`].
pub(crate) fn check_segment(segment: &str, what: &'static str) -> Result<(), BeaconError> {
    reflex_core::id::check_segment(segment).map_err(|_| BeaconError::InvalidConfig(what))
}

/// Checks a host or device id by the one rule of [`reflex_core::id::check_id`].
pub(crate) fn check_id(id: &str, what: &'static str) -> Result<(), BeaconError> {
    reflex_core::id::check_id(id).map_err(|_| BeaconError::InvalidConfig(what))
}

#[cfg(feature = "std")]
/// Sets a string field, truncated to [`MAX_STR_LEN`] bytes at a char boundary.
pub(crate) fn push_str(event: &mut Event, field: &str, text: &str) -> Result<(), BeaconError> {
    let mut s = Str::new();
    // Cannot fail: the text was truncated to the capacity.
    let _ = s.push_str(reflex_core::text::clip(text, MAX_STR_LEN));
    event.push(field, Value::Str(s))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "std")]
    #[test]
    fn long_strings_fit_the_value_capacity() {
        let mut e = Event::new("/t", "h").unwrap();
        let long = "ü".repeat(MAX_STR_LEN);
        push_str(&mut e, "output", &long).unwrap();
        match e.get("output") {
            Some(Value::Str(s)) => assert_eq!(s.len(), MAX_STR_LEN),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn segments_and_tags() {
        assert!(check_segment("web-1", "x").is_ok());
        assert_eq!(check_id(".x", "x"), Err(BeaconError::InvalidConfig("x")));
        for bad in ["", "a/b", "a b", "a*", "x\n"] {
            assert_eq!(
                check_segment(bad, "x"),
                Err(BeaconError::InvalidConfig("x"))
            );
        }
        let long = "x".repeat(200);
        assert_eq!(
            tag(format_args!("/client/load/{long}")),
            Err(BeaconError::Event(Error::TagTooLong))
        );
    }
}
