//! Source ids and the topics actions are addressed to.
//!
//! One rule for every id — an agent's, a device's, a key's name, a beacon's source — so that
//! an id one part accepts no other part refuses: 1 to [`MAX_SOURCE_LEN`] bytes, not starting
//! with `.`, and none of `/`, `\`, whitespace, control characters or the glob characters
//! `*?[]{}`. An id ends tags such as `/client/load/<id>` (so it is one tag segment), the
//! Manager matches ids against target globs (so it holds no glob character), and it names key
//! files (so it does not start with `.`).
//!
//! ```
//! use reflex_core::id::{IdError, check_id, topic};
//! assert!(check_id("web-1").is_ok());
//! assert_eq!(check_id("node{1}"), Err(IdError::Forbidden('{')));
//! assert_eq!(topic("web-1").unwrap().as_slice(), b"web-1\0");
//! ```

use core::fmt;

use crate::event::MAX_SOURCE_LEN;

/// The target that addresses every Actor and device.
pub const BROADCAST: &str = "*";
/// The topic of [`BROADCAST`]: what every Actor and gateway subscribes to besides its own.
pub const BROADCAST_TOPIC: &[u8] = b"*\0";
/// Longest topic, in bytes: an id and its NUL.
pub const MAX_TOPIC_LEN: usize = MAX_SOURCE_LEN + 1;

/// The topic frame of an action sent to one target.
pub type Topic = heapless::Vec<u8, MAX_TOPIC_LEN>;

/// Why a text is not an id or a tag segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IdError {
    /// It is empty.
    Empty,
    /// It is longer than [`MAX_SOURCE_LEN`] bytes.
    TooLong,
    /// It starts with `.`.
    LeadingDot,
    /// It holds this character, which no id or segment may hold.
    Forbidden(char),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => f.write_str("it is empty"),
            IdError::TooLong => write!(f, "it is longer than {MAX_SOURCE_LEN} bytes"),
            IdError::LeadingDot => f.write_str("it starts with '.'"),
            IdError::Forbidden(c) => write!(
                f,
                "it holds {c:?}; ids hold no '/', '\\', whitespace, control or glob characters"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for IdError {}

/// Whether `c` may never appear in an id or a tag segment.
fn forbidden(c: char) -> bool {
    c == '/' || c == '\\' || c.is_whitespace() || c.is_control() || "*?[]{}".contains(c)
}

/// Checks one tag segment (a command or sensor name): not empty, and none of the characters
/// an id may not hold. No length bound: the whole tag's capacity bounds it.
pub fn check_segment(segment: &str) -> Result<(), IdError> {
    if segment.is_empty() {
        return Err(IdError::Empty);
    }
    match segment.chars().find(|&c| forbidden(c)) {
        Some(c) => Err(IdError::Forbidden(c)),
        None => Ok(()),
    }
}

/// Checks an id against the rule of this module.
pub fn check_id(id: &str) -> Result<(), IdError> {
    check_segment(id)?;
    if id.len() > MAX_SOURCE_LEN {
        return Err(IdError::TooLong);
    }
    if id.starts_with('.') {
        return Err(IdError::LeadingDot);
    }
    Ok(())
}

/// The topic of an action sent to `target` (an id or [`BROADCAST`]): its bytes and a NUL, so
/// that `web-1` does not also receive what is sent to `web-10`.
pub fn topic(target: &str) -> Result<Topic, IdError> {
    if target.is_empty() {
        return Err(IdError::Empty);
    }
    let mut t = Topic::new();
    t.extend_from_slice(target.as_bytes())
        .map_err(|_| IdError::TooLong)?;
    t.push(0).map_err(|_| IdError::TooLong)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule() {
        for good in ["web-1", "dev_7", "a.b", "é", &"x".repeat(MAX_SOURCE_LEN)] {
            assert_eq!(check_id(good), Ok(()), "{good:?}");
        }
        assert_eq!(check_id(""), Err(IdError::Empty));
        assert_eq!(check_id(".hidden"), Err(IdError::LeadingDot));
        assert_eq!(
            check_id(&"x".repeat(MAX_SOURCE_LEN + 1)),
            Err(IdError::TooLong)
        );
        for (bad, c) in [
            ("a/b", '/'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\0", '\0'),
            ("a\\b", '\\'),
            ("web*", '*'),
            ("w?", '?'),
            ("n[1]", '['),
            ("node{1}", '{'),
        ] {
            assert_eq!(check_id(bad), Err(IdError::Forbidden(c)), "{bad:?}");
        }
        assert_eq!(check_segment(".ok-as-a-segment"), Ok(()));
        assert_eq!(check_segment("a/b"), Err(IdError::Forbidden('/')));
    }

    #[test]
    fn topics_end_with_nul() {
        assert_eq!(topic("web-1").unwrap().as_slice(), b"web-1\0");
        assert_eq!(topic(BROADCAST).unwrap().as_slice(), BROADCAST_TOPIC);
        assert!(topic(&"x".repeat(MAX_SOURCE_LEN)).is_ok());
        assert_eq!(
            topic(&"x".repeat(MAX_SOURCE_LEN + 1)),
            Err(IdError::TooLong)
        );
        assert_eq!(topic(""), Err(IdError::Empty));
    }
}
