//! The live dashboard at `/` on the metrics address: one page embedded in the binary
//! (`dashboard.html`, no asset from outside) that polls `GET /api/dashboard` every second.
//!
//! The event thread owns the registers, so it makes the view: once a second, and only while
//! the page has been asked for within the last [`VIEWED_FOR_MS`], it calls [`Board::publish`]
//! with a [`View`] of what it holds; the HTTP workers only copy out the last JSON made. A view
//! lists at most [`MAX_GROUPS`] groups per rule and costs one pass over the register store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use reflex_core::store::MapStore;
use reflex_rules::Compiled;
use serde_json::{Value as Json, json};

use crate::metrics::{DropReason, HttpRefusal, Metrics};
use reflex_core::host::plugin::float_json as float;

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");
/// How long after the last `GET /api/dashboard` views are still made.
pub const VIEWED_FOR_MS: u64 = 10_000;
/// Most groups listed per rule.
pub const MAX_GROUPS: usize = 50;
/// Most recent firings listed.
pub const MAX_RECENT: usize = 12;

/// The last view made, and whether anyone looks.
#[derive(Debug, Default)]
pub struct Board {
    viewed_ms: AtomicU64,
    json: Mutex<String>,
    /// The previous `(when, events counted)`, for events per second.
    previous: Mutex<Option<(Instant, u64)>>,
}

/// What the event thread shows.
pub struct View<'a> {
    /// The running rulebook.
    pub rulebook: &'a Compiled,
    /// The registers.
    pub store: &'a MapStore,
    /// Known Actors and their last heartbeat.
    pub actors: Vec<(&'a str, Instant)>,
    /// Actions waiting for the Publisher.
    pub pending: usize,
    /// Actions sent and waiting for their result.
    pub unacked: usize,
    /// The counters.
    pub metrics: &'a Metrics,
}

impl Board {
    /// Whether a view is wanted at `now_ms` (the page was asked for recently).
    pub fn wanted(&self, now_ms: u64) -> bool {
        let viewed = self.viewed_ms.load(Relaxed);
        viewed != 0 && now_ms.saturating_sub(viewed) <= VIEWED_FOR_MS
    }

    /// The last view as JSON (`{}` before the first), noting that someone looks at `now_ms`.
    pub fn json(&self, now_ms: u64) -> String {
        self.viewed_ms.store(now_ms.max(1), Relaxed);
        let text = self.json.lock().map(|j| j.clone()).unwrap_or_default();
        if text.is_empty() { "{}".into() } else { text }
    }

    /// Makes the view of `view` at `now` (`now_ms` on the wall clock) and keeps it.
    pub fn publish(&self, view: &View<'_>, now: Instant, now_ms: u64) {
        let m = view.metrics;
        let events = m.events_received.load(Relaxed) + m.events_internal.load(Relaxed);
        let rate = match self.previous.lock() {
            Ok(mut previous) => {
                let rate = previous.map_or(0.0, |(then, n)| {
                    let secs = now.saturating_duration_since(then).as_secs_f64();
                    if secs > 0.0 {
                        events.saturating_sub(n) as f64 / secs
                    } else {
                        0.0
                    }
                });
                *previous = Some((now, events));
                rate
            }
            Err(_) => 0.0,
        };
        let json = render(view, rate, now, now_ms).to_string();
        if let Ok(mut j) = self.json.lock() {
            *j = json;
        }
    }
}

