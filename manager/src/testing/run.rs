//! Runs test cases through the real engine on a virtual clock, checks their expectations, and
//! explains each evaluation on request.

use std::fmt::Write as _;
use std::io::Write;

use reflex_core::engine;
use reflex_core::program::{ChainOp, Program, Rule};
use reflex_core::rule::RuleFn;
use reflex_core::store::{MapStore, Store};
use reflex_core::tag::TagIndex;
use reflex_core::{Event, Value};
use reflex_rules::Compiled;

use super::file::{Case, Expected, Step};
use crate::reactions::arguments::Args;

/// Register slots one case (or one replay) may use.
pub const CASE_SLOTS: usize = 100_000;

/// What a run found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Cases run.
    pub cases: usize,
    /// Events evaluated.
    pub events: usize,
    /// Expectations checked (one per `expect:`, and one per expected firing).
    pub checked: usize,
    /// Expectations that failed.
    pub failed: usize,
}

/// One firing as the engine reported it, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    /// The rule's name.
    pub rule: String,
    /// Its group (empty for `group_by: none`).
    pub group: String,
    /// Reaction key, then its rendered arguments.
    pub reactions: Vec<(String, Args)>,
}

/// Evaluates `event` at its own time with the real engine and renders every firing's
/// reactions, as the Manager would hand them out.
pub fn evaluate(program: &Program<'_>, store: &mut MapStore, event: &Event) -> Vec<Got> {
    let mut got = Vec::new();
    engine::evaluate(program, store, event, event.time, |f| {
        let rule = &program.rules[f.rule as usize];
        let ctx = f.context(event);
        got.push(Got {
            rule: program.str(rule.name).to_string(),
            group: f.group.to_string(),
            reactions: program
                .reactions_of(rule)
                .iter()
                .map(|r| {
                    (
                        program.str(r.key).to_string(),
                        Args::render(program, r, &ctx),
                    )
                })
                .collect(),
        });
    });
    got
}

/// Runs `cases` of `file` against `compiled`; failures go to `out` as
/// `file:line:col: expected ..., got ...`, and with `explain` every evaluation is described.
pub fn run(
    compiled: &Compiled,
    file: &str,
    cases: &[Case],
    explain: bool,
    out: &mut impl Write,
) -> Tally {
    let program = compiled.program();
    let mut tally = Tally::default();
    for case in cases {
        tally.cases += 1;
        if explain {
            let _ = writeln!(
                out,
                "{file}:{}:{}: case `{}`",
                case.pos.line, case.pos.col, case.name
            );
        }
        let mut store = MapStore::new(CASE_SLOTS);
        for step in &case.events {
            tally.events += 1;
            let before = explain.then(|| matched_state(&program, &store, &step.event));
            let got = evaluate(&program, &mut store, &step.event);
            if let Some(before) = before {
                explain_step(&program, &store, step, &before, &got, file, out);
            }
            check(step, &got, file, &mut tally, out);
        }
    }
    tally
}

fn describe(got: &[Got]) -> String {
    if got.is_empty() {
        return "nothing".into();
    }
    got.iter()
        .map(|g| format!("{} ({})", g.rule, g.group))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check(step: &Step, got: &[Got], file: &str, tally: &mut Tally, out: &mut impl Write) {
    let Some(expect) = &step.expect else {
        return;
    };
    let mut fail = |pos: reflex_rules::yaml::Pos, message: String| {
        tally.failed += 1;
        let _ = writeln!(out, "{file}:{}:{}: {message}", pos.line, pos.col);
    };
    tally.checked += 1;
    let mut used = vec![false; got.len()];
    for want in &expect.firings {
        tally.checked += 1;
        let found = got.iter().enumerate().position(|(i, g)| {
            !used[i] && g.rule == want.rule && want.group.as_ref().is_none_or(|w| *w == g.group)
        });
        match found {
            Some(i) => {
                used[i] = true;
                for message in compare_reactions(want, &got[i]) {
                    fail(message.0, message.1);
                }
            }
            None => fail(
                want.pos,
                format!("expected {} to fire, got {}", wanted(want), describe(got)),
            ),
        }
    }
    let extra: Vec<&Got> = got
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(g, _)| g)
        .collect();
    if !extra.is_empty() {
        let expected = if expect.firings.is_empty() {
            "nothing to fire".to_string()
        } else {
            let names: Vec<String> = expect.firings.iter().map(wanted).collect();
            format!("only {} to fire", names.join(", "))
        };
        let extra: Vec<Got> = extra
            .iter()
            .map(|g| Got {
                rule: g.rule.clone(),
                group: g.group.clone(),
                reactions: Vec::new(),
            })
            .collect();
        fail(
            expect.pos,
            format!("expected {expected}, got {} as well", describe(&extra)),
        );
    }
}

