//! A remote reaction of a rule that fired, turned into an action: its target and arguments
//! rendered for the event, stamped with the Manager's id, a fresh id and an expiry. (The
//! outbox authenticates it.)

use reflex_core::event::SourceId;
use reflex_core::program::{Context, Program, Reaction};
use reflex_core::wire::Action;

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
/// argument does not fit an action.
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
        a.push_arg(name, value).map_err(argument)?;
    }
    Ok(a)
}