fn render(view: &View<'_>, rate: f64, now: Instant, now_ms: u64) -> Json {
    let program = view.rulebook.program();
    let names = view.rulebook.rule_names();
    let mut groups: HashMap<u32, Vec<Json>> = HashMap::new();
    let mut counts: HashMap<u32, usize> = HashMap::new();
    let (mut firing, mut silent, mut recent) = (Vec::new(), Vec::new(), Vec::new());
    for (rule, group, slot) in view.store.iter() {
        let Some(r) = program.rules.get(rule as usize) else {
            continue;
        };
        let name = names.get(rule as usize).copied().unwrap_or("?");
        let value = slot.window.value(r.register, now_ms);
        *counts.entry(rule).or_default() += 1;
        let listed = groups.entry(rule).or_default();
        if listed.len() < MAX_GROUPS {
            listed.push(json!({
                "group": group,
                "value": value.map_or(Json::Null, float),
                "firing": slot.active,
                "last_fired": slot.last_fired,
            }));
        }
        if slot.active && firing.len() < MAX_GROUPS {
            firing.push(json!({ "rule": name, "group": group }));
        }
        if value.is_none() && silent.len() < MAX_GROUPS {
            silent.push(json!({ "rule": name, "group": group }));
        }
        if let Some(at) = slot.last_fired {
            recent.push((at, name, group));
        }
    }
    recent.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    recent.truncate(MAX_RECENT);
    let rules: Vec<Json> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let r = &program.rules[i];
            let mut listed = groups.remove(&(i as u32)).unwrap_or_default();
            listed.sort_by(|a, b| a["group"].as_str().cmp(&b["group"].as_str()));
            json!({
                "name": name,
                "register": format!("{:?}", r.register).to_lowercase(),
                "field": program.str(r.field),
                "condition": format!("{:?}", r.func).to_lowercase(),
                "threshold": float(r.lo),
                "period_ms": r.period_ms,
                "groups_total": counts.get(&(i as u32)).copied().unwrap_or(0),
                "groups": listed,
            })
        })
        .collect();
    let mut actors: Vec<Json> = view
        .actors
        .iter()
        .map(|(id, at)| {
            let ago = now.saturating_duration_since(*at).as_millis() as u64;
            json!({ "id": id, "last_heartbeat_ms": now_ms.saturating_sub(ago), "ago_ms": ago })
        })
        .collect();
    actors.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let m = view.metrics;
    let drops: serde_json::Map<String, Json> = DropReason::ALL
        .iter()
        .filter(|r| m.drops(**r) > 0)
        .map(|r| (r.as_str().to_string(), Json::from(m.drops(*r))))
        .collect();
    let refused: serde_json::Map<String, Json> = HttpRefusal::ALL
        .iter()
        .filter(|r| m.http.refusals(**r) > 0)
        .map(|r| (r.as_str().to_string(), Json::from(m.http.refusals(*r))))
        .collect();
    json!({
        "time": now_ms,
        "events_per_second": float(rate),
        "totals": {
            "events": m.events_received.load(Relaxed),
            "internal": m.events_internal.load(Relaxed),
            "http_events": m.http.events.load(Relaxed),
            "fired": m.rules.fired_total(),
            "actions_sent": m.actions_sent.load(Relaxed),
            "results": m.results.load(Relaxed),
        },
        "rules": rules,
        "firing": firing,
        "silent": silent,
        "recent": recent.iter().map(|(at, rule, group)| json!({ "at": at, "rule": rule, "group": group })).collect::<Vec<_>>(),
        "actors": actors,
        "actions": {
            "pending": view.pending,
            "unacked": view.unacked,
            "expired": m.drops(DropReason::ActionExpired),
        },
        "drops": drops,
        "http_refused": refused,
    })
}

#[cfg(test)]
mod tests {
    use reflex_core::engine;
    use reflex_rules::{Catalog, compile_str};

    use super::*;

    #[test]
    fn a_view_shows_registers_firings_and_actors() {
        let book = "/load/*:\n  rules:\n    - high:\n        rule: rules.simple.gt\n        field: v\n        threshold: 5\n";
        let compiled = compile_str("t.yml", book, &Catalog::builtin()).unwrap();
        let mut store = MapStore::new(100);
        let mut e = reflex_core::Event::new("/load/a", "web-1").unwrap();
        e.push("v", reflex_core::value::Value::Int(9)).unwrap();
        engine::evaluate(
            &compiled.program(),
            &mut store,
            &e,
            1_000,
            &mut |_: engine::Firing<'_>| {},
        );
        let metrics = Metrics::new(vec![]);
        let board = Board::default();
        assert!(!board.wanted(2_000));
        assert_eq!(board.json(2_000), "{}");
        assert!(board.wanted(2_000));
        let now = Instant::now();
        let view = View {
            rulebook: &compiled,
            store: &store,
            actors: vec![("db-1", now)],
            pending: 1,
            unacked: 2,
            metrics: &metrics,
        };
        board.publish(&view, now, 2_000);
        let j: Json = serde_json::from_str(&board.json(2_000)).unwrap();
        assert_eq!(j["rules"][0]["name"], "high");
        assert_eq!(j["rules"][0]["groups"][0]["group"], "web-1");
        assert_eq!(j["rules"][0]["groups"][0]["value"], 9.0);
        assert_eq!(j["rules"][0]["groups"][0]["firing"], true);
        assert_eq!(j["firing"][0]["group"], "web-1");
        assert_eq!(j["recent"][0]["rule"], "high");
        assert_eq!(j["actors"][0]["id"], "db-1");
        assert_eq!(j["actions"]["unacked"], 2);
    }
}
