//! Event values and events as JSON, for the reactions that speak JSON (HTTP posts, plugins,
//! fired events).

use reflex_core::Event;
use reflex_core::value::Value;
use serde_json::{Map, Number, Value as Json};

/// A float as a JSON number; `null` when it has none (NaN, infinities).
pub fn float(f: f64) -> Json {
    Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
}

/// An event value as JSON.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => float(*f),
        Value::Bool(b) => Json::Bool(*b),
        Value::Str(s) => Json::String(s.to_string()),
    }
}

/// A JSON value as an event value: numbers, booleans and strings of at most
/// [`reflex_core::value::MAX_STR_LEN`] bytes. `null`, lists and maps have no event form.
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

/// An event as JSON: `{"tag", "source", "time", "seq", "hops", "data": {...}}`.
pub fn event_json(e: &Event) -> Json {
    let data: Map<String, Json> = e
        .data
        .iter()
        .map(|f| (f.name.to_string(), value_json(&f.value)))
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