fn wanted(want: &Expected) -> String {
    match &want.group {
        Some(g) => format!("{} ({g})", want.rule),
        None => want.rule.clone(),
    }
}

fn compare_reactions(want: &Expected, got: &Got) -> Vec<(reflex_rules::yaml::Pos, String)> {
    let mut problems = Vec::new();
    for (key, pos, args) in &want.reactions {
        let Some((_, rendered)) = got.reactions.iter().find(|(k, _)| k == key) else {
            let keys: Vec<&str> = got.reactions.iter().map(|(k, _)| k.as_str()).collect();
            problems.push((
                *pos,
                format!(
                    "expected {} to run {key}, got {}",
                    got.rule,
                    if keys.is_empty() {
                        "no reaction".to_string()
                    } else {
                        keys.join(", ")
                    }
                ),
            ));
            continue;
        };
        for (name, values, pos) in args {
            let texts: Vec<&str> = rendered
                .items
                .iter()
                .filter(|a| a.name == *name)
                .map(|a| a.text.as_str())
                .collect();
            if texts != values.iter().map(String::as_str).collect::<Vec<_>>() {
                let show = |v: &[&str]| match v {
                    [] => "no such argument".to_string(),
                    [one] => format!("{one:?}"),
                    many => format!("{many:?}"),
                };
                let want: Vec<&str> = values.iter().map(String::as_str).collect();
                problems.push((
                    *pos,
                    format!(
                        "expected {key} argument `{name}` = {}, got {}",
                        show(&want),
                        show(&texts)
                    ),
                ));
            }
        }
    }
    problems
}

/// Per matched rule: (rule index, edge latched, last fired) before the evaluation.
type Before = Vec<(u32, bool, Option<u64>)>;

fn matched_rules(program: &Program<'_>, tag: &str) -> Vec<u32> {
    let mut rules = Vec::new();
    TagIndex::new(*program).for_each_match(tag, |e| {
        if let Some(entry) = program.entries.get(e as usize) {
            rules.extend_from_slice(program.rules_of(entry));
        }
    });
    rules.sort_unstable();
    rules
}

fn matched_state(program: &Program<'_>, store: &MapStore, event: &Event) -> Before {
    matched_rules(program, &event.tag)
        .into_iter()
        .map(|r| {
            let rule = &program.rules[r as usize];
            let slot = group(program, rule, event).and_then(|g| store.slot(r, &g));
            (
                r,
                slot.is_some_and(|s| s.active),
                slot.and_then(|s| s.last_fired),
            )
        })
        .collect()
}

fn group(program: &Program<'_>, rule: &Rule, event: &Event) -> Option<String> {
    use reflex_core::program::GroupBy;
    Some(match rule.group_by {
        GroupBy::Source => event.source.to_string(),
        GroupBy::Tag => event.tag.to_string(),
        GroupBy::Nothing => String::new(),
        GroupBy::Field(f) => event.get(program.str(f))?.to_string(),
        GroupBy::SourceField(f) => format!("{}/{}", event.source, event.get(program.str(f))?),
    })
}

fn symbol(f: RuleFn) -> &'static str {
    match f {
        RuleFn::Gt => ">",
        RuleFn::Ge => ">=",
        RuleFn::Lt => "<",
        RuleFn::Le => "<=",
        RuleFn::Eq => "==",
        RuleFn::Ne => "!=",
        RuleFn::Between => "between",
        RuleFn::Outside => "outside",
        RuleFn::Changed => "changed from",
    }
}

