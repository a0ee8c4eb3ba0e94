//! Rule test files: YAML read into [`Case`]s, every part placed at its `line:col`.
//!
//! ```yaml
//! - case: high load fires once per host
//!   events:
//!     - at: 0                      # seconds on the case's virtual clock
//!       tag: /client/load/web-1
//!       source: web-1              # default: test
//!       data: {load_avg: 25}
//!       expect:
//!         - fires: load_avg
//!           group: web-1           # optional
//!           reactions:             # optional: rendered arguments, by reaction key
//!             reactions.log.print:
//!               message: load 25 on web-1
//!     - at: 5
//!       tag: /client/load/web-1
//!       source: web-1
//!       data: {load_avg: 30}
//!       expect: nothing
//! ```

use reflex_core::{Event, Value};
use reflex_rules::yaml::{self, Kind, Node, Pos};

/// One case: events on a fresh store and a virtual clock that starts at 0.
#[derive(Debug)]
pub struct Case {
    /// Its name (`case:`), or `case N`.
    pub name: String,
    /// Where it starts.
    pub pos: Pos,
    /// Its events, in order.
    pub events: Vec<Step>,
}

/// One event of a case and what it must do.
#[derive(Debug)]
pub struct Step {
    /// Where it starts.
    pub pos: Pos,
    /// The event; its time is the virtual clock in milliseconds.
    pub event: Event,
    /// What must fire; `None` when nothing is checked.
    pub expect: Option<Expect>,
}

/// What one event must make fire.
#[derive(Debug)]
pub struct Expect {
    /// Where `expect:` is.
    pub pos: Pos,
    /// The firings, exactly (none for `expect: nothing`).
    pub firings: Vec<Expected>,
}

/// One expected firing.
#[derive(Debug)]
pub struct Expected {
    /// Where it is written.
    pub pos: Pos,
    /// The rule's name.
    pub rule: String,
    /// The group it must fire for, when given.
    pub group: Option<String>,
    /// The expected reactions, by key.
    pub reactions: Vec<ExpectedReaction>,
}

/// A reaction key, where it is written, and its expected arguments.
pub type ExpectedReaction = (String, Pos, Vec<ExpectedArg>);

/// An argument's dotted name, its expected text (one per list item), and where it is written.
pub type ExpectedArg = (String, Vec<String>, Pos);

/// A problem with the test file itself.
pub type Problem = (Pos, String);

/// Reads a test file's text into cases, or every problem found.
pub fn parse(text: &str) -> Result<Vec<Case>, Vec<Problem>> {
    let parsed = yaml::parse(text);
    let mut problems: Vec<Problem> = parsed
        .errors
        .iter()
        .map(|(pos, e)| (*pos, e.to_string()))
        .collect();
    let mut cases = Vec::new();
    match parsed.root {
        Some(root) => match root.seq() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(case) = read_case(i, item, &mut problems) {
                        cases.push(case);
                    }
                }
            }
            None => problems.push((root.pos, "a test file is a list of `- case:` items".into())),
        },
        None if problems.is_empty() => {
            problems.push((Pos { line: 1, col: 1 }, "the test file is empty".into()))
        }
        None => {}
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        problems.sort_by_key(|p| p.0);
        Err(problems)
    }
}

/// The value of `key` in a map, and checks that every key is one of `valid`.
fn keys<'n>(
    node: &'n Node,
    valid: &[&str],
    what: &str,
    problems: &mut Vec<Problem>,
) -> Vec<Option<&'n Node>> {
    let mut out = vec![None; valid.len()];
    let Some(map) = node.map() else {
        problems.push((node.pos, format!("{what} must be a map")));
        return out;
    };
    for (k, v) in map {
        match k.scalar().and_then(|k| valid.iter().position(|x| *x == k)) {
            Some(i) => out[i] = Some(v),
            None => problems.push((
                k.pos,
                format!(
                    "unknown key `{}` in {what}; valid keys: {}",
                    k.scalar().unwrap_or("?"),
                    valid.join(", ")
                ),
            )),
        }
    }
    out
}

fn text(node: &Node, what: &str, problems: &mut Vec<Problem>) -> Option<String> {
    match node.scalar() {
        Some(s) => Some(s.to_string()),
        None => {
            problems.push((node.pos, format!("`{what}` must be text")));
            None
        }
    }
}

fn read_case(i: usize, node: &Node, problems: &mut Vec<Problem>) -> Option<Case> {
    let [name, events] = keys(node, &["case", "events"], "a case", problems)[..] else {
        return None;
    };
    let name = name
        .and_then(|n| text(n, "case", problems))
        .unwrap_or_else(|| format!("case {}", i + 1));
    let Some(events) = events else {
        problems.push((node.pos, format!("case `{name}` has no `events:`")));
        return None;
    };
    let Some(items) = events.seq() else {
        problems.push((events.pos, "`events` must be a list".into()));
        return None;
    };
    let mut steps = Vec::new();
    let mut clock_ms = 0u64;
    for item in items {
        if let Some(step) = read_step(item, &mut clock_ms, problems) {
            steps.push(step);
        }
    }
    Some(Case {
        name,
        pos: node.pos,
        events: steps,
    })
}

