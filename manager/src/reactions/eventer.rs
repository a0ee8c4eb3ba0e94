//! `reactions.eventer.fire_event`: fires a new event through the rules.
//!
//! Arguments: `tag` (required), `data` (a map of values; each becomes a field). The new event
//! keeps the triggering event's source and is one hop further from it; past
//! [`reflex_core::event::MAX_HOPS`] hops it is refused and counted as a `loop`.

use reflex_core::Event;
use reflex_core::host::plugin::json_value;

use super::{Builtin, Handler, Job, Outcome};

/// The registration of `reactions.eventer.fire_event`.
pub const BUILTIN: Builtin = Builtin {
    key: "reactions.eventer.fire_event",
    make: || Box::new(FireEvent),
};

/// Fires an event.
pub struct FireEvent;

impl Handler for FireEvent {
    fn perform(&self, job: &Job) -> Outcome {
        let Some(tag) = job.args.text("tag") else {
            return Outcome::failed(-1, "no `tag` argument");
        };
        let mut e = match Event::new(tag, &job.event.source) {
            Ok(e) => e,
            Err(err) => return Outcome::failed(-1, format!("tag `{tag}`: {err}")),
        };
        e.time = reflex_core::host::clock::now_ms();
        e.seq = job.event.seq;
        e.hops = job.event.hops.saturating_add(1);
        for (name, arg) in job.args.under("data") {
            if arg.item {
                return Outcome::failed(-1, format!("data.{name}: lists are not event values"));
            }
            let value = match json_value(&arg.value) {
                Ok(v) => v,
                Err(why) => return Outcome::failed(-1, format!("data.{name}: {why}")),
            };
            if let Err(err) = e.push(name, value) {
                return Outcome::failed(-1, format!("data.{name}: {err}"));
            }
        }
        let mut out = Outcome::ok(format!("fired {tag}"));
        out.emit = Some(e);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactions::arguments::{ArgValue, Args};
    use reflex_core::Value;
    use serde_json::json;
    use std::time::Instant;

    fn job(args: Vec<(&str, serde_json::Value)>) -> Job {
        let mut event = Event::new("/client/load/web-1", "web-1").unwrap();
        event.hops = 2;
        Job {
            func: 0,
            rule: "load_avg".into(),
            event,
            value: None,
            register: 0.0,
            args: Args {
                items: args
                    .into_iter()
                    .map(|(n, v)| ArgValue {
                        name: n.into(),
                        item: false,
                        text: v.as_str().map(str::to_string).unwrap_or(v.to_string()),
                        value: v,
                    })
                    .collect(),
            },
            received: Instant::now(),
        }
    }

    #[test]
    fn fires_with_data_one_hop_further() {
        let out = FireEvent.perform(&job(vec![
            ("tag", json!("/reconfig/lb")),
            ("data.turn_down_the_hose", json!("web-1")),
            ("data.n", json!(3)),
        ]));
        assert!(out.ok, "{out:?}");
        let e = out.emit.unwrap();
        assert_eq!(e.tag.as_str(), "/reconfig/lb");
        assert_eq!(e.source.as_str(), "web-1");
        assert_eq!(e.hops, 3);
        assert_eq!(e.get("n"), Some(&Value::Int(3)));
        assert_eq!(
            e.get("turn_down_the_hose"),
            Some(&Value::str("web-1").unwrap())
        );
    }

    #[test]
    fn bad_tags_and_values_fail() {
        assert!(!FireEvent.perform(&job(vec![("tag", json!("no-slash"))])).ok);
        assert!(!FireEvent.perform(&job(vec![])).ok);
        let long = json!("x".repeat(100));
        assert!(
            !FireEvent
                .perform(&job(vec![("tag", json!("/t")), ("data.x", long)]))
                .ok
        );
    }
}
