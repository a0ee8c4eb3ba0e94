//! What the ingest endpoints take in, turned into events: the JSON event of `POST /events`
//! and the Prometheus Alertmanager webhook payload of `POST /alertmanager`. Pure functions:
//! bytes in, events or a reason out (see `docs/operations.md` for both formats).

use reflex_core::Event;
use reflex_core::value::{MAX_STR_LEN, Value};
use serde_json::Value as Json;

use reflex_core::host::plugin::json_value;
use reflex_core::text::clip;

/// The reserved tag space: the Manager's own events.
pub const RESERVED_PREFIX: &str = "/reflex/";
/// Most events one request may carry.
pub const MAX_EVENTS_PER_REQUEST: usize = 100;
/// Longest alert name or instance kept in an Alertmanager event's tag, in bytes.
const MAX_TAG_SEGMENT: usize = 40;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Not JSON at all.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not the shape expected.
    #[error("{0}")]
    Shape(String),
    /// A tag under `/reflex/`.
    #[error("tag `{0}`: the /reflex/ tags belong to the Manager")]
    Reserved(String),
    /// A `source` other than the token's holder.
    #[error("source `{given}` is not the token's holder `{holder}`")]
    Source {
        /// The source the body names.
        given: String,
        /// Whom the token authenticates.
        holder: String,
    },
}

/// The events of a `POST /events` body from `holder`: one JSON object
/// `{"tag": "/a/b", "source": "web-1", "data": {"k": 1}}` (`source` optional, and then the
/// holder; `data` optional) or a list of them. Every event is stamped `now_ms`.
pub fn events(body: &[u8], holder: &str, now_ms: u64) -> Result<Vec<Event>, IngestError> {
    let json: Json =
        serde_json::from_slice(body).map_err(|e| IngestError::NotJson(e.to_string()))?;
    let items = match json {
        Json::Array(items) => items,
        one @ Json::Object(_) => vec![one],
        _ => return Err(shape("expected an event object or a list of them")),
    };
    if items.is_empty() || items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(shape(format!(
            "expected 1 to {MAX_EVENTS_PER_REQUEST} events, got {}",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            one_event(item, holder, now_ms).map_err(|e| match e {
                IngestError::Shape(s) if items.len() > 1 => shape(format!("event {i}: {s}")),
                other => other,
            })
        })
        .collect()
}

fn shape(text: impl Into<String>) -> IngestError {
    IngestError::Shape(text.into())
}

fn one_event(item: &Json, holder: &str, now_ms: u64) -> Result<Event, IngestError> {
    let Json::Object(map) = item else {
        return Err(shape("an event is a JSON object"));
    };
    if let Some(key) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "tag" | "source" | "data"))
    {
        return Err(shape(format!(
            "unknown key `{key}`: an event has `tag`, `source` and `data`"
        )));
    }
    let tag = match map.get("tag") {
        Some(Json::String(t)) => t.as_str(),
        Some(_) => return Err(shape("`tag` is a string")),
        None => return Err(shape("`tag` is missing")),
    };
    if tag.starts_with(RESERVED_PREFIX) {
        return Err(IngestError::Reserved(tag.to_string()));
    }
    match map.get("source") {
        None => {}
        Some(Json::String(s)) if s == holder => {}
        Some(Json::String(s)) => {
            return Err(IngestError::Source {
                given: s.clone(),
                holder: holder.to_string(),
            });
        }
        Some(_) => return Err(shape("`source` is a string")),
    }
    let mut e = Event::new(tag, holder).map_err(|err| shape(format!("tag `{tag}`: {err}")))?;
    e.time = now_ms;
    match map.get("data") {
        None => {}
        Some(Json::Object(data)) => {
            for (k, v) in data {
                let value = json_value(v).map_err(|why| shape(format!("data `{k}`: {why}")))?;
                e.push(k, value)
                    .map_err(|err| shape(format!("data `{k}`: {err}")))?;
            }
        }
        Some(_) => return Err(shape("`data` is an object of field names to values")),
    }
    Ok(e)
}

