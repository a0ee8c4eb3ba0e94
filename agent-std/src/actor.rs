//! The Actor: receives actions from the Publisher, checks them, performs the allowed ones and
//! reports every outcome to the Manager.
//!
//! For each message on the subscription (two frames: topic, envelope) the Actor, in order:
//!
//! 1. decodes it; bad bytes are counted and logged once per reason;
//! 2. verifies its signature with the Manager's public key (unless the agent is insecure):
//!    an unsigned or forged envelope is dropped, counted and logged once, never answered;
//! 3. takes only actions, whose target is this agent's id or `*` (anything else is counted
//!    and not answered: it was not addressed to this agent);
//! 4. looks the action up among the last [`RECENT_ACTIONS`] ([`crate::recent`]): a repeat is
//!    not performed again, it gets the first outcome's result again (or nothing yet, while the
//!    first still runs); a replay (a copy of an action performed here and expired since, or
//!    older than what the Actor remembers) is dropped, counted and not answered; an expired
//!    action never performed here is refused;
//! 5. performs `reactions.actor.run`, `reactions.actor.fire_event` or a plugin
//!    `reactions.actor.<name>`, each only as far as the allow-list allows.
//!
//! Every authentic action addressed to this agent gets a result, refusals included
//! (`ok: false`, `code: -1`, the reason as output), except replays. An action that cannot
//! start because every worker is busy is answered `code: -2` ([`wire::CODE_BUSY`]): not an
//! outcome, and not remembered, so the Manager's next copy runs it. A result carries the
//! action's hops back, and an event fired for an action is as many hops from its chain's
//! first event as the action. Commands and plugins run
//! on worker threads, at most [`MAX_RUNNING`] at once, so a slow command never holds up the
//! next action.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reflex_core::auth::{self, AuthError, Verifier};
use reflex_core::event::make_tag;
use reflex_core::host::plugin::PluginInput;
use reflex_core::wire::{self, Action, ActionResult, Body};
use reflex_core::{Event, Value};

use crate::allow::{AllowList, Refusal, is_plugin_name};
use crate::exec;
use crate::floor::Floors;
use crate::recent::{Cached, RECENT_ACTIONS, Recent, Seen};
use crate::sender::Outbox;
use crate::stats::Stats;
use crate::{AgentConfig, Error};

/// The built-in function that runs a command.
pub const RUN: &str = reflex_core::reaction::ACTOR_RUN;
/// The built-in function that fires an event.
pub const FIRE_EVENT: &str = reflex_core::reaction::ACTOR_FIRE_EVENT;
/// The prefix of every function an Actor performs.
pub const ACTOR_PREFIX: &str = "reactions.actor.";
/// A command's or plugin's timeout when the action has no `timeout` argument.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest timeout an action may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Most commands and plugins running at once; an action beyond is answered busy
/// ([`wire::CODE_BUSY`]), not remembered, and performed when the Manager sends it again.
pub const MAX_RUNNING: usize = 8;
/// The code of a result for an action that was refused rather than performed.
pub const CODE_REFUSED: i32 = wire::CODE_REFUSED;
/// How often the receive loop looks at the shutdown flag, at the latest.
pub const POLL_MS: i64 = 200;
/// Largest message frame accepted from the Publisher, an envelope's maximum
/// ([`wire::MAX_ENVELOPE_LEN`]; the topic frame is shorter); a larger one ends the connection
/// before its bytes are buffered. The real Publisher never sends one: only a peer standing in
/// for it could, and ZeroMQ then does not reconnect (a protocol error ends the session).
pub const MAX_FRAME: i64 = wire::MAX_ENVELOPE_LEN as i64;

/// Connects the subscription: a SUB socket on `publisher`, subscribed to `<id>\0` and `*\0`.
pub(crate) fn subscribe(
    ctx: &zmq::Context,
    publisher: &str,
    id: &str,
) -> Result<zmq::Socket, Error> {
    let s = crate::sender::SUB.max_msg_size(MAX_FRAME).make(ctx)?;
    let own = reflex_core::id::topic(id).map_err(|source| Error::InvalidId {
        id: id.to_owned(),
        source,
    })?;
    for topic in [&own[..], reflex_core::id::BROADCAST_TOPIC] {
        s.set_subscribe(topic).map_err(Error::zmq("subscribe"))?;
    }
    reflex_core::host::socket::connect(&s, publisher)?;
    Ok(s)
}

