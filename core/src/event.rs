//! The event: what a beacon reports.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::value::{Name, Value, name};

/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 96;
/// Longest source (host or device) id, in bytes.
pub const MAX_SOURCE_LEN: usize = 32;
/// Most fields one event carries.
pub const MAX_FIELDS: usize = 8;
/// How many times an event may be re-fired by reactions before it is refused: bounds
/// reaction loops (a reaction firing an event that triggers itself).
pub const MAX_HOPS: u8 = 8;

/// A tag such as `/client/load/web-1`.
pub type Tag = heapless::String<MAX_TAG_LEN>;
/// A host or device id.
pub type SourceId = heapless::String<MAX_SOURCE_LEN>;

/// One named value of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// The field's name.
    pub name: Name,
    /// Its value.
    pub value: Value,
}

/// An event: a tag, where it comes from, when, and a small map of values.
///
/// ```
/// use reflex_core::{Event, Value};
/// let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
/// e.push("load_avg", Value::Float(3.5)).unwrap();
/// assert_eq!(e.get("load_avg"), Some(&Value::Float(3.5)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Path-like tag; starts with `/`.
    pub tag: Tag,
    /// Originating host or device id.
    pub source: SourceId,
    /// Milliseconds since the Unix epoch (or since boot, on a device without a clock).
    pub time: u64,
    /// Per-source sequence number.
    pub seq: u64,
    /// How many reactions this event has passed through (0 for a beacon's event).
    pub hops: u8,
    /// Named values, at most [`MAX_FIELDS`], names unique.
    pub data: heapless::Vec<Field, MAX_FIELDS>,
}

impl Event {
    /// A new event with no data, time 0 and seq 0.
    pub fn new(tag: &str, source: &str) -> Result<Event, Error> {
        Ok(Event {
            tag: make_tag(tag)?,
            source: make_source(source)?,
            time: 0,
            seq: 0,
            hops: 0,
            data: heapless::Vec::new(),
        })
    }

    /// Sets a field, replacing one of the same name.
    pub fn push(&mut self, field: &str, value: Value) -> Result<(), Error> {
        if let Some(existing) = self.data.iter_mut().find(|f| f.name == field) {
            existing.value = value;
            return Ok(());
        }
        let name = name(field)?;
        self.data
            .push(Field { name, value })
            .map_err(|_| Error::TooManyFields)
    }

    /// The value of a field, if present.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.data.iter().find(|f| f.name == field).map(|f| &f.value)
    }

    /// Checks what decoding cannot: the tag's shape and that field names are unique.
    pub fn validate(&self) -> Result<(), Error> {
        check_tag(&self.tag)?;
        for (i, f) in self.data.iter().enumerate() {
            if self.data[..i].iter().any(|g| g.name == f.name) {
                return Err(Error::Malformed);
            }
        }
        Ok(())
    }
}

/// Checks a tag: starts with `/`, at most [`MAX_TAG_LEN`] bytes, no control characters.
pub fn check_tag(tag: &str) -> Result<(), Error> {
    if tag.len() > MAX_TAG_LEN {
        return Err(Error::TagTooLong);
    }
    if !tag.starts_with('/') || tag.chars().any(char::is_control) {
        return Err(Error::TagInvalid);
    }
    Ok(())
}

/// Makes a [`Tag`] after [`check_tag`].
pub fn make_tag(tag: &str) -> Result<Tag, Error> {
    check_tag(tag)?;
    let mut t = Tag::new();
    t.push_str(tag).map_err(|_| Error::TagTooLong)?;
    Ok(t)
}

/// Makes a [`SourceId`], or [`Error::SourceTooLong`].
pub fn make_source(source: &str) -> Result<SourceId, Error> {
    let mut s = SourceId::new();
    s.push_str(source).map_err(|_| Error::SourceTooLong)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_are_errors() {
        assert_eq!(Event::new("no-slash", "h").unwrap_err(), Error::TagInvalid);
        let long = "/".repeat(MAX_TAG_LEN + 1);
        assert_eq!(Event::new(&long, "h").unwrap_err(), Error::TagTooLong);
        let mut e = Event::new("/t", "h").unwrap();
        for i in 0..MAX_FIELDS {
            let n: heapless::String<8> = {
                let mut s = heapless::String::new();
                core::fmt::write(&mut s, format_args!("f{i}")).unwrap();
                s
            };
            e.push(&n, Value::Int(i as i64)).unwrap();
        }
        assert_eq!(e.push("one_more", Value::Int(0)), Err(Error::TooManyFields));
        // Replacing an existing field still works when full.
        e.push("f0", Value::Int(9)).unwrap();
        assert_eq!(e.get("f0"), Some(&Value::Int(9)));
    }
}
