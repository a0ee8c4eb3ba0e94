//! The event loop: one thread receives every message, decodes it, checks it, evaluates it
//! against the rulebook and dispatches the reactions of the rules that fire — local ones to
//! the worker pool, remote ones to the outbox that feeds the Publisher. Read top to bottom:
//! [`EventLoop::run`] polls, [`EventLoop::drain`] receives and decodes,
//! [`EventLoop::handle_event`] evaluates, and [`EventLoop::dispatch`] hands out what
//! [`fan_out`] made of the firings.
//!
//! The event thread owns every socket it uses: the events PULL socket, an inproc PULL socket
//! on which workers put back the events they make (fired events, reaction reports), the
//! watch PUB socket and the feed PUSH socket. It never waits on anything but the poll: the
//! worker queue, the inproc queue and the feed are all tried without blocking, and what does
//! not fit is dropped and counted (actions wait in the outbox instead).
//!
//! With `--state`, every register update is also handed to the state writer ([`crate::state`])
//! without waiting; a reloaded rulebook ([`super::reload`]) is swapped in on this thread
//! between two events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use reflex_core::engine;
use reflex_core::event::{MAX_HOPS, SourceId};
use reflex_core::store::MapStore;
use reflex_core::value::Value;
use reflex_core::wire::{self, ActionResult, Body, CODE_BUSY, CODE_REFUSED};
use reflex_core::{Error as CoreError, Event};
use reflex_rules::Compiled;

use crate::Error;
use crate::actions::outbox::Expired;
use crate::actions::{KnownActors, Outbox};
use crate::metrics::{ActionOutcome, DropReason, Metrics, Queue};
use crate::reactions::{Pool, report_event};
use crate::state::{self, Persist};
use crate::trust::Trust;
use reflex_core::host::clock;
use reflex_core::text::clip;

use super::fan_out::{Fired, Remote, Step, fan_out, sent_report};
use super::reload::Swap;
use super::watch::Watchers;

/// Most messages taken from one socket before looking at the others.
const BATCH: usize = 1024;
/// How often queues are flushed and gauges updated.
const TICK: Duration = Duration::from_millis(100);
/// Messages handled between two readings of the clock within a batch: a message is stamped at
/// most this many messages early (microseconds), far below the registers' millisecond
/// resolution, and latencies are measured from that earlier stamp, so never understated.
const CLOCK_EVERY: usize = 64;
/// How often an insecure Manager repeats its warning.
pub const INSECURE_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Where a message taken by the event thread comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The events socket: agents, devices, `reflex send`. Counted as received, and checked by
    /// the trust layer.
    Network,
    /// The inproc socket: events the reaction workers put back (fired events, reaction
    /// reports), made in this process and not checked again.
    Workers,
}

impl Origin {
    /// The socket's name in errors.
    fn socket(self) -> &'static str {
        match self {
            Origin::Network => "events",
            Origin::Workers => "internal",
        }
    }
}

