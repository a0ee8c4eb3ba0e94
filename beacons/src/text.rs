//! Small text helpers shared by the beacons: building tags, truncating strings.

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

/// Checks that a name used inside a tag (a source id, a command or sensor name) is one path
/// segment: not empty, no `/`, no whitespace or control characters, no glob characters.
pub(crate) fn check_segment(segment: &str, what: &'static str) -> Result<(), BeaconError> {
    let bad = |c: char| c == '/' || c.is_whitespace() || c.is_control() || "*?[]{}".contains(c);
    if segment.is_empty() || segment.chars().any(bad) {
        return Err(BeaconError::InvalidConfig(what));
    }
    Ok(())
}

#[cfg(feature = "std")]
/// The longest prefix of `text` that fits in `max` bytes and ends at a char boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(feature = "std")]
/// Sets a string field, truncated to [`MAX_STR_LEN`] bytes at a char boundary.
pub(crate) fn push_str(event: &mut Event, field: &str, text: &str) -> Result<(), BeaconError> {
    let mut s = Str::new();
    // Cannot fail: the text was truncated to the capacity.
    let _ = s.push_str(truncate(text, MAX_STR_LEN));
    event.push(field, Value::Str(s))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "std")]
    #[test]
    fn truncates_at_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        // 'é' is two bytes: cutting inside it backs off to before it.
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("é", 0), "");
    }

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
