//! A remote reaction of a rule that fired, turned into an action: its target and arguments
//! rendered for the event, stamped with the Manager's id, a fresh id and an expiry. (The
//! outbox authenticates it.)

use reflex_core::event::SourceId;
use reflex_core::program::{Context, Program, Reaction, Segment};
use reflex_core::value::Value;
use reflex_core::wire::Action;

use crate::metrics::DropReason;
use crate::reactions::arguments;
use reflex_core::text::clip;

/// Why a remote reaction is not an action: what it renders does not fit the wire's
/// capacities.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    /// The rendered target (cut to 80 bytes here) does not fit.
    #[error("target `{target}`: {source}")]
    Target {
        /// The target, cut to 80 bytes.
        target: String,
        /// The capacity exceeded.
        source: reflex_core::Error,
    },
    /// A rendered argument does not fit, or there are too many.
    #[error("argument `{name}`: {source}")]
    Argument {
        /// The argument's name.
        name: String,
        /// The capacity exceeded.
        source: reflex_core::Error,
    },
    /// A templated argument rendered empty: `systemctl restart ''` is never what was meant.
    #[error("argument `{name}` rendered empty (a field the event does not have?)")]
    Empty {
        /// The argument's name.
        name: String,
    },
}

impl ActionError {
    /// The drop reason it is counted under.
    pub fn reason(&self) -> DropReason {
        match self {
            ActionError::Target { .. } | ActionError::Argument { .. } => DropReason::ArgTooLong,
            ActionError::Empty { .. } => DropReason::ArgEmpty,
        }
    }
}

/// The target of a remote reaction rendered for `ctx`; `*` (every Actor) when it renders
/// empty.
pub fn target(program: &Program<'_>, reaction: &Reaction, ctx: &Context<'_>) -> String {
    let mut target = arguments::text(program, reaction.target, ctx);
    if target.is_empty() {
        target.push('*');
    }
    target
}

/// The action `id` of `reaction` to `target`, from `source`, issued at `valid.start` and
/// expiring at `valid.end` (milliseconds since the Unix epoch); why not when the target or an
/// argument does not fit an action, or when an argument with a substitution and no
/// `default` renders empty.
pub fn action(
    program: &Program<'_>,
    reaction: &Reaction,
    ctx: &Context<'_>,
    id: u64,
    source: &SourceId,
    target: &str,
    valid: std::ops::Range<u64>,
) -> Result<Action, ActionError> {
    let key = program.str(reaction.key);
    let mut a = Action::new(id, key, target).map_err(|source| ActionError::Target {
        target: clip(target, 80).to_owned(),
        source,
    })?;
    a.source = source.clone();
    a.seq = id;
    a.time = valid.start;
    a.expires = valid.end;
    // One reaction further than its event, as an event fired locally would be.
    a.hops = ctx.event.hops.saturating_add(1);
    for arg in program.args_of(reaction) {
        let name = program.str(arg.name);
        let argument = |source| ActionError::Argument {
            name: name.to_owned(),
            source,
        };
        let value = program.render_value(arg.value, ctx).map_err(argument)?;
        let segments = program.segments_of(arg.value);
        let substituted = segments.iter().any(|s| !matches!(s, Segment::Lit(_)));
        let optional = segments.iter().any(|s| matches!(s, Segment::DataOr(..)));
        if substituted && !optional && matches!(&value, Value::Str(s) if s.is_empty()) {
            return Err(ActionError::Empty {
                name: name.to_owned(),
            });
        }
        a.push_arg(name, value).map_err(argument)?;
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::Event;
    use reflex_core::event::make_source;
    use reflex_rules::{Catalog, compile_str};

    const BOOK: &str = r#"
/client/service/*:
  rules:
    - down:
        rule: rules.simple.eq
        threshold: 1
        reactions:
          - reactions.actor.run:
              target: '{{ event.source }}'
              argv: [systemctl, restart, '{{ event.data.name }}', '']
          - reactions.actor.run:
              target: '{{ event.source }}'
              argv: [restart, '{{ event.data.flags | default("") }}', "{{ event.data.name | default('all') }}"]
"#;

    fn build(e: &Event) -> Result<Action, ActionError> {
        build_nth(e, 0)
    }

    fn build_nth(e: &Event, n: usize) -> Result<Action, ActionError> {
        let compiled = compile_str("t.yml", BOOK, &Catalog::builtin()).unwrap();
        let program = compiled.program();
        let rule = &program.rules[0];
        let reaction = &program.reactions_of(rule)[n];
        let ctx = Context {
            event: e,
            rule: 0,
            value: e.get("down"),
            register: 1.0,
        };
        let source = make_source("manager").unwrap();
        action(&program, reaction, &ctx, 1, &source, "web-1", 0..60_000)
    }

    #[test]
    fn a_templated_argument_that_renders_empty_is_refused() {
        let mut e = Event::new("/client/service/web-1", "web-1").unwrap();
        e.push("down", Value::Int(1)).unwrap();
        let refused = build(&e).unwrap_err();
        assert_eq!(refused.reason(), DropReason::ArgEmpty);
        assert!(
            refused.to_string().contains("`argv` rendered empty"),
            "{refused}"
        );
        e.push("name", Value::str("nginx").unwrap()).unwrap();
        let a = build(&e).unwrap();
        let argv: Vec<String> = a.args_named("argv").map(ToString::to_string).collect();
        // A literally empty argument is sent as written.
        assert_eq!(argv, ["systemctl", "restart", "nginx", ""]);
        assert_eq!(a.hops, 1);
    }

    #[test]
    fn an_argument_with_a_default_may_render_empty() {
        let mut e = Event::new("/client/service/web-1", "web-1").unwrap();
        e.push("down", Value::Int(1)).unwrap();
        let argv = |e: &Event| -> Vec<String> {
            build_nth(e, 1)
                .unwrap()
                .args_named("argv")
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(argv(&e), ["restart", "", "all"]);
        e.push("flags", Value::str("--now").unwrap()).unwrap();
        e.push("name", Value::str("nginx").unwrap()).unwrap();
        assert_eq!(argv(&e), ["restart", "--now", "nginx"]);
    }
}