/// Everything the event thread owns.
pub(super) struct EventLoop {
    /// The running rulebook; replaced by a reload.
    pub(super) rulebook: Arc<Compiled>,
    pub(super) store: MapStore,
    /// Register persistence, with `--state`.
    pub(super) persist: Option<Persist>,
    /// Rulebooks compiled by the reloader, to swap in.
    pub(super) swaps: Receiver<Swap>,
    pub(super) pool: Pool,
    pub(super) outbox: Outbox,
    pub(super) known: KnownActors,
    pub(super) metrics: Arc<Metrics>,
    pub(super) events: zmq::Socket,
    pub(super) internal: zmq::Socket,
    /// The watch socket and who watches what.
    pub(super) watch: Watchers,
    /// The clock as last read: events are stamped from it, and it is read again every
    /// [`CLOCK_EVERY`] messages of a batch rather than for each (clock reads were a tenth of
    /// the event path).
    pub(super) now: (Instant, u64),
    pub(super) feed: zmq::Socket,
    /// Events made on this thread (reports of remote reactions, results), evaluated next.
    pub(super) backlog: VecDeque<(Event, Instant)>,
    pub(super) queue: usize,
    pub(super) id: SourceId,
    pub(super) buf: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) firings: Vec<Fired>,
    pub(super) reported: [u64; DropReason::ALL.len()],
    pub(super) last_report: Instant,
    /// Checks every message from the events socket.
    pub(super) trust: Trust,
    /// Whether actions are signed.
    pub(super) signed: bool,
    /// When the insecure warning was last logged.
    pub(super) insecure_warned: Instant,
    /// The dashboard's view, made here while someone looks.
    pub(super) board: Arc<crate::http::Board>,
    /// Per rule of the running rulebook (by index): its counters.
    pub(super) rule_counts: Vec<Arc<crate::metrics::RuleCount>>,
    /// How long an action is valid, in milliseconds.
    pub(super) action_ttl_ms: u64,
}

/// The loud warning of lab mode, at start and every [`INSECURE_WARNING_EVERY`].
pub(super) fn warn_insecure(signed: bool, trust: &Trust) {
    tracing::warn!(
        "INSECURE: --insecure accepts unauthenticated events from any source without a key \
         ({} allow-listed) and {}; anyone who reaches the events socket can trigger reactions. \
         For a lab only: give --key and --trust to secure it",
        trust.len(),
        if signed {
            "signs actions"
        } else {
            "sends unsigned actions, which Actors accept only when insecure too"
        }
    );
}

