//! Reactions the Manager performs itself, and the workers that perform them.
//!
//! Each built-in lives in its own file and declares a [`Builtin`]: its key and how to make
//! its [`Handler`]. [`BUILTINS`] lists them; plugins (executables found by the rules
//! catalog) are handled by [`plugin`]. A rulebook's reactions are resolved once, at load,
//! into a [`Table`] indexed by `Reaction::func`: the event path never looks a name up.
//!
//! Adding a built-in reaction is adding a file here that declares its `BUILTIN`, listing it in
//! [`BUILTINS`], and naming its arguments in the rules catalog so rulebooks are checked.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use reflex_core::program::Program;
use reflex_core::value::Value;
use reflex_core::wire::{self, Envelope, MAX_ENVELOPE_LEN};
use reflex_core::{Event, event::MAX_HOPS};
use reflex_rules::Catalog;

use crate::Error;
use crate::metrics::{DropReason, Metrics};
use crate::render::Args;

pub mod eventer;
pub mod exec;
pub mod http;
pub mod log;
pub mod plugin;

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
///
/// ```
/// assert_eq!(reflex_manager::reactions::report_tag("reactions.exec.run"), "/reflex/reaction/exec/run");
/// ```
pub fn report_tag(key: &str) -> String {
    let rest = key.strip_prefix("reactions.").unwrap_or(key);
    format!("/reflex/reaction/{}", rest.replacen('.', "/", 1))
}

/// The longest prefix of `text` that fits `max` bytes, cut at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    e.time = crate::clock::now_ms();
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

/// The pool of worker threads performing local reactions.
pub struct Pool {
    tx: Option<Sender<Job>>,
    rx: Receiver<Job>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads taking jobs from a queue of `queue` slots. Events they make
    /// (fired events and reaction reports) are pushed to the inproc `endpoint` of `ctx`.
    pub fn start(
        workers: usize,
        queue: usize,
        table: Arc<Table>,
        metrics: Arc<Metrics>,
        ctx: &zmq::Context,
        endpoint: &str,
    ) -> Result<Pool, Error> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue.max(1));
        let mut handles = Vec::new();
        for n in 0..workers.max(1) {
            let push = ctx
                .socket(zmq::PUSH)
                .map_err(|e| Error::socket("create", "worker", e))?;
            push.set_sndhwm(queue.try_into().unwrap_or(i32::MAX))
                .and_then(|_| push.set_linger(0))
                .map_err(|e| Error::socket("configure", endpoint, e))?;
            push.connect(endpoint)
                .map_err(|e| Error::socket("connect", endpoint, e))?;
            let worker = Worker {
                rx: rx.clone(),
                table: table.clone(),
                metrics: metrics.clone(),
                push,
            };
            let handle = std::thread::Builder::new()
                .name(format!("reaction-{n}"))
                .spawn(move || worker.run())
                .map_err(|e| Error::io("start a reaction worker", e))?;
            handles.push(handle);
        }
        Ok(Pool {
            tx: Some(tx),
            rx,
            workers: handles,
        })
    }

    /// Queues a job without waiting; `false` when the queue is full (the job is dropped).
    pub fn try_send(&self, job: Job) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.try_send(job).is_ok())
    }

    /// Jobs waiting for a worker.
    pub fn depth(&self) -> usize {
        self.rx.len()
    }

    /// Stops taking jobs, kills running programs, and waits up to `grace` for the workers.
    pub fn stop(mut self, grace: std::time::Duration) {
        self.tx = None;
        while self.rx.try_recv().is_ok() {}
        reflex_agent::exec::kill_all();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for w in self.workers.drain(..).filter(|w| w.is_finished()) {
            let _ = w.join();
        }
    }
}

struct Worker {
    rx: Receiver<Job>,
    table: Arc<Table>,
    metrics: Arc<Metrics>,
    push: zmq::Socket,
}

impl Worker {
    fn run(self) {
        let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
        for job in self.rx.iter() {
            let key = self.table.key(job.func);
            let outcome = match self.table.handler(job.func) {
                Some(h) => catch_unwind(AssertUnwindSafe(|| h.perform(&job)))
                    .unwrap_or_else(|_| Outcome::failed(-1, "the reaction panicked")),
                None => Outcome::failed(-1, "no local handler"),
            };
            self.metrics.reaction(job.func, outcome.ok);
            self.metrics
                .reaction_latency
                .observe(job.received.elapsed());
            let shown = clip(outcome.output.trim_end(), 200);
            if outcome.ok {
                tracing::info!(
                    reaction = key, rule = %job.rule, source = %job.event.source,
                    code = outcome.code, output = shown, "reaction done"
                );
            } else {
                tracing::warn!(
                    reaction = key, rule = %job.rule, source = %job.event.source,
                    code = outcome.code, output = shown, "reaction failed"
                );
            }
            if let Some(e) = &outcome.emit {
                self.inject(e, &mut buf);
            }
            match report_event(
                key,
                &job.event,
                &job.rule,
                outcome.ok,
                outcome.code,
                &outcome.output,
                None,
            ) {
                Ok(e) => self.inject(&e, &mut buf),
                Err(e) => tracing::debug!(error = %e, "reaction report not made"),
            }
        }
    }

    /// Hands an event to the event thread. Events past the hop limit are refused there.
    fn inject(&self, e: &Event, buf: &mut [u8]) {
        if e.hops > MAX_HOPS {
            // Counted here so the event thread's queue is not flooded by a loop.
            self.metrics.dropped(DropReason::Loop, 1);
            tracing::debug!(tag = %e.tag, hops = e.hops, "reaction loop stopped at the hop limit");
            return;
        }
        let env = Envelope::new(e.clone());
        let Ok(n) = wire::encode(&env, buf) else {
            return;
        };
        if self.push.send(&buf[..n], zmq::DONTWAIT).is_err() {
            self.metrics.dropped(DropReason::InternalQueueFull, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