/// The Actor's state.
pub(crate) struct Actor {
    id: String,
    allow: Arc<AllowList>,
    plugins: Option<PathBuf>,
    outbox: Outbox,
    recent: Arc<Mutex<Recent>>,
    running: Arc<AtomicUsize>,
    stats: Arc<Stats>,
    /// Reasons of bad messages already logged.
    logged: Vec<String>,
    /// The Manager's key; `None` in insecure mode, where unsigned actions are accepted.
    verifier: Option<Verifier>,
    /// The replay floor on disk, with a state directory.
    floors: Option<Floors>,
}

impl Actor {
    pub(crate) fn new(
        config: &AgentConfig,
        outbox: Outbox,
        stats: Arc<Stats>,
        verifier: Option<Verifier>,
        floors: Option<Floors>,
    ) -> Actor {
        let mut recent = Recent::new(RECENT_ACTIONS);
        if let Some(f) = &floors {
            for (issuer, &seq) in f.all() {
                recent.set_floor(issuer, seq);
            }
        }
        Actor {
            verifier,
            floors,
            id: config.id.clone(),
            allow: Arc::new(config.allow.clone()),
            plugins: config.plugins.clone(),
            outbox,
            recent: Arc::new(Mutex::new(recent)),
            running: Arc::new(AtomicUsize::new(0)),
            stats,
            logged: Vec::new(),
        }
    }