impl EventLoop {
    /// Polls the sockets and handles what arrives until `shutdown` is set.
    pub(super) fn run(&mut self, shutdown: &AtomicBool) -> Result<(), Error> {
        let mut next_tick = Instant::now() + TICK;
        while !shutdown.load(Relaxed) {
            let timeout = if self.backlog.is_empty() {
                next_tick
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(TICK.as_millis()) as i64
            } else {
                0
            };
            let (from_events, from_internal, from_watch) = {
                let mut items = [
                    self.events.as_poll_item(zmq::POLLIN),
                    self.internal.as_poll_item(zmq::POLLIN),
                    self.watch.socket().as_poll_item(zmq::POLLIN),
                ];
                match zmq::poll(&mut items, timeout) {
                    Ok(_) => (
                        items[0].is_readable(),
                        items[1].is_readable(),
                        items[2].is_readable(),
                    ),
                    Err(zmq::Error::EINTR) => (false, false, false),
                    Err(source) => {
                        return Err(Error::Transfer {
                            what: "poll",
                            socket: "events",
                            source,
                        });
                    }
                }
            };
            if from_watch {
                self.watch.update();
            }
            if from_internal {
                self.drain(Origin::Workers)?;
            }
            if from_events {
                self.drain(Origin::Network)?;
                // Replay windows moved by this batch go to the state writer at once.
                if let Some(p) = &mut self.persist {
                    p.windows(self.trust.take_moved());
                }
            }
            if !self.backlog.is_empty() {
                self.read_clock();
            }
            for _ in 0..BATCH {
                let Some((e, received)) = self.backlog.pop_front() else {
                    break;
                };
                self.handle_own(e, received);
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
        Ok(())
    }

    /// Receives up to [`BATCH`] messages from the socket of `origin`, decodes and checks each,
    /// and handles it by kind.
    fn drain(&mut self, origin: Origin) -> Result<(), Error> {
        // Subscriptions first, so an event and the reactions it causes are either both
        // published to a new watcher or both not.
        self.watch.update();
        for i in 0..BATCH {
            if i % CLOCK_EVERY == 0 {
                self.read_clock();
            }
            let socket = match origin {
                Origin::Network => &self.events,
                Origin::Workers => &self.internal,
            };
            let n = match socket.recv_into(&mut self.buf, zmq::DONTWAIT) {
                Ok(n) => n,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => return Ok(()),
                Err(e) => {
                    return Err(Error::Transfer {
                        what: "receive",
                        socket: origin.socket(),
                        source: e,
                    });
                }
            };
            let (received, now_ms) = self.now;
            if origin == Origin::Network {
                self.metrics.events_received.fetch_add(1, Relaxed);
            }
            if n > self.buf.len() {
                self.metrics.dropped(DropReason::TooLarge, 1);
                continue;
            }
            let body = match wire::decode(&self.buf[..n]) {
                Ok(d) => {
                    // What workers hand back was made in this process; the rest is checked.
                    if origin == Origin::Network {
                        if let Err(reason) = self.trust.check(&d, &self.buf[..n], now_ms) {
                            self.metrics.dropped(reason, 1);
                            continue;
                        }
                    }
                    d.envelope.body
                }
                Err(e) => {
                    self.metrics.dropped(DropReason::of_decode(e), 1);
                    tracing::debug!(error = %e, "undecodable message dropped");
                    continue;
                }
            };
            match origin {
                Origin::Network => self.metrics.events_decoded.fetch_add(1, Relaxed),
                Origin::Workers => self.metrics.events_internal.fetch_add(1, Relaxed),
            };
            match body {
                Body::Event(e) => {
                    if e.hops > MAX_HOPS {
                        self.refuse_loop(&e);
                        continue;
                    }
                    if origin == Origin::Network && is_reserved(&e.tag) {
                        self.refuse_reserved(&e);
                        continue;
                    }
                    // Published as it arrived, without encoding it again.
                    self.watch.forward(&e.tag, &self.buf[..n]);
                    self.handle_event(e, received);
                }
                Body::Result(r) => self.handle_result(r, received),
                Body::Heartbeat(h) => {
                    self.metrics.heartbeats.fetch_add(1, Relaxed);
                    self.known.heartbeat(&h.source, received);
                }
                Body::Action(_) => self.metrics.dropped(DropReason::UnexpectedKind, 1),
            }
        }
        Ok(())
    }

    /// Reads the clock into [`EventLoop::now`].
    fn read_clock(&mut self) {
        self.now = (Instant::now(), clock::now_ms());
    }

    fn refuse_loop(&self, e: &Event) {
        self.metrics.dropped(DropReason::Loop, 1);
        tracing::debug!(tag = %e.tag, hops = e.hops, "event past the hop limit refused");
    }

    fn refuse_reserved(&self, e: &Event) {
        self.metrics.dropped(DropReason::ReservedTag, 1);
        tracing::debug!(tag = %e.tag, source = %e.source, "event under /reflex/ from outside refused");
    }

    /// An event made on this thread (a reaction report, an action result): published on
    /// watch, then evaluated.
    fn handle_own(&mut self, e: Event, received: Instant) {
        if e.hops <= MAX_HOPS {
            self.watch.publish(&e, &mut self.out);
        }
        self.handle_event(e, received);
    }

    /// Evaluates one event and hands out the reactions of the rules that fire.
    fn handle_event(&mut self, e: Event, received: Instant) {
        if e.hops > MAX_HOPS {
            self.refuse_loop(&e);
            return;
        }
        let rulebook = self.rulebook.clone();
        let program = rulebook.program();
        let now_ms = self.now.1;
        let mut firings = std::mem::take(&mut self.firings);
        firings.clear();
        let mut sink = |f: engine::Firing<'_>| {
            firings.push(Fired {
                rule: f.rule,
                register: f.register,
                value: f.value.cloned(),
            })
        };
        let counts = &self.rule_counts;
        let mut persist = self.persist.as_mut();
        let outcome =
            engine::evaluate_observed(&program, &mut self.store, &e, now_ms, &mut sink, |u| {
                if let Some(c) = counts.get(u.rule as usize) {
                    c.evaluated.fetch_add(1, Relaxed);
                }
                if let Some(p) = persist.as_mut() {
                    p.record(&u);
                }
            });
        for f in firings.iter() {
            if let Some(c) = counts.get(f.rule as usize) {
                c.fired.fetch_add(1, Relaxed);
            }
        }
        let m = &self.metrics;
        // The Manager's own reports live under /reflex/; matching nothing is normal for them.
        if outcome.entries == 0 && !e.tag.starts_with("/reflex/") {
            m.events_unmatched.fetch_add(1, Relaxed);
        }
        m.values_not_numeric
            .fetch_add(u64::from(outcome.not_numeric), Relaxed);
        m.rules_cooled_down
            .fetch_add(u64::from(outcome.cooled_down), Relaxed);
        if outcome.store_full > 0 {
            m.dropped(DropReason::StoreFull, u64::from(outcome.store_full));
        }
        if !firings.is_empty() {
            let mut steps = Vec::new();
            let outbox = &mut self.outbox;
            fan_out(
                &program,
                &e,
                &firings,
                received,
                &self.id,
                now_ms,
                self.action_ttl_ms,
                || outbox.next_id(),
                &mut steps,
            );
            self.dispatch(steps, &e);
        }
        self.firings = firings;
    }

    /// Hands out what the fan-out made: jobs to the worker pool, actions to the outbox.
    fn dispatch(&mut self, steps: Vec<Step<'_>>, cause: &Event) {
        for step in steps {
            match step {
                Step::Local(job) => {
                    if !self.pool.try_send(job) {
                        self.metrics.dropped(DropReason::ReactionQueueFull, 1);
                    }
                }
                Step::Remote(remote) => self.send_action(remote, cause),
            }
        }
    }

    /// Hands an action to the outbox, and puts its report in the backlog. An action past the
    /// hop limit is refused as a loop, logged with its rule and its event's tag.
    fn send_action(&mut self, remote: Remote<'_>, cause: &Event) {
        let Remote {
            func,
            key,
            rule,
            id,
            target,
            action,
        } = remote;
        if let Ok(a) = &action {
            if a.hops > MAX_HOPS {
                self.metrics.dropped(DropReason::Loop, 1);
                tracing::warn!(
                    rule,
                    tag = %cause.tag,
                    action = key,
                    target = %target,
                    hops = a.hops,
                    "reaction loop stopped at the hop limit; action not sent"
                );
                return;
            }
        }
        let (ok, output) = match action {
            Ok(action) => {
                let submitted = self.outbox.submit(
                    action,
                    rule,
                    &self.known,
                    &self.feed,
                    &self.metrics,
                    Instant::now(),
                );
                match submitted {
                    Ok(n) => {
                        tracing::info!(action = key, id, target = %target, copies = n, rule, "action queued");
                    }
                    Err(reason) => {
                        self.metrics.dropped(reason, 1);
                        tracing::warn!(action = key, target = %target, rule, "no known actor matches the target; action dropped");
                    }
                }
                sent_report(id, &target, submitted)
            }
            Err(why) => {
                self.metrics.dropped(DropReason::ArgTooLong, 1);
                tracing::warn!(action = key, rule, "{why}; action refused");
                (false, why.to_string())
            }
        };
        self.metrics.reaction(func, ok);
        match report_event(
            key,
            cause,
            rule,
            ok,
            if ok { 0 } else { -1 },
            &output,
            Some(id),
        ) {
            Ok(e) => self.push_backlog(e),
            Err(e) => tracing::debug!(error = %e, "reaction report not made"),
        }
    }

    /// An action result becomes the event `/reflex/result/<actor>`, attributed to the Actor
    /// that sent it (whose key verified it). A "busy" answer is not a result: the action is
    /// sent again.
    fn handle_result(&mut self, r: ActionResult, received: Instant) {
        self.metrics.results.fetch_add(1, Relaxed);
        self.known.heartbeat(&r.source, received);
        if r.code == CODE_BUSY {
            self.metrics.actions_busy.fetch_add(1, Relaxed);
            if self.outbox.busy(r.id, &r.source, Instant::now()) {
                tracing::info!(id = r.id, actor = %r.source, "actor busy; action sent again");
            }
            return;
        }
        if self.outbox.acknowledge(r.id, &r.source) {
            self.metrics.outcome(if r.code == CODE_REFUSED {
                ActionOutcome::Refused
            } else {
                ActionOutcome::Ran
            });
        }
        match result_event(&r) {
            Ok(e) => self.handle_own(e, received),
            Err(e) => {
                self.metrics.dropped(DropReason::InvalidEvent, 1);
                tracing::debug!(error = %e, actor = %r.source, "result not turned into an event");
            }
        }
    }

    /// An action that expired unanswered: warned about, counted, and the event
    /// `/reflex/expired/<target>`.
    fn report_expired(&mut self, x: Expired) {
        self.metrics.outcome(ActionOutcome::Expired);
        tracing::warn!(
            id = x.id,
            target = %x.target,
            rule = %x.about.rule,
            action = %x.about.function,
            sent = x.sent,
            "action expired unacknowledged"
        );
        match expired_event(&x, &self.id) {
            Ok(e) => self.push_backlog(e),
            Err(e) => tracing::debug!(error = %e, "expiry report not made"),
        }
    }

    fn push_backlog(&mut self, e: Event) {
        if e.hops > MAX_HOPS {
            self.refuse_loop(&e);
        } else if self.backlog.len() >= self.queue {
            self.metrics.dropped(DropReason::InternalQueueFull, 1);
        } else {
            self.metrics.events_internal.fetch_add(1, Relaxed);
            self.backlog.push_back((e, Instant::now()));
        }
    }

    /// Swaps in a reloaded rulebook: slots follow their rules by name.
    fn swap(&mut self, swap: Swap) {
        let Swap { compiled, answer } = swap;
        let old = std::mem::replace(&mut self.rulebook, Arc::new(compiled));
        let program = self.rulebook.program();
        let kept = state::renumber(&mut self.store, &old.program(), &program);
        self.rule_counts = self.metrics.rules.for_rules(self.rulebook.rule_names());
        if let Some(p) = &mut self.persist {
            p.reloaded(&program);
        }
        self.metrics.reloads.ok.fetch_add(1, Relaxed);
        let summary = self.rulebook.summary();
        tracing::info!(%summary, slots_kept = kept, "rulebook reloaded");
        if let Some(a) = answer {
            let _ = a.send(Ok(summary.to_string()));
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if let Ok(swap) = self.swaps.try_recv() {
            self.swap(swap);
        }
        if let Some(p) = &mut self.persist {
            p.tick(&self.store);
        }
        let expired = self
            .outbox
            .tick(&self.feed, &self.metrics, now, clock::now_ms());
        for x in expired {
            self.report_expired(x);
        }
        let m = &self.metrics;
        m.set_queue(Queue::Reactions, self.pool.depth());
        m.set_queue(Queue::Internal, self.backlog.len());
        m.set_queue(Queue::ActionsPending, self.outbox.pending());
        m.set_queue(Queue::ActionsUnacked, self.outbox.unacked());
        if self.trust.is_insecure()
            && now.saturating_duration_since(self.insecure_warned) >= INSECURE_WARNING_EVERY
        {
            self.insecure_warned = now;
            warn_insecure(self.signed, &self.trust);
        }
        if now.saturating_duration_since(self.last_report) >= Duration::from_secs(1) {
            self.last_report = now;
            self.known.prune(now);
            self.metrics
                .known_actors
                .store(self.known.len() as u64, Relaxed);
            self.report_drops();
            self.show_board(now);
        }
    }

    /// Makes the dashboard's view, while someone looks at it.
    fn show_board(&self, now: Instant) {
        let now_ms = clock::now_ms();
        if !self.board.wanted(now_ms) {
            return;
        }
        let view = crate::http::View {
            rulebook: &self.rulebook,
            store: &self.store,
            actors: self.known.each().collect(),
            pending: self.outbox.pending(),
            unacked: self.outbox.unacked(),
            metrics: &self.metrics,
        };
        self.board.publish(&view, now, now_ms);
    }

    /// Publishes `/reflex/drop/<reason>` on watch (and logs) for drops since the last report.
    fn report_drops(&mut self) {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let now = self.metrics.drops(*reason);
            let count = now - self.reported[i].min(now);
            if count == 0 {
                continue;
            }
            self.reported[i] = now;
            tracing::warn!(reason = reason.as_str(), count, "dropped");
            let tag = format!("/reflex/drop/{}", reason.as_str());
            if let Ok(mut e) = Event::new(&tag, &self.id) {
                e.time = clock::now_ms();
                let _ = e.push("count", Value::Int(count as i64));
                self.watch.publish(&e, &mut self.out);
            }
        }
    }
}

/// The prefix of the tags of the Manager's own events; refused from outside.
pub const RESERVED_PREFIX: &str = "/reflex/";

/// Whether `tag` lies in the Manager's own tag space, `/reflex/...`.
pub fn is_reserved(tag: &str) -> bool {
    tag.starts_with(RESERVED_PREFIX)
}

/// The event `/reflex/expired/<target>` for an action that expired unanswered: `id`,
/// `function`, `rule`, `sent` (whether it reached the Publisher). Its source is the Manager,
/// its hops the action's.
pub fn expired_event(x: &Expired, manager: &str) -> Result<Event, CoreError> {
    use reflex_core::value::MAX_STR_LEN;
    let mut e = Event::new(&format!("/reflex/expired/{}", x.target), manager)?;
    e.time = clock::now_ms();
    e.seq = x.id;
    e.hops = x.about.hops;
    e.push("id", Value::Int(x.id as i64))?;
    e.push(
        "function",
        Value::str(clip(&x.about.function, MAX_STR_LEN))?,
    )?;
    e.push("rule", Value::str(clip(&x.about.rule, MAX_STR_LEN))?)?;
    e.push("sent", Value::Bool(x.sent))?;
    Ok(e)
}

/// The event `/reflex/result/<actor>` for an action result: `id`, `function`, `ok`, `code`,
/// `output` (cut to a string value's capacity). It is as many hops from its chain's first
/// event as the action was.
pub fn result_event(r: &ActionResult) -> Result<Event, CoreError> {
    use reflex_core::value::MAX_STR_LEN;
    let mut e = Event::new(&format!("/reflex/result/{}", r.source), &r.source)?;
    e.time = if r.time == 0 { clock::now_ms() } else { r.time };
    e.seq = r.seq;
    e.hops = r.hops;
    e.push("id", Value::Int(r.id as i64))?;
    e.push("function", Value::str(clip(&r.function, MAX_STR_LEN))?)?;
    e.push("ok", Value::Bool(r.ok))?;
    e.push("code", Value::Int(i64::from(r.code)))?;
    e.push("output", Value::str(clip(&r.output, MAX_STR_LEN))?)?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_events() {
        let mut r = ActionResult::new(7, "reactions.actor.run", "web-1", true, 0).unwrap();
        r.set_output(&"x".repeat(200));
        let e = result_event(&r).unwrap();
        assert_eq!(e.tag.as_str(), "/reflex/result/web-1");
        assert_eq!(e.source.as_str(), "web-1");
        assert_eq!(e.get("id"), Some(&Value::Int(7)));
        assert_eq!(e.get("ok"), Some(&Value::Bool(true)));
        assert!(matches!(e.get("output"), Some(Value::Str(s)) if s.len() == 64));
    }
}