fn read_step(node: &Node, clock_ms: &mut u64, problems: &mut Vec<Problem>) -> Option<Step> {
    let [at, tag, source, data, expect] = keys(
        node,
        &["at", "tag", "source", "data", "expect"],
        "an event",
        problems,
    )[..] else {
        return None;
    };
    if let Some(at) = at {
        match at.number() {
            Some(s) if s.is_finite() && s >= 0.0 && (s * 1000.0) as u64 >= *clock_ms => {
                *clock_ms = (s * 1000.0).round() as u64;
            }
            Some(_) => problems.push((
                at.pos,
                "`at` is seconds on the case's clock, not before the previous event's".into(),
            )),
            None => problems.push((at.pos, "`at` must be a number of seconds".into())),
        }
    }
    let Some(tag) = tag else {
        problems.push((node.pos, "an event has no `tag:`".into()));
        return None;
    };
    let tag = text(tag, "tag", problems)?;
    let source = match source {
        Some(s) => text(s, "source", problems)?,
        None => "test".to_string(),
    };
    let mut event = match Event::new(&tag, &source) {
        Ok(e) => e,
        Err(e) => {
            problems.push((node.pos, format!("event `{tag}` from `{source}`: {e}")));
            return None;
        }
    };
    event.time = *clock_ms;
    if let Some(data) = data {
        let Some(map) = data.map() else {
            problems.push((data.pos, "`data` must be a map of field: value".into()));
            return None;
        };
        for (k, v) in map {
            let (Some(name), Some(Kind::Scalar { text, plain })) = (k.scalar(), Some(&v.kind))
            else {
                problems.push((v.pos, "a data value is one number, bool or text".into()));
                continue;
            };
            let value = if *plain {
                Value::parse(text)
            } else {
                Value::str(text)
            };
            match value.and_then(|value| event.push(name, value)) {
                Ok(()) => {}
                Err(e) => problems.push((k.pos, format!("data `{name}`: {e}"))),
            }
        }
    }
    let expect = expect.and_then(|e| read_expect(e, problems));
    Some(Step {
        pos: node.pos,
        event,
        expect,
    })
}

fn read_expect(node: &Node, problems: &mut Vec<Problem>) -> Option<Expect> {
    if node.scalar() == Some("nothing") {
        return Some(Expect {
            pos: node.pos,
            firings: Vec::new(),
        });
    }
    let Some(items) = node.seq() else {
        problems.push((
            node.pos,
            "`expect` is `nothing` or a list of `- fires: RULE` items".into(),
        ));
        return None;
    };
    let mut firings = Vec::new();
    for item in items {
        let [fires, group, reactions] = keys(
            item,
            &["fires", "group", "reactions"],
            "an expectation",
            problems,
        )[..] else {
            continue;
        };
        let Some(rule) = fires.and_then(|f| text(f, "fires", problems)) else {
            problems.push((item.pos, "an expectation has no `fires: RULE`".into()));
            continue;
        };
        let group = group.and_then(|g| text(g, "group", problems));
        let mut expected_reactions = Vec::new();
        if let Some(reactions) = reactions {
            match reactions.map() {
                Some(map) => {
                    for (key, args) in map {
                        let key_text = key.scalar().unwrap_or("").to_string();
                        let mut wanted = Vec::new();
                        match args.map() {
                            Some(args) => {
                                for (name, value) in args {
                                    let values = match &value.kind {
                                        Kind::Scalar { text, .. } => vec![text.clone()],
                                        Kind::Seq(items) => items
                                            .iter()
                                            .map(|i| i.scalar().unwrap_or("").to_string())
                                            .collect(),
                                        Kind::Map(_) => {
                                            problems.push((
                                                value.pos,
                                                "write nested arguments with dotted names \
                                                 (`data.host: web-1`)"
                                                    .into(),
                                            ));
                                            continue;
                                        }
                                    };
                                    wanted.push((
                                        name.scalar().unwrap_or("").to_string(),
                                        values,
                                        value.pos,
                                    ));
                                }
                            }
                            None => problems.push((
                                args.pos,
                                "a reaction's expected arguments are a map of name: text".into(),
                            )),
                        }
                        expected_reactions.push((key_text, key.pos, wanted));
                    }
                }
                None => problems.push((
                    reactions.pos,
                    "`reactions` is a map of reaction key: arguments".into(),
                )),
            }
        }
        firings.push(Expected {
            pos: item.pos,
            rule,
            group,
            reactions: expected_reactions,
        });
    }
    Some(Expect {
        pos: node.pos,
        firings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cases_with_places() {
        let text = "- case: one\n  events:\n    - at: 2\n      tag: /t/a\n      data: {x: 5, s: '007'}\n      expect:\n        - fires: r\n          group: test\n    - tag: /t/a\n      expect: nothing\n";
        let cases = parse(text).unwrap();
        let steps = &cases[0].events;
        assert_eq!(steps[0].event.time, 2_000);
        assert_eq!(steps[0].event.get("x"), Some(&Value::Int(5)));
        assert_eq!(steps[0].event.get("s"), Some(&Value::str("007").unwrap()));
        let e = steps[0].expect.as_ref().unwrap();
        assert_eq!((e.firings[0].pos.line, e.firings[0].pos.col), (7, 11));
        assert_eq!(steps[1].event.time, 2_000);
        assert!(steps[1].expect.as_ref().unwrap().firings.is_empty());
    }

    #[test]
    fn problems_are_placed() {
        let err = parse("- case: x\n  events:\n    - tga: /t\n").unwrap_err();
        assert_eq!(err[0].0, Pos { line: 3, col: 7 });
        assert!(err[0].1.contains("unknown key `tga`"), "{err:?}");
    }
}
