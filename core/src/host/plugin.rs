//! What a plugin reads on its standard input: one JSON object, the same for the Manager's
//! plugins and an Actor's, so that one script can serve both.
//!
//! ```json
//! {"args": {"machine_id": "web-1"},
//!  "event": {"tag": "/client/load/web-1", "source": "web-1", "time": 1700000000000,
//!            "seq": 4, "hops": 0, "data": {"load_avg": 31.5}},
//!  "rule": "load_avg", "register": 27.2, "value": 31.5,
//!  "action": null}
//! ```
//!
//! Every key is always present. `args` nests dotted names (`data.host` is
//! `{"data": {"host": ...}}`) and makes a list of a list argument. The Manager fills `event`,
//! `rule`, `register` and `value` (the value the rule read) and leaves `action` `null`; an
//! Actor fills `action` (`id`, `function`, `source`, `target`, `time`) and leaves the others
//! `null`, for the action carries no event.
//!
//! ```
//! use reflex_core::Value;
//! use reflex_core::host::plugin::{PluginInput, value_json};
//! let mut input = PluginInput::new();
//! input.arg("data.host", false, value_json(&Value::str("web-1").unwrap()));
//! input.arg("path", true, value_json(&Value::str("/a").unwrap()));
//! let json: serde_json::Value = serde_json::from_slice(&input.to_bytes()).unwrap();
//! assert_eq!(json["args"]["data"]["host"], "web-1");
//! assert_eq!(json["args"]["path"], serde_json::json!(["/a"]));
//! assert!(json["action"].is_null());
//! ```

use serde_json::{Map, Number, Value as Json};

use crate::wire::Action;
use crate::{Event, Value};

/// An event value as JSON; a float that JSON cannot hold (NaN, an infinity) is `null`.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => float_json(*f),
        Value::Bool(b) => Json::Bool(*b),
        Value::Str(s) => Json::String(s.as_str().to_owned()),
    }
}

/// A JSON value as an event value: numbers, booleans and strings of at most
/// [`crate::value::MAX_STR_LEN`] bytes. `null`, lists and maps have no event form.
pub fn json_value(j: &Json) -> Result<Value, &'static str> {
    match j {
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => n.as_f64().map(Value::Float).ok_or("number out of range"),
        },
        Json::String(s) => Value::str(s).map_err(|_| "string longer than an event value holds"),
        Json::Null => Err("empty value"),
        Json::Array(_) | Json::Object(_) => Err("lists and maps are not event values"),
    }
}

/// A float as JSON, `null` when JSON cannot hold it.
pub fn float_json(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// An event as JSON: `{"tag", "source", "time", "seq", "hops", "data": {...}}`.
pub fn event_json(e: &Event) -> Json {
    let data: Map<String, Json> = e
        .data
        .iter()
        .map(|f| (f.name.as_str().to_owned(), value_json(&f.value)))
        .collect();
    serde_json::json!({
        "tag": e.tag.as_str(),
        "source": e.source.as_str(),
        "time": e.time,
        "seq": e.seq,
        "hops": e.hops,
        "data": data,
    })
}

/// A plugin's standard input, built up key by key.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInput {
    args: Map<String, Json>,
    event: Json,
    rule: Json,
    register: Json,
    value: Json,
    action: Json,
}

impl Default for PluginInput {
    fn default() -> Self {
        PluginInput::new()
    }
}

impl PluginInput {
    /// An input with no arguments and every other key `null`.
    pub fn new() -> PluginInput {
        PluginInput {
            args: Map::new(),
            event: Json::Null,
            rule: Json::Null,
            register: Json::Null,
            value: Json::Null,
            action: Json::Null,
        }
    }

    /// The input of an action an Actor performs: its arguments (a repeated name is a list)
    /// and its `action` key.
    pub fn of_action(action: &Action) -> PluginInput {
        let mut input = PluginInput::new();
        for f in &action.args {
            let repeated = action.args.iter().filter(|g| g.name == f.name).count() > 1;
            input.arg(&f.name, repeated, value_json(&f.value));
        }
        input.action = serde_json::json!({
            "id": action.id,
            "function": action.function.as_str(),
            "source": action.source.as_str(),
            "target": action.target.as_str(),
            "time": action.time,
        });
        input
    }

    /// Puts `value` at the dotted `name` of `args`, making maps on the way; with `item` it is
    /// appended to the list there.
    pub fn arg(&mut self, name: &str, item: bool, value: Json) {
        let (path, leaf) = match name.rsplit_once('.') {
            Some((path, leaf)) => (Some(path), leaf),
            None => (None, name),
        };
        let mut map = &mut self.args;
        for part in path.into_iter().flat_map(|p| p.split('.')) {
            let slot = map
                .entry(part.to_owned())
                .or_insert_with(|| Json::Object(Map::new()));
            if !slot.is_object() {
                *slot = Json::Object(Map::new());
            }
            let Json::Object(inner) = slot else {
                return;
            };
            map = inner;
        }
        if item {
            let slot = map
                .entry(leaf.to_owned())
                .or_insert_with(|| Json::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Json::Array(Vec::new());
            }
            if let Json::Array(list) = slot {
                list.push(value);
            }
        } else {
            map.insert(leaf.to_owned(), value);
        }
    }

    /// The arguments so far, as the `args` object.
    pub fn args(&self) -> &Map<String, Json> {
        &self.args
    }

    /// Sets what a rule's firing adds: the triggering event, the rule's name, its register and
    /// the value it read.
    pub fn firing(&mut self, event: &Event, rule: &str, register: f64, value: Option<&Value>) {
        self.event = event_json(event);
        self.rule = Json::String(rule.to_owned());
        self.register = float_json(register);
        self.value = value.map_or(Json::Null, value_json);
    }

    /// The whole object.
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "args": self.args,
            "event": self.event,
            "rule": self.rule,
            "register": self.register,
            "value": self.value,
            "action": self.action,
        })
    }

    /// The object as the plugin reads it: one line of JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.to_json().to_string().into_bytes();
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_and_a_firing_share_one_shape() {
        let mut a = Action::new(10, "reactions.actor.echo", "web-1").unwrap();
        for (name, v) in [("path", "/a"), ("path", "/b"), ("data.host", "h")] {
            a.push_arg(name, Value::str(v).unwrap()).unwrap();
        }
        a.push_arg("keep", Value::Int(2)).unwrap();
        let j = PluginInput::of_action(&a).to_json();
        assert_eq!(j["args"]["path"], serde_json::json!(["/a", "/b"]));
        assert_eq!(j["args"]["data"]["host"], "h");
        assert_eq!(j["args"]["keep"], 2);
        assert_eq!(j["action"]["id"], 10);
        assert!(j["event"].is_null() && j["rule"].is_null());

        let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
        e.push("load_avg", Value::Float(31.5)).unwrap();
        let mut input = PluginInput::new();
        input.firing(&e, "load_avg", f64::NAN, Some(&Value::Float(31.5)));
        let j = input.to_json();
        assert_eq!(j["event"]["data"]["load_avg"], 31.5);
        assert_eq!(j["rule"], "load_avg");
        assert!(j["register"].is_null());
        assert!(j["action"].is_null());
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        let action_keys: Vec<String> = PluginInput::of_action(&a)
            .to_json()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, action_keys.iter().collect::<Vec<_>>());
    }
}
