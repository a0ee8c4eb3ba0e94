//! The fan-out of one evaluation: the rules that fired become, in rulebook order, local jobs
//! for the worker pool and actions for the outbox, and what became of an action becomes the
//! text of its report. Pure: it returns what to do and the event loop does it, so it is tested
//! here without sockets.

use std::time::Instant;

use reflex_core::Event;
use reflex_core::event::SourceId;
use reflex_core::program::{Context, Program};
use reflex_core::value::Value;
use reflex_core::wire::Action;

use crate::actions::build::{self, ActionError};
use crate::metrics::DropReason;
use crate::reactions::{Args, Job};

/// A rule that fired, with what its reactions are rendered from.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The rule's index in the program.
    pub rule: u32,
    /// Its register value.
    pub register: f64,
    /// The value it read from the event.
    pub value: Option<Value>,
}

/// One reaction to hand out. Steps live only from the fan-out to their dispatch, within one
/// event, so they are not boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Step<'a> {
    /// A local reaction, for the worker pool.
    Local(Job),
    /// A remote reaction, for the outbox.
    Remote(Remote<'a>),
}

/// A remote reaction rendered into an action.
#[derive(Debug)]
pub struct Remote<'a> {
    /// The reaction's number (for its counter).
    pub func: u16,
    /// The reaction's key.
    pub key: &'a str,
    /// The rule that fired.
    pub rule: &'a str,
    /// The action's id.
    pub id: u64,
    /// The rendered target.
    pub target: String,
    /// The action, or why it cannot be made (a target or argument too long).
    pub action: Result<Action, ActionError>,
}

/// The reactions of `firings` (of `event`, received at `received`), in rulebook order: local
/// ones as jobs, remote ones as actions from `source` issued at `now_ms` and valid for
/// `ttl_ms`, each with an id from `next_id`.
#[allow(clippy::too_many_arguments)]
pub fn fan_out<'a>(
    program: &Program<'a>,
    event: &Event,
    firings: &[Fired],
    received: Instant,
    source: &SourceId,
    now_ms: u64,
    ttl_ms: u64,
    mut next_id: impl FnMut() -> u64,
    steps: &mut Vec<Step<'a>>,
) {
    for fired in firings {
        let Some(rule) = program.rules.get(fired.rule as usize) else {
            continue;
        };
        let ctx = Context {
            event,
            rule: fired.rule,
            value: fired.value.as_ref(),
            register: fired.register,
        };
        let rule_name = program.str(rule.name);
        for reaction in program.reactions_of(rule) {
            if reaction.remote {
                let target = build::target(program, reaction, &ctx);
                let id = next_id();
                let action = build::action(
                    program,
                    reaction,
                    &ctx,
                    id,
                    source,
                    &target,
                    now_ms..now_ms.saturating_add(ttl_ms),
                );
                steps.push(Step::Remote(Remote {
                    func: reaction.func,
                    key: program.str(reaction.key),
                    rule: rule_name,
                    id,
                    target,
                    action,
                }));
            } else {
                steps.push(Step::Local(Job {
                    func: reaction.func,
                    rule: rule_name.to_string(),
                    event: event.clone(),
                    value: fired.value.clone(),
                    register: fired.register,
                    args: Args::render(program, reaction, &ctx),
                    received,
                }));
            }
        }
    }
}

/// The `ok` and `output` of the report of action `id` to `target`, from what the outbox made
/// of it: `Ok(copies)` sent or queued, or why it was dropped.
pub fn sent_report(id: u64, target: &str, submitted: Result<usize, DropReason>) -> (bool, String) {
    match submitted {
        Ok(n) => (
            true,
            format!(
                "queued: action {id} to {target} ({n} cop{})",
                if n == 1 { "y" } else { "ies" }
            ),
        ),
        Err(_) => (false, format!("no known actor matches {target}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::engine;
    use reflex_core::event::make_source;
    use reflex_core::store::MapStore;
    use reflex_rules::{Catalog, compile_str};

    const BOOK: &str = r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
        fire: always
        reactions:
          - reactions.log.print:
              message: 'load {{ value }} on {{ event.source }}'
          - reactions.actor.run:
              target: '{{ event.source }}'
              argv: [uptime]
          - reactions.actor.run:
              argv: ['{{ value }}']
"#;

    fn firings(program: &Program<'_>, e: &Event) -> Vec<Fired> {
        let mut store = MapStore::new(16);
        let mut out = Vec::new();
        engine::evaluate(program, &mut store, e, 1_000, &mut |f: engine::Firing<
            '_,
        >| {
            out.push(Fired {
                rule: f.rule,
                register: f.register,
                value: f.value.cloned(),
            })
        });
        out
    }

    #[test]
    fn firings_become_jobs_and_actions_in_rulebook_order() {
        let compiled = compile_str("t.yml", BOOK, &Catalog::builtin()).unwrap();
        let program = compiled.program();
        let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
        e.push("load_avg", Value::Float(30.0)).unwrap();
        let fired = firings(&program, &e);
        assert_eq!(fired.len(), 1);
        let source = make_source("manager").unwrap();
        let mut ids = 40..;
        let mut steps = Vec::new();
        let received = Instant::now();
        fan_out(
            &program,
            &e,
            &fired,
            received,
            &source,
            5_000,
            60_000,
            || ids.next().unwrap(),
            &mut steps,
        );
        assert_eq!(steps.len(), 3);
        let Step::Local(job) = &steps[0] else {
            panic!("the first reaction is local: {:?}", steps[0])
        };
        assert_eq!(job.rule, "load_avg");
        assert_eq!(job.event.source.as_str(), "web-1");
        assert_eq!(job.args.text("message"), Some("load 30 on web-1"));
        let Step::Remote(to_host) = &steps[1] else {
            panic!("the second reaction is remote")
        };
        assert_eq!(to_host.key, "reactions.actor.run");
        assert_eq!((to_host.id, to_host.target.as_str()), (40, "web-1"));
        let a = to_host.action.as_ref().unwrap();
        assert_eq!(a.source.as_str(), "manager");
        assert_eq!((a.id, a.seq, a.time), (40, 40, 5_000));
        assert_eq!(a.expires, 5_000 + 60_000);
        let Step::Remote(to_all) = &steps[2] else {
            panic!("the third reaction is remote")
        };
        assert_eq!((to_all.id, to_all.target.as_str()), (41, "*"));
    }

    #[test]
    fn reports_say_what_became_of_an_action() {
        assert_eq!(
            sent_report(7, "web-*", Ok(2)),
            (true, "queued: action 7 to web-* (2 copies)".to_string())
        );
        assert_eq!(
            sent_report(7, "web-1", Ok(1)).1,
            "queued: action 7 to web-1 (1 copy)"
        );
        assert_eq!(
            sent_report(7, "db-*", Err(DropReason::NoTarget)),
            (false, "no known actor matches db-*".to_string())
        );
    }
}