    /// Receives and handles actions until `shutdown` is set.
    pub(crate) fn run(&mut self, socket: &zmq::Socket, shutdown: &AtomicBool) -> Result<(), Error> {
        while !shutdown.load(Ordering::Relaxed) {
            match socket.poll(zmq::POLLIN, POLL_MS) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(zmq::Error::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Zmq {
                        what: "poll the subscription".into(),
                        source: e,
                    });
                }
            }
            // Take everything waiting, then look at the flag again.
            loop {
                match socket.recv_multipart(zmq::DONTWAIT) {
                    Ok(frames) => self.handle(&frames),
                    Err(zmq::Error::EAGAIN) => break,
                    Err(zmq::Error::EINTR) => break,
                    Err(e) => {
                        return Err(Error::Zmq {
                            what: "receive an action".into(),
                            source: e,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Handles one message: `[topic, envelope]`.
    pub(crate) fn handle(&mut self, frames: &[Vec<u8>]) {
        Stats::bump(&self.stats.received);
        let [_topic, bytes] = frames else {
            self.bad(format!(
                "a message of {} frames, not 2 (topic, envelope)",
                frames.len()
            ));
            return;
        };
        let decoded = match wire::decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                self.bad(format!("undecodable envelope: {e}"));
                return;
            }
        };
        if let Some(verifier) = &self.verifier {
            match auth::verify(&decoded, bytes, verifier) {
                Ok(()) => {}
                Err(AuthError::Unauthenticated) => {
                    if Stats::bump(&self.stats.unauthenticated) == 0 {
                        tracing::warn!(
                            "dropping unsigned actions: only actions signed with the Manager's \
                             key are performed (counted; logged once)"
                        );
                    }
                    tracing::debug!("unsigned {} dropped", decoded.envelope.body.kind());
                    return;
                }
                Err(AuthError::BadTag) => {
                    if Stats::bump(&self.stats.bad_signature) == 0 {
                        tracing::warn!(
                            "dropping actions whose signature does not verify with the \
                             Manager's key: forged, altered, or signed with another key \
                             (counted; logged once)"
                        );
                    }
                    tracing::debug!("badly signed {} dropped", decoded.envelope.body.kind());
                    return;
                }
            }
        }
        let action = match decoded.envelope.body {
            Body::Action(a) => a,
            other => {
                if Stats::bump(&self.stats.not_actions) == 0 {
                    tracing::warn!(
                        "ignoring a {} envelope on the subscription (counted)",
                        other.kind()
                    );
                }
                return;
            }
        };
        if action.target != "*" && action.target != self.id.as_str() {
            if Stats::bump(&self.stats.wrong_target) == 0 {
                tracing::warn!(
                    "ignoring action {} for target {:?}: not this agent (counted)",
                    action.id,
                    action.target.as_str()
                );
            }
            return;
        }
        if self.verifier.is_some() && action.expires == 0 {
            self.refuse(&action, "no expiry: a signed action must expire");
            return;
        }
        let seen = self
            .recent()
            .check_in(&action, reflex_core::host::clock::now_ms());
        match seen {
            Seen::New => {}
            Seen::Expired => {
                self.refuse(&action, "expired");
                return;
            }
            Seen::Replayed => {
                if Stats::bump(&self.stats.replayed) == 0 {
                    tracing::warn!(
                        "dropping replayed actions: copies of actions performed here that have \
                         expired since, or older than the ones this agent remembers (counted; \
                         logged once)"
                    );
                }
                tracing::debug!(
                    "action {} (seq {}) replayed: dropped",
                    action.id,
                    action.seq
                );
                return;
            }
            Seen::Running => {
                Stats::bump(&self.stats.duplicates);
                tracing::debug!("action {} repeated while it runs", action.id);
                return;
            }
            Seen::Done(cached) => {
                Stats::bump(&self.stats.duplicates);
                tracing::debug!("action {} repeated: sending its result again", action.id);
                self.outbox.send(result_of(&self.id, &action, &cached));
                return;
            }
        }
        // Written to disk before it runs: after a restart, a copy of it is a replay.
        if let Some(floors) = &mut self.floors {
            if let Err(e) = floors.raise(action.source.as_str(), action.seq) {
                self.recent().forget(&action.source, action.id, action.time);
                self.refuse(
                    &action,
                    &format!("busy: cannot record the replay floor before running it: {e}"),
                );
                return;
            }
        }
        tracing::debug!(
            "action {} {} from {}",
            action.id,
            action.function.as_str(),
            action.source.as_str()
        );
        match self.perform(&action) {
            Ok(Some(done)) => self.finish(&action, done),
            Ok(None) => {}
            Err(Declined::Refused(refusal)) => self.refuse(&action, &refusal.0),
            Err(Declined::Busy(why)) => self.busy(&action, &why),
        }
    }

    /// Says the action could not start yet: not an outcome, not remembered, so the Manager's
    /// next copy is performed.
    fn busy(&self, action: &Action, why: &str) {
        Stats::bump(&self.stats.busy);
        tracing::info!(
            "action {} {} not started: {why}; the Manager sends it again",
            action.id,
            action.function.as_str()
        );
        let cached = Cached {
            ok: false,
            code: wire::CODE_BUSY,
            output: why.into(),
        };
        self.outbox.send(result_of(&self.id, action, &cached));
    }

    /// Performs an action now (`Some`) or on a worker (`None`), or declines it.
    fn perform(&mut self, action: &Action) -> Result<Option<Cached>, Declined> {
        let function = action.function.as_str();
        if function == RUN {
            let argv: Vec<String> = action.args_named("argv").map(ToString::to_string).collect();
            self.allow.check_run(&argv)?;
            let timeout = timeout_of(action)?;
            self.spawn(action, move || exec::run(&argv, None, None, timeout))?;
            Ok(None)
        } else if function == FIRE_EVENT {
            Ok(Some(self.fire_event(action)?))
        } else if let Some(name) = function.strip_prefix(ACTOR_PREFIX) {
            if !is_plugin_name(name) {
                return Err(Refusal(format!("unknown function {function}")).into());
            }
            self.allow.check_plugin(name)?;
            let path = self.plugin_path(name)?;
            let timeout = timeout_of(action)?;
            let input = PluginInput::of_action(action).to_bytes();
            self.spawn(action, move || {
                exec::run(&[path.to_string_lossy()], None, Some(&input), timeout)
            })?;
            Ok(None)
        } else {
            Err(Refusal(format!(
                "unknown function {function}: an Actor performs only {ACTOR_PREFIX}* functions"
            ))
            .into())
        }
    }

    /// `reactions.actor.fire_event`: argument `tag`, and `data.<name>` for each field.
    fn fire_event(&self, action: &Action) -> Result<Cached, Refusal> {
        let tag = match action.arg("tag") {
            Some(Value::Str(t)) => t.as_str(),
            Some(_) => return Err(Refusal("argument tag must be a string".into())),
            None => return Err(Refusal("argument tag is missing".into())),
        };
        let tag = make_tag(tag).map_err(|e| Refusal(format!("tag {tag:?}: {e}")))?;
        self.allow.check_fire_event(&tag)?;
        let mut event = Event::new(&tag, &self.id).map_err(|e| Refusal(e.to_string()))?;
        for f in &action.args {
            if let Some(name) = f.name.strip_prefix("data.") {
                event
                    .push(name, f.value.clone())
                    .map_err(|e| Refusal(format!("data.{name}: {e}")))?;
            } else if f.name != "tag" {
                return Err(Refusal(format!(
                    "unknown argument {}: fire_event takes tag and data.<name>",
                    f.name.as_str()
                )));
            }
        }
        // The action is already one hop from the event that caused it: its event is as far,
        // so a loop through this Actor stops at the Manager's hop limit.
        event.hops = action.hops.max(1);
        event.time = reflex_core::host::clock::now_ms();
        let queued = self.outbox.send(event);
        Ok(Cached {
            ok: queued,
            code: if queued { 0 } else { 1 },
            output: if queued {
                format!("fired {}", tag.as_str()).into()
            } else {
                "send queue full: event dropped".into()
            },
        })
    }

    /// The executable of plugin `name`, or why there is none.
    fn plugin_path(&self, name: &str) -> Result<PathBuf, Refusal> {
        let Some(dir) = &self.plugins else {
            return Err(Refusal(format!(
                "no plugins directory configured for plugin {name}"
            )));
        };
        let path = dir.join("reactions").join("actor").join(name);
        if is_executable(&path) {
            Ok(path)
        } else {
            Err(Refusal(format!("no executable plugin {}", path.display())))
        }
    }

    /// Runs `work` on a worker thread and reports its outcome, or declines as busy when
    /// [`MAX_RUNNING`] are already running.
    fn spawn(
        &self,
        action: &Action,
        work: impl FnOnce() -> exec::Outcome + Send + 'static,
    ) -> Result<(), Declined> {
        if self.running.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING {
            self.running.fetch_sub(1, Ordering::SeqCst);
            // Not performed: a retry may perform it.
            self.recent().forget(&action.source, action.id, action.time);
            return Err(Declined::Busy(format!(
                "busy: {MAX_RUNNING} actions already running"
            )));
        }
        let worker = Worker {
            id: self.id.clone(),
            action: action.clone(),
            outbox: self.outbox.clone(),
            recent: self.recent.clone(),
            running: self.running.clone(),
            stats: self.stats.clone(),
        };
        std::thread::Builder::new()
            .name("reflex-action".into())
            .spawn(move || {
                let outcome = work();
                worker.report(&outcome);
            })
            .map(drop)
            .map_err(|e| {
                self.running.fetch_sub(1, Ordering::SeqCst);
                self.recent().forget(&action.source, action.id, action.time);
                Declined::Busy(format!("busy: cannot start a thread: {e}"))
            })
    }

    fn refuse(&self, action: &Action, reason: &str) {
        Stats::bump(&self.stats.refused);
        tracing::info!(
            "refused action {} {}: {reason}",
            action.id,
            action.function.as_str()
        );
        let cached = Cached {
            ok: false,
            code: CODE_REFUSED,
            output: reason.into(),
        };
        self.record_and_send(action, cached);
    }

    fn finish(&self, action: &Action, cached: Cached) {
        Stats::bump(&self.stats.performed);
        self.record_and_send(action, cached);
    }

    fn record_and_send(&self, action: &Action, cached: Cached) {
        let result = result_of(&self.id, action, &cached);
        self.recent().finish(
            &action.source,
            action.id,
            action.time,
            Cached {
                output: result.output.as_str().into(),
                ..cached
            },
        );
        self.outbox.send(result);
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bad(&mut self, reason: String) {
        Stats::bump(&self.stats.bad_messages);
        if !self.logged.contains(&reason) {
            tracing::warn!(
                "dropping a bad message from the publisher: {reason} (counted; logged once)"
            );
            self.logged.push(reason);
        }
    }
}

/// Why an action is not performed now.
enum Declined {
    /// Refused for good: the result says why.
    Refused(Refusal),
    /// Every worker is busy: worth sending again.
    Busy(String),
}

impl From<Refusal> for Declined {
    fn from(r: Refusal) -> Declined {
        Declined::Refused(r)
    }
}

/// What a worker needs to report an action's outcome.
struct Worker {
    id: String,
    action: Action,
    outbox: Outbox,
    recent: Arc<Mutex<Recent>>,
    running: Arc<AtomicUsize>,
    stats: Arc<Stats>,
}

impl Worker {
    fn report(self, outcome: &exec::Outcome) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        Stats::bump(&self.stats.performed);
        let a = &self.action;
        tracing::info!(
            "action {} {} finished: code {}{}",
            a.id,
            a.function.as_str(),
            outcome.code,
            if outcome.timed_out {
                " (timed out)"
            } else {
                ""
            }
        );
        let cached = Cached {
            ok: outcome.ok(),
            code: outcome.code,
            output: "".into(),
        };
        let mut result = result_of(&self.id, a, &cached);
        result.set_output(&outcome.output);
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish(
                &a.source,
                a.id,
                a.time,
                Cached {
                    output: result.output.as_str().into(),
                    ..cached
                },
            );
        self.outbox.send(result);
    }
}

/// The result envelope body for `action` with the outcome `cached`.
fn result_of(id: &str, action: &Action, cached: &Cached) -> ActionResult {
    let mut r = ActionResult {
        id: action.id,
        // The id was checked at start-up; an over-long one cannot reach here.
        source: reflex_core::event::make_source(id).unwrap_or_default(),
        seq: 0,
        time: reflex_core::host::clock::now_ms(),
        function: action.function.clone(),
        ok: cached.ok,
        code: cached.code,
        output: Default::default(),
        hops: action.hops,
    };
    r.set_output(&cached.output);
    r
}

/// The action's `timeout` argument (seconds, integer or float), capped at [`MAX_TIMEOUT`].
fn timeout_of(action: &Action) -> Result<Duration, Refusal> {
    let secs = match action.arg("timeout") {
        None => return Ok(DEFAULT_TIMEOUT),
        Some(Value::Int(i)) => *i as f64,
        Some(Value::Float(f)) => *f,
        Some(_) => f64::NAN,
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Refusal(
            "argument timeout must be a positive number of seconds".into(),
        ));
    }
    Ok(Duration::from_secs_f64(secs.min(MAX_TIMEOUT.as_secs_f64())))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        let mut a = Action::new(1, RUN, "*").unwrap();
        assert_eq!(timeout_of(&a), Ok(DEFAULT_TIMEOUT));
        a.push_arg("timeout", Value::Float(0.5)).unwrap();
        assert_eq!(timeout_of(&a), Ok(Duration::from_millis(500)));
        let mut a = Action::new(1, RUN, "*").unwrap();
        a.push_arg("timeout", Value::Int(100_000)).unwrap();
        assert_eq!(timeout_of(&a), Ok(MAX_TIMEOUT));
        for bad in [Value::Int(0), Value::Float(-1.0), Value::str("10").unwrap()] {
            let mut a = Action::new(1, RUN, "*").unwrap();
            a.push_arg("timeout", bad).unwrap();
            assert!(timeout_of(&a).is_err());
        }
    }

    #[test]
    fn plugin_input_groups_lists() {
        let mut a = Action::new(9, "reactions.actor.backup", "web-1").unwrap();
        a.push_arg("path", Value::str("/a").unwrap()).unwrap();
        a.push_arg("path", Value::str("/b").unwrap()).unwrap();
        a.push_arg("keep", Value::Int(3)).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&PluginInput::of_action(&a).to_bytes()).unwrap();
        assert_eq!(v["args"]["path"], serde_json::json!(["/a", "/b"]));
        assert_eq!(v["args"]["keep"], 3);
        assert_eq!(v["action"]["id"], 9);
        assert_eq!(v["action"]["function"], "reactions.actor.backup");
    }
}
