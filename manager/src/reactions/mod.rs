//! Reactions the Manager performs itself, and the workers that perform them: the pool
//! ([`pool`]), the arguments they are rendered with ([`arguments`]), and one file per
//! built-in.
//!
//! Each built-in lives in its own file and declares a [`Builtin`]: its key and how to make
//! its [`Handler`]. [`BUILTINS`] lists them; plugins (executables found by the rules
//! catalog) are handled by `plugin.rs`. A rulebook's reactions are resolved once, at load,
//! into a [`Table`] indexed by `Reaction::func`: the event path never looks a name up.
//!
//! Adding a built-in reaction is adding a file here that declares its `BUILTIN`, listing it in
//! [`BUILTINS`], and naming its arguments in the rules catalog so rulebooks are checked.

use std::time::Instant;

use reflex_core::Event;
use reflex_core::program::Program;
use reflex_core::value::Value;
use reflex_rules::Catalog;

use crate::Error;
use reflex_core::text::clip;

pub mod arguments;
mod eventer;
mod exec;
mod http;
mod log;
mod plugin;
mod pool;

pub use arguments::Args;
pub use pool::Pool;

/// A local reaction to perform: what the event thread hands to a worker.
#[derive(Debug, Clone)]
pub struct Job {
    /// The reaction's number: an index into the catalog's keys and the [`Table`].
    pub func: u16,
    /// The rule that fired.
    pub rule: String,
    /// The event that made it fire.
    pub event: Event,
    /// The value the rule read from the event.
    pub value: Option<Value>,
    /// The rule's register value.
    pub register: f64,
    /// The rendered arguments.
    pub args: Args,
    /// When the Manager received the event (for the latency histogram).
    pub received: Instant,
}

/// What performing a reaction came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether it succeeded.
    pub ok: bool,
    /// Exit status, HTTP status or another function-specific code; 0 for success.
    pub code: i32,
    /// What it printed or answered (bounded by each reaction).
    pub output: String,
    /// An event to put back through the rules (fired by `reactions.eventer.fire_event`).
    pub emit: Option<Event>,
}

impl Outcome {
    /// Success with `output`.
    pub fn ok(output: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            code: 0,
            output: output.into(),
            emit: None,
        }
    }

    /// Failure with `code` and `output`.
    pub fn failed(code: i32, output: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            code,
            output: output.into(),
            emit: None,
        }
    }
}

/// Performs one kind of reaction. Called from worker threads, so it may block (up to the
/// reaction's own timeout) but must not panic on any input.
pub trait Handler: Send + Sync {
    /// Performs `job`.
    fn perform(&self, job: &Job) -> Outcome;
}

/// A built-in reaction: its key and how to make its handler.
#[derive(Clone, Copy)]
pub struct Builtin {
    /// The reaction key, such as `reactions.exec.run`.
    pub key: &'static str,
    /// Makes the handler (once, at load).
    pub make: fn() -> Box<dyn Handler>,
}

/// Every built-in local reaction.
pub const BUILTINS: &[Builtin] = &[eventer::BUILTIN, exec::BUILTIN, http::BUILTIN, log::BUILTIN];

/// The handlers of a rulebook's reactions, indexed by reaction number. Reactions performed
/// by Actors have none.
pub struct Table {
    keys: Vec<String>,
    handlers: Vec<Option<Box<dyn Handler>>>,
}

impl Table {
    /// Resolves every key of `catalog` once, and checks that every local reaction of
    /// `program` has a handler.
    ///
    /// Errors: [`Error::NoHandler`] for a local reaction nothing performs.
    pub fn build(catalog: &Catalog, program: &Program<'_>) -> Result<Table, Error> {
        let keys: Vec<String> = catalog.keys().to_vec();
        let handlers: Vec<Option<Box<dyn Handler>>> = keys
            .iter()
            .map(|key| {
                if let Some(b) = BUILTINS.iter().find(|b| b.key == key) {
                    Some((b.make)())
                } else {
                    catalog.plugin_path(key).map(|path| {
                        Box::new(plugin::Plugin::new(path.to_path_buf())) as Box<dyn Handler>
                    })
                }
            })
            .collect();
        for r in program.reactions.iter().filter(|r| !r.remote) {
            let has = handlers
                .get(usize::from(r.func))
                .is_some_and(|h| h.is_some());
            if !has {
                return Err(Error::NoHandler {
                    key: program.str(r.key).to_string(),
                });
            }
        }
        Ok(Table { keys, handlers })
    }

    /// The key of reaction number `func`.
    pub fn key(&self, func: u16) -> &str {
        self.keys
            .get(usize::from(func))
            .map(String::as_str)
            .unwrap_or("reactions.unknown.unknown")
    }

    /// The handler of reaction number `func`, if it is performed locally.
    pub fn handler(&self, func: u16) -> Option<&dyn Handler> {
        self.handlers.get(usize::from(func))?.as_deref()
    }

    /// Every key, in reaction-number order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// The tag of a reaction report: `/reflex/reaction/<module>/<function>`.
pub fn report_tag(key: &str) -> String {
    let rest = key.strip_prefix("reactions.").unwrap_or(key);
    format!("/reflex/reaction/{}", rest.replacen('.', "/", 1))
}

/// The event reporting a reaction: `/reflex/reaction/<module>/<function>` with `rule`, `ok`,
/// `code`, `output` (cut to a string value's capacity) and, for an action, `action_id`. Its
/// source is the triggering event's, one hop further.
pub fn report_event(
    key: &str,
    cause: &Event,
    rule: &str,
    ok: bool,
    code: i32,
    output: &str,
    action_id: Option<u64>,
) -> Result<Event, reflex_core::Error> {
    use reflex_core::value::MAX_STR_LEN;
    let mut e = Event::new(&report_tag(key), &cause.source)?;
    e.time = reflex_core::host::clock::now_ms();
    e.seq = cause.seq;
    e.hops = cause.hops.saturating_add(1);
    e.push("rule", Value::str(clip(rule, MAX_STR_LEN))?)?;
    e.push("ok", Value::Bool(ok))?;
    e.push("code", Value::Int(i64::from(code)))?;
    e.push("output", Value::str(clip(output.trim_end(), MAX_STR_LEN))?)?;
    if let Some(id) = action_id {
        e.push("action_id", Value::Int(id as i64))?;
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_tag_example() {
        assert_eq!(
            report_tag("reactions.exec.run"),
            "/reflex/reaction/exec/run"
        );
    }

    #[test]
    fn every_local_builtin_of_the_catalog_has_a_handler() {
        for key in reflex_rules::Catalog::builtin().keys() {
            let actor = key.starts_with("reactions.actor.");
            assert_eq!(BUILTINS.iter().any(|b| b.key == key), !actor, "{key}");
        }
    }

    #[test]
    fn reports() {
        let mut cause = Event::new("/client/load/web-1", "web-1").unwrap();
        cause.hops = 2;
        let long = "é".repeat(100);
        let e = report_event(
            "reactions.exec.run",
            &cause,
            "load_avg",
            false,
            3,
            &long,
            Some(9),
        )
        .unwrap();
        assert_eq!(e.tag.as_str(), "/reflex/reaction/exec/run");
        assert_eq!(e.source.as_str(), "web-1");
        assert_eq!(e.hops, 3);
        assert_eq!(e.get("code"), Some(&Value::Int(3)));
        assert_eq!(e.get("action_id"), Some(&Value::Int(9)));
        assert!(matches!(e.get("output"), Some(Value::Str(s)) if s.len() == 64));
        assert_eq!(clip("héllo", 2), "h");
    }
}
