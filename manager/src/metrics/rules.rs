//! Per-rule counters, labelled with the rule's name: the names come from the rulebook, so the
//! number of series is bounded by what the operator wrote. A rule keeps its counters across
//! reloads while its name stays.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// One rule's counters.
#[derive(Debug, Default)]
pub struct RuleCount {
    /// Evaluations of the rule (with a sample, or again for its chain).
    pub evaluated: AtomicU64,
    /// Firings of the rule.
    pub fired: AtomicU64,
}

/// Every rule's counters, by name, in the order the names were first seen.
#[derive(Debug, Default)]
pub struct RuleCounters {
    by_name: Mutex<Vec<(String, Arc<RuleCount>)>>,
}

impl RuleCounters {
    /// The counters of each of `names` (a rulebook's rules, in order), made for new names.
    pub fn for_rules<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<Arc<RuleCount>> {
        let mut table = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        names
            .into_iter()
            .map(|name| match table.iter().find(|(n, _)| n == name) {
                Some((_, c)) => c.clone(),
                None => {
                    let c = Arc::new(RuleCount::default());
                    table.push((name.to_string(), c.clone()));
                    c
                }
            })
            .collect()
    }

    /// Firings of every rule, summed.
    pub fn fired_total(&self) -> u64 {
        let table = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        table.iter().map(|(_, c)| c.fired.load(Relaxed)).sum()
    }

    /// `reflex_rules_evaluated_total` and `reflex_rules_fired_total`, one series per rule.
    pub fn render(&self, out: &mut String) {
        let table = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        for (name, help, pick) in [
            (
                "reflex_rules_evaluated_total",
                "Rule evaluations, by rule: events with the rule's field under a matching tag \
                 glob, and evaluations again for a chain.",
                (|c: &RuleCount| c.evaluated.load(Relaxed)) as fn(&RuleCount) -> u64,
            ),
            (
                "reflex_rules_fired_total",
                "Rule firings, by rule.",
                |c: &RuleCount| c.fired.load(Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (rule, c) in table.iter() {
                let _ = writeln!(out, "{name}{{rule=\"{}\"}} {}", escape(rule), pick(c));
            }
        }
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_counters_across_rulebooks() {
        let r = RuleCounters::default();
        let first = r.for_rules(["a", "b"]);
        first[1].fired.fetch_add(2, Relaxed);
        let second = r.for_rules(["b", "c"]);
        second[0].fired.fetch_add(1, Relaxed);
        let mut out = String::new();
        r.render(&mut out);
        assert!(
            out.contains("reflex_rules_fired_total{rule=\"b\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("reflex_rules_evaluated_total{rule=\"c\"} 0\n"),
            "{out}"
        );
    }
}