/// A rule's register value and own condition for the event's group, as text.
fn condition(
    program: &Program<'_>,
    store: &MapStore,
    r: u32,
    event: &Event,
    now: u64,
) -> (String, bool) {
    let rule = &program.rules[r as usize];
    let Some(g) = group(program, rule, event) else {
        return ("no group (the event lacks the group field)".into(), false);
    };
    let Some(slot) = store.slot(r, &g) else {
        return ("empty window".into(), false);
    };
    let Some(v) = slot.window.value(rule.register, now) else {
        return ("empty window".into(), false);
    };
    // The slot remembers this evaluation's value as `previous` now: for `changed`, the
    // comparison was made against the value before, which the firing shows.
    let holds = rule.func.eval(v, rule.lo, rule.hi, slot.previous);
    let text = match rule.func {
        RuleFn::Between | RuleFn::Outside => {
            format!("{v} {} [{}, {}]", symbol(rule.func), rule.lo, rule.hi)
        }
        RuleFn::Changed => format!("{v} (changes are compared with the value before)"),
        _ => format!("{v} {} {}", symbol(rule.func), rule.lo),
    };
    (text, holds)
}

fn explain_step(
    program: &Program<'_>,
    store: &MapStore,
    step: &Step,
    before: &Before,
    got: &[Got],
    file: &str,
    out: &mut impl Write,
) {
    let e = &step.event;
    let mut data = String::new();
    for f in e.data.iter() {
        let _ = write!(data, " {}={}", f.name, f.value);
    }
    let _ = writeln!(
        out,
        "{file}:{}:{}: at {}s {} from {}:{data}",
        step.pos.line,
        step.pos.col,
        e.time as f64 / 1000.0,
        e.tag,
        e.source
    );
    if before.is_empty() {
        let _ = writeln!(out, "  no rulebook entry matches this tag");
    }
    let fired: Vec<&str> = got.iter().map(|g| g.rule.as_str()).collect();
    // The matched rules, then the chain dependents evaluated with them.
    let mut shown: Vec<u32> = before.iter().map(|b| b.0).collect();
    for &(r, ..) in before {
        for &d in program.dependents_of(&program.rules[r as usize]) {
            if !shown.contains(&d) {
                shown.push(d);
            }
        }
    }
    for r in shown {
        let rule = &program.rules[r as usize];
        let name = program.str(rule.name);
        let field = program.str(rule.field);
        let (text, holds) = condition(program, store, r, e, e.time);
        let mut line = format!("  {name}: ");
        let sample = match e.get(field) {
            Some(v) if v.as_f64().is_some() => format!("sample {field}={v}"),
            Some(Value::Str(s)) => format!("{field}={s:?} is not a number, not used"),
            Some(v) => format!("{field}={v} not used"),
            None if before.iter().any(|b| b.0 == r) => format!("no `{field}` in the event"),
            None => "evaluated again for its chain".to_string(),
        };
        let _ = write!(line, "{sample}; register {text} is {holds}");
        let mut combined = holds;
        for link in program.chain_of(rule) {
            let other = &program.rules[link.rule as usize];
            let (t, h) = condition(program, store, link.rule, e, e.time);
            let op = match link.op {
                ChainOp::And => "AND",
                ChainOp::Or => "OR",
                ChainOp::AndNot => "AND_NOT",
            };
            combined = match link.op {
                ChainOp::And => combined && h,
                ChainOp::Or => combined || h,
                ChainOp::AndNot => combined && !h,
            };
            let _ = write!(line, "; {op} {} ({t}) is {h}", program.str(other.name));
        }
        let prior = before.iter().find(|b| b.0 == r);
        let why = if fired.contains(&name) {
            "fired".to_string()
        } else if prior.is_some() && e.get(field).is_none_or(|v| v.as_f64().is_none()) {
            "not evaluated".to_string()
        } else {
            not_fired(rule, combined, prior, e.time)
        };
        let _ = writeln!(out, "{line} => {why}");
    }
}

/// Why an evaluated rule did not fire, from its combined condition and its state before.
fn not_fired(
    rule: &Rule,
    combined: bool,
    prior: Option<&(u32, bool, Option<u64>)>,
    now: u64,
) -> String {
    let cooldown_until = prior
        .and_then(|p| p.2)
        .map(|last| last + u64::from(rule.cooldown_ms))
        .filter(|&until| rule.cooldown_ms > 0 && now < until);
    if !combined {
        return "not fired: the combined condition is false".into();
    }
    if let Some(until) = cooldown_until {
        return format!(
            "not fired: held back by the cooldown until {}s",
            until as f64 / 1000.0
        );
    }
    if prior.is_some_and(|p| p.1) {
        return "not fired: still true since an earlier firing (edge)".into();
    }
    "not fired".into()
}
