//! Event and argument values: integer, float, bool or a short string.

use core::fmt;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest string value, in bytes.
pub const MAX_STR_LEN: usize = 64;
/// Longest field or argument name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// A fixed-capacity string value.
pub type Str = heapless::String<MAX_STR_LEN>;
/// A fixed-capacity field or argument name.
pub type Name = heapless::String<MAX_NAME_LEN>;

/// One value carried by an event or an action argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A signed integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A short string (at most [`MAX_STR_LEN`] bytes).
    Str(Str),
}

impl Value {
    /// Parses text the way the CLI does: integer, else float, else `true`/`false`, else a
    /// string.
    ///
    /// ```
    /// use reflex_core::Value;
    /// assert_eq!(Value::parse("42").unwrap(), Value::Int(42));
    /// assert_eq!(Value::parse("0.5").unwrap(), Value::Float(0.5));
    /// assert_eq!(Value::parse("true").unwrap(), Value::Bool(true));
    /// assert!(matches!(Value::parse("web-1").unwrap(), Value::Str(_)));
    /// ```
    pub fn parse(text: &str) -> Result<Value, Error> {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        if let Ok(f) = text.parse::<f64>() {
            // "inf", "nan" stay strings: they are words, not measurements.
            if f.is_finite() {
                return Ok(Value::Float(f));
            }
        }
        match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Value::str(text),
        }
    }

    /// A string value, or [`Error::StringTooLong`].
    pub fn str(text: &str) -> Result<Value, Error> {
        let mut s = Str::new();
        s.push_str(text).map_err(|_| Error::StringTooLong)?;
        Ok(Value::Str(s))
    }

    /// The value as a number, for registers: ints and floats as they are, bools as 1 and 0,
    /// strings not at all.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) if f.is_finite() => Some(*f),
            Value::Float(_) => None,
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Str(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// Makes a [`Name`], or [`Error::NameTooLong`].
pub fn name(text: &str) -> Result<Name, Error> {
    let mut n = Name::new();
    n.push_str(text).map_err(|_| Error::NameTooLong)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_picks_the_narrowest_type() {
        assert_eq!(Value::parse("-7").unwrap(), Value::Int(-7));
        assert_eq!(Value::parse("1e3").unwrap(), Value::Float(1000.0));
        assert_eq!(Value::parse("false").unwrap(), Value::Bool(false));
        assert_eq!(Value::parse("nan").unwrap(), Value::str("nan").unwrap());
        assert_eq!(
            Value::parse(&"x".repeat(MAX_STR_LEN + 1)),
            Err(Error::StringTooLong)
        );
    }

    #[test]
    fn numbers_for_registers() {
        assert_eq!(Value::Bool(true).as_f64(), Some(1.0));
        assert_eq!(Value::Float(f64::NAN).as_f64(), None);
        assert_eq!(Value::str("up").unwrap().as_f64(), None);
    }
}