/// The events of an Alertmanager webhook payload (version 4) from `holder`, one per alert:
///
/// * tag `/alertmanager/<alertname>/<instance>` (each segment cut to 40 bytes, `/` and
///   spaces replaced by `_`; `-` when the label is missing);
/// * fields `status` (`firing` or `resolved`), `firing` (a boolean), `severity` (the label,
///   or `none`), then the other labels by name in alphabetical order while they fit (an event
///   holds 8 fields; labels whose names are not field names are left out), values cut to 64
///   bytes;
/// * source: the token's holder; time: `now_ms`.
pub fn alerts(body: &[u8], holder: &str, now_ms: u64) -> Result<Vec<Event>, IngestError> {
    let json: Json =
        serde_json::from_slice(body).map_err(|e| IngestError::NotJson(e.to_string()))?;
    let Some(Json::Array(alerts)) = json.get("alerts") else {
        return Err(shape(
            "expected an Alertmanager webhook payload with `alerts`",
        ));
    };
    if alerts.len() > MAX_EVENTS_PER_REQUEST {
        return Err(shape(format!(
            "at most {MAX_EVENTS_PER_REQUEST} alerts per request (set max_alerts in the webhook config)"
        )));
    }
    let mut out = Vec::with_capacity(alerts.len());
    for (i, alert) in alerts.iter().enumerate() {
        let status = match alert.get("status") {
            Some(Json::String(s)) => s.as_str(),
            _ => return Err(shape(format!("alert {i}: `status` is missing"))),
        };
        let labels = match alert.get("labels") {
            Some(Json::Object(l)) => l,
            _ => return Err(shape(format!("alert {i}: `labels` is missing"))),
        };
        let label = |name: &str| labels.get(name).and_then(Json::as_str);
        let tag = format!(
            "/alertmanager/{}/{}",
            segment(label("alertname").unwrap_or("-")),
            segment(label("instance").unwrap_or("-"))
        );
        let mut e = Event::new(&tag, holder).map_err(|err| shape(format!("alert {i}: {err}")))?;
        e.time = now_ms;
        let text = |s: &str| Value::str(clip(s, MAX_STR_LEN));
        let fixed = [
            ("status", text(status)),
            ("firing", Ok(Value::Bool(status == "firing"))),
            ("severity", text(label("severity").unwrap_or("none"))),
        ];
        for (name, value) in fixed {
            if let Ok(v) = value {
                let _ = e.push(name, v);
            }
        }
        let mut rest: Vec<(&String, &Json)> = labels
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "instance" | "severity"))
            .collect();
        rest.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in rest {
            let Some(s) = v.as_str() else { continue };
            if let Ok(v) = text(s) {
                // Past the event's capacity, or a label name that is no field name: left out.
                let _ = e.push(k, v);
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// One tag segment from a label value.
fn segment(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c == '/' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cut = clip(&clean, MAX_TAG_SEGMENT);
    if cut.is_empty() {
        "-".into()
    } else {
        cut.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_take_the_token_holder_as_source() {
        let body = br#"{"tag": "/ci/build/web", "data": {"ok": true, "secs": 12.5, "n": 3, "who": "bob"}}"#;
        let e = &events(body, "ci", 7).unwrap()[0];
        assert_eq!(e.tag.as_str(), "/ci/build/web");
        assert_eq!(e.source.as_str(), "ci");
        assert_eq!(e.time, 7);
        assert_eq!(e.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(e.get("n"), Some(&Value::Int(3)));
        let two = br#"[{"tag": "/a", "source": "ci"}, {"tag": "/b"}]"#;
        assert_eq!(events(two, "ci", 0).unwrap().len(), 2);
    }

    #[test]
    fn events_are_refused_with_reasons() {
        let refuse = |body: &str| events(body.as_bytes(), "ci", 0).unwrap_err();
        assert!(matches!(refuse("{"), IngestError::NotJson(_)));
        assert!(matches!(
            refuse(r#"{"tag": "/reflex/result/db-1"}"#),
            IngestError::Reserved(_)
        ));
        assert!(matches!(
            refuse(r#"{"tag": "/a", "source": "db-1"}"#),
            IngestError::Source { .. }
        ));
        assert_eq!(refuse("[]").to_string(), "expected 1 to 100 events, got 0");
        assert_eq!(
            refuse(r#"{"tag": "/a", "fields": {}}"#).to_string(),
            "unknown key `fields`: an event has `tag`, `source` and `data`"
        );
        assert_eq!(
            refuse(r#"{"tag": "a"}"#).to_string(),
            "tag `a`: tag must start with '/' and hold no control characters"
        );
        assert!(
            refuse(r#"{"tag": "/a", "data": {"x": [1]}}"#)
                .to_string()
                .starts_with("data `x`:")
        );
        let nine: Vec<String> = (0..9).map(|i| format!("\"f{i}\": {i}")).collect();
        let many = format!(r#"{{"tag": "/a", "data": {{{}}}}}"#, nine.join(","));
        assert!(
            refuse(&many).to_string().starts_with("data `f"),
            "{}",
            refuse(&many)
        );
    }

    #[test]
    fn alerts_map_to_events() {
        let body = br#"{"version": "4", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "HighLoad", "instance": "web-1:9100",
             "severity": "critical", "job": "node", "team": "ops"}},
            {"status": "resolved", "labels": {"alertname": "Disk Full"}}]}"#;
        let got = alerts(body, "alertmanager", 5).unwrap();
        assert_eq!(got[0].tag.as_str(), "/alertmanager/HighLoad/web-1:9100");
        assert_eq!(got[0].get("status"), Some(&Value::str("firing").unwrap()));
        assert_eq!(got[0].get("firing"), Some(&Value::Bool(true)));
        assert_eq!(
            got[0].get("severity"),
            Some(&Value::str("critical").unwrap())
        );
        assert_eq!(got[0].get("job"), Some(&Value::str("node").unwrap()));
        assert_eq!(got[1].tag.as_str(), "/alertmanager/Disk_Full/-");
        assert_eq!(got[1].get("firing"), Some(&Value::Bool(false)));
        assert_eq!(got[1].get("severity"), Some(&Value::str("none").unwrap()));
        assert!(alerts(b"{}", "am", 0).is_err());
        assert!(alerts(b"\xff", "am", 0).is_err());
    }
}
