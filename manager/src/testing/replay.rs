//! `reflex replay`: a recording of `reflex watch --json` run through a rulebook with the real
//! engine, on a virtual clock that reads each event's recorded time, printing what fires.

use std::fmt::Write as _;
use std::io::Write;

use reflex_core::host::clock::time_of_day;
use reflex_core::host::plugin::json_value;
use reflex_core::store::MapStore;
use reflex_core::{Event, Value};
use reflex_rules::Compiled;
use serde_json::Value as Json;

use super::run::{self, CASE_SLOTS, Got};
use crate::reactions::arguments::Args;

/// What a replay went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Events evaluated.
    pub events: usize,
    /// Rules that fired.
    pub firings: usize,
    /// Lines that were not events (reported, not evaluated).
    pub refused: usize,
}

/// Why a line of a recording is not an event.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    /// A key the event needs is missing or not a string.
    #[error("no `{0}` string")]
    NoText(&'static str),
    /// A number is not a whole non-negative number.
    #[error("`{0}` is not a whole number")]
    NotWhole(&'static str),
    /// `hops` does not fit.
    #[error("`hops` out of range")]
    Hops,
    /// `data` is not an object.
    #[error("`data` is not an object")]
    DataNotObject,
    /// The tag or source does not fit an event.
    #[error("{0}")]
    Event(reflex_core::Error),
    /// A data field's value is not one an event holds, or does not fit.
    #[error("data.{name}: {why}")]
    Field {
        /// The field.
        name: String,
        /// Why.
        why: String,
    },
}

/// Reads one line of a `reflex watch --json` recording back into its event.
pub fn parse_line(line: &str) -> Result<Event, LineError> {
    let j: Json = serde_json::from_str(line).map_err(LineError::NotJson)?;
    let text = |key: &'static str| {
        j.get(key)
            .and_then(Json::as_str)
            .ok_or(LineError::NoText(key))
    };
    let number = |key: &'static str| -> Result<u64, LineError> {
        match j.get(key) {
            None => Ok(0),
            Some(v) => v.as_u64().ok_or(LineError::NotWhole(key)),
        }
    };
    let mut e = Event::new(text("tag")?, text("source")?).map_err(LineError::Event)?;
    e.time = number("time")?;
    e.seq = number("seq")?;
    e.hops = u8::try_from(number("hops")?).map_err(|_| LineError::Hops)?;
    if let Some(data) = j.get("data") {
        let data = data.as_object().ok_or(LineError::DataNotObject)?;
        for (name, v) in data {
            let field = |why: String| LineError::Field {
                name: name.clone(),
                why,
            };
            let value: Value = json_value(v).map_err(|why| field(why.to_string()))?;
            e.push(name, value).map_err(|err| field(err.to_string()))?;
        }
    }
    Ok(e)
}

/// Replays the recording `text` (named `file` in messages) through `compiled`: every line's
/// event in order on one store, each at its recorded time. Firings go to `out`, one line per
/// reaction; lines that are not events go to `problems` as `file:line:1: reason`.
pub fn replay(
    compiled: &Compiled,
    file: &str,
    text: &str,
    out: &mut impl Write,
    problems: &mut impl Write,
) -> Tally {
    let program = compiled.program();
    let mut store = MapStore::new(CASE_SLOTS);
    let mut tally = Tally::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event = match parse_line(line) {
            Ok(e) => e,
            Err(why) => {
                tally.refused += 1;
                let _ = writeln!(problems, "{file}:{}:1: {why}", n + 1);
                continue;
            }
        };
        tally.events += 1;
        for got in run::evaluate(&program, &mut store, &event) {
            tally.firings += 1;
            for line in fired_lines(&event, &got) {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    tally
}

/// The lines of one firing: `TIME  FIRE rule (group)  reaction name=value ...`, one per
/// reaction (one line without reactions for a rule that has none).
pub fn fired_lines(event: &Event, got: &Got) -> Vec<String> {
    let head = format!(
        "{}  FIRE {} ({})",
        time_of_day(event.time),
        got.rule,
        got.group
    );
    if got.reactions.is_empty() {
        return vec![head];
    }
    got.reactions
        .iter()
        .map(|(key, args)| format!("{head}  {key}{}", arguments(args)))
        .collect()
}

fn arguments(args: &Args) -> String {
    let mut s = String::new();
    for a in &args.items {
        let t = &a.text;
        if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c == '"' || c == '=') {
            let _ = write!(s, " {}={t:?}", a.name);
        } else {
            let _ = write!(s, " {}={t}", a.name);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_with_their_values() {
        let e = parse_line(
            r#"{"kind":"event","tag":"/client/load/web-1","source":"web-1","time":5,"seq":2,"hops":1,"data":{"load_avg":30.0,"n":3,"up":true,"who":"a b"}}"#,
        )
        .unwrap();
        assert_eq!((e.time, e.seq, e.hops), (5, 2, 1));
        assert_eq!(e.get("load_avg"), Some(&Value::Float(30.0)));
        assert_eq!(e.get("n"), Some(&Value::Int(3)));
        assert_eq!(e.get("up"), Some(&Value::Bool(true)));
        assert_eq!(e.get("who"), Some(&Value::str("a b").unwrap()));
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(
            parse_line("{")
                .unwrap_err()
                .to_string()
                .starts_with("not JSON")
        );
        assert_eq!(
            parse_line(r#"{"source":"h"}"#).unwrap_err().to_string(),
            "no `tag` string"
        );
        assert!(
            parse_line(r#"{"tag":"/a","source":"h","hops":300}"#)
                .unwrap_err()
                .to_string()
                .contains("hops")
        );
        assert!(
            parse_line(r#"{"tag":"/a","source":"h","data":{"x":[1]}}"#)
                .unwrap_err()
                .to_string()
                .starts_with("data.x")
        );
    }
}
