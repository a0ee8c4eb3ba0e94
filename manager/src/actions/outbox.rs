//! The outbox: actions on their way to the Publisher, authenticated once when made, queued
//! while the feed refuses them, and resent to an exact Actor until its result comes back.
//! With `--state`, every copy to an exact Actor is journalled ([`Journal`]) before it leaves,
//! so a restarted Manager sends again what was unanswered, or reports it expired.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use reflex_core::auth::{self, MacKey, Signer};
use reflex_core::wire::{self, Action, Body, MAX_ENVELOPE_LEN};

use crate::metrics::{DropReason, Metrics};
use crate::state::{Journal, Saved};

use super::known::{KnownActors, is_glob};

/// How often an unanswered action to an exact Actor is sent again.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);
/// How soon an action an Actor answered "busy" is sent again.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Where encoded actions go: the feed socket to the Publisher.
pub trait Feed {
    /// Sends without waiting; `false` when the message cannot be queued now.
    fn try_send(&self, bytes: &[u8]) -> bool;
}

impl Feed for zmq::Socket {
    fn try_send(&self, bytes: &[u8]) -> bool {
        match self.send(bytes, zmq::DONTWAIT) {
            Ok(()) => true,
            Err(zmq::Error::EAGAIN) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot send on the feed socket");
                false
            }
        }
    }
}

/// One encoded copy of an action, for one target.
#[derive(Debug, Clone)]
struct Outgoing {
    id: u64,
    target: String,
    bytes: Vec<u8>,
    expires_ms: u64,
    next_retry: Instant,
    /// What its expiry report names.
    about: About,
}

/// What an action was, for the report of its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct About {
    /// The rule that made it.
    pub rule: String,
    /// Its function key.
    pub function: String,
    /// Its hops.
    pub hops: u8,
}

/// An action that expired before it was delivered or answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The action's id.
    pub id: u64,
    /// The Actor it was for (`*`: all).
    pub target: String,
    /// Whether it had been handed to the Publisher (`false`: it never left the queue).
    pub sent: bool,
    /// What it was.
    pub about: About,
}

impl Outgoing {
    /// Kept until its result comes back: addressed to one exact Actor.
    fn tracked(&self) -> bool {
        self.target != "*"
    }

    fn saved(&self) -> Saved {
        Saved {
            id: self.id,
            target: self.target.clone(),
            expires_ms: self.expires_ms,
            rule: self.about.rule.clone(),
            function: self.about.function.clone(),
            hops: self.about.hops,
            bytes: self.bytes.clone(),
        }
    }
}

/// Actions on their way to the Publisher, and those waiting for their result.
#[derive(Debug)]
pub struct Outbox {
    next_id: u64,
    pending: VecDeque<Outgoing>,
    unacked: HashMap<(u64, String), Outgoing>,
    limit: usize,
    last_retry_scan: Instant,
    buf: Vec<u8>,
    signer: Option<Signer>,
    devices: HashMap<String, Signer>,
    journal: Option<Journal>,
    /// Whether a journal write failure was logged (once per run).
    journal_failed: bool,
}

impl Outbox {
    /// An outbox holding at most `limit` waiting and `limit` unanswered actions.
    pub fn new(limit: usize) -> Outbox {
        Outbox {
            next_id: reflex_core::host::clock::now_us().max(1),
            pending: VecDeque::new(),
            unacked: HashMap::new(),
            limit: limit.max(1),
            last_retry_scan: Instant::now(),
            buf: vec![0u8; MAX_ENVELOPE_LEN],
            signer: None,
            devices: HashMap::new(),
            journal: None,
            journal_failed: false,
        }
    }

    /// Journals every action to one Actor from now on, and takes back the `open` actions of
    /// an earlier run: each is sent again at the next retry scan, or reported expired there.
    pub fn set_journal(&mut self, journal: Journal, open: Vec<Saved>, now: Instant) {
        self.journal = Some(journal);
        for s in open {
            self.next_id = self.next_id.max(s.id.saturating_add(1));
            let out = Outgoing {
                id: s.id,
                target: s.target,
                bytes: s.bytes,
                expires_ms: s.expires_ms,
                next_retry: now,
                about: About {
                    rule: s.rule,
                    function: s.function,
                    hops: s.hops,
                },
            };
            self.track(out);
        }
    }

    /// Authenticates every action from now on: with `signer` (the Manager's key; `None` for
    /// unsigned actions), or with a device's HMAC key for an action addressed to that device.
    pub fn set_signing(&mut self, signer: Option<Signer>, devices: HashMap<String, MacKey>) {
        self.signer = signer;
        self.devices = devices
            .into_iter()
            .map(|(id, key)| (id, Signer::Mac(key)))
            .collect();
    }

    /// A fresh action id (also used as its sequence number).
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Expands `action`'s target and sends one copy per Actor (or queues it). Returns how
    /// many copies were made.
    ///
    /// Errors: [`DropReason::NoTarget`] when a glob matches no known Actor.
    pub fn submit(
        &mut self,
        action: Action,
        rule: &str,
        known: &KnownActors,
        feed: &impl Feed,
        metrics: &Metrics,
        now: Instant,
    ) -> Result<usize, DropReason> {
        let targets: Vec<String> = if action.target == "*" || !is_glob(&action.target) {
            vec![action.target.to_string()]
        } else {
            known
                .matching(&action.target, now)
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        if targets.is_empty() {
            return Err(DropReason::NoTarget);
        }
        let mut copy = action;
        for target in &targets {
            // Known ids come from heartbeats, whose sources fit a target.
            let Ok(t) = wire::Target::try_from(target.as_str()) else {
                continue;
            };
            copy.target = t;
            let signer = self.devices.get(target).or(self.signer.as_ref());
            let body = Body::Action(copy.clone());
            let Ok(n) = auth::encode(&body, signer, &mut self.buf) else {
                metrics.dropped(DropReason::ArgTooLong, 1);
                continue;
            };
            let out = Outgoing {
                id: copy.id,
                target: target.clone(),
                bytes: self.buf[..n].to_vec(),
                expires_ms: copy.expires,
                next_retry: now + RETRY_EVERY,
                about: About {
                    rule: rule.to_string(),
                    function: copy.function.to_string(),
                    hops: copy.hops,
                },
            };
            if out.tracked() {
                self.journal_add(&out);
            }
            if self.pending.is_empty() && feed.try_send(&out.bytes) {
                metrics
                    .actions_sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.track(out);
            } else {
                self.queue(out, metrics);
            }
        }
        Ok(targets.len())
    }

    /// Result of action `id` from `actor`: stop resending it. Returns whether the action was
    /// waiting for that result (`false` for a repeat, or an action to all Actors).
    pub fn acknowledge(&mut self, id: u64, actor: &str) -> bool {
        let was = self.unacked.remove(&(id, actor.to_string())).is_some();
        if was {
            self.journal_done(id, actor);
        }
        was
    }

    /// `actor` answered action `id` "busy": it was not performed, so it is sent again after
    /// [`BUSY_RETRY`]. Returns whether the action was waiting for that Actor.
    pub fn busy(&mut self, id: u64, actor: &str, now: Instant) -> bool {
        match self.unacked.get_mut(&(id, actor.to_string())) {
            Some(out) => {
                out.next_retry = now + BUSY_RETRY;
                true
            }
            None => false,
        }
    }

    /// Sends what waits (oldest first, while the feed takes it), resends unanswered actions
    /// that are due, and returns those that expired: each is dropped and counted as
    /// `action_expired`, and reported by the caller.
    pub fn tick(
        &mut self,
        feed: &impl Feed,
        metrics: &Metrics,
        now: Instant,
        now_ms: u64,
    ) -> Vec<Expired> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut expired = Vec::new();
        let is_expired = |out: &Outgoing| out.expires_ms != 0 && now_ms >= out.expires_ms;
        while let Some(front) = self.pending.front() {
            if is_expired(front) {
                metrics.dropped(DropReason::ActionExpired, 1);
                if let Some(out) = self.pending.pop_front() {
                    if out.tracked() {
                        self.journal_done(out.id, &out.target);
                    }
                    expired.push(Expired {
                        id: out.id,
                        target: out.target,
                        sent: false,
                        about: out.about,
                    });
                }
                continue;
            }
            if !feed.try_send(&front.bytes) {
                break;
            }
            metrics.actions_sent.fetch_add(1, Relaxed);
            if let Some(mut out) = self.pending.pop_front() {
                out.next_retry = now + RETRY_EVERY;
                self.track(out);
            }
        }
        if now.saturating_duration_since(self.last_retry_scan) < Duration::from_secs(1) {
            return expired;
        }
        self.last_retry_scan = now;
        let gone: Vec<(u64, String)> = self
            .unacked
            .iter()
            .filter(|(_, out)| is_expired(out))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(out) = self.unacked.remove(&key) {
                self.journal_done(out.id, &out.target);
                metrics.dropped(DropReason::ActionExpired, 1);
                expired.push(Expired {
                    id: out.id,
                    target: out.target,
                    sent: true,
                    about: out.about,
                });
            }
        }
        self.compact_journal();
        if !self.pending.is_empty() {
            // The feed is refusing: resending would only queue behind what waits.
            return expired;
        }
        for out in self.unacked.values_mut() {
            if out.next_retry <= now {
                if !feed.try_send(&out.bytes) {
                    break;
                }
                metrics.actions_retried.fetch_add(1, Relaxed);
                out.next_retry = now + RETRY_EVERY;
            }
        }
        expired
    }

    /// Actions waiting for the Publisher.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Actions sent to one Actor and not answered yet.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    fn track(&mut self, out: Outgoing) {
        if !out.tracked() {
            return;
        }
        if self.unacked.len() < self.limit {
            self.unacked.insert((out.id, out.target.clone()), out);
        } else {
            // Not resent, so not sent again after a restart either.
            self.journal_done(out.id, &out.target);
        }
    }

    fn queue(&mut self, out: Outgoing, metrics: &Metrics) {
        if self.pending.len() >= self.limit {
            if let Some(evicted) = self.pending.pop_front() {
                if evicted.tracked() {
                    self.journal_done(evicted.id, &evicted.target);
                }
            }
            metrics.dropped(DropReason::ActionQueueFull, 1);
        }
        self.pending.push_back(out);
    }

    fn journal_add(&mut self, out: &Outgoing) {
        let result = match &mut self.journal {
            Some(j) => j.add(&out.saved()),
            None => return,
        };
        self.journal_result(result);
    }

    fn journal_done(&mut self, id: u64, target: &str) {
        let result = match &mut self.journal {
            Some(j) => j.done(id, target),
            None => return,
        };
        self.journal_result(result);
    }

    /// Rewrites the journal with the open actions once it is mostly closed ones.
    fn compact_journal(&mut self) {
        let open_count = self.unacked.len() + self.pending.iter().filter(|o| o.tracked()).count();
        if !self
            .journal
            .as_ref()
            .is_some_and(|j| j.wants_compaction(open_count))
        {
            return;
        }
        let mut open: Vec<Saved> = self
            .pending
            .iter()
            .filter(|o| o.tracked())
            .chain(self.unacked.values())
            .map(Outgoing::saved)
            .collect();
        open.sort_by_key(|s| s.id);
        let result = match &mut self.journal {
            Some(j) => j.compact(&open),
            None => return,
        };
        self.journal_result(result);
    }

    /// A journal write that fails does not stop the action: it is sent, and would not be sent
    /// again after a restart. Logged once per run.
    fn journal_result(&mut self, result: std::io::Result<()>) {
        if let Err(e) = result {
            if !self.journal_failed {
                self.journal_failed = true;
                tracing::error!(
                    error = %e,
                    "cannot write the action journal: actions still go out, but a restart \
                     would not send again those left unanswered"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// An action's lifetime in these tests.
    const ACTION_TTL_MS: u64 = 60_000;
    use crate::actions::known::ACTOR_TTL;
    use std::cell::RefCell;

    #[derive(Default)]
    struct FakeFeed {
        open: RefCell<bool>,
        sent: RefCell<Vec<Action>>,
    }

    impl Feed for FakeFeed {
        fn try_send(&self, bytes: &[u8]) -> bool {
            if !*self.open.borrow() {
                return false;
            }
            let d = wire::decode(bytes).unwrap();
            let wire::Body::Action(a) = d.envelope.body else {
                panic!("not an action")
            };
            self.sent.borrow_mut().push(a);
            true
        }
    }

    fn action(outbox: &mut Outbox, target: &str) -> Action {
        let mut a = Action::new(outbox.next_id(), "reactions.actor.run", target).unwrap();
        a.expires = reflex_core::host::clock::now_ms() + ACTION_TTL_MS;
        a
    }

    #[test]
    fn globs_expand_to_known_actors() {
        let m = Metrics::new(vec![]);
        let feed = FakeFeed::default();
        *feed.open.borrow_mut() = true;
        let mut known = KnownActors::new(10);
        let now = Instant::now();
        known.heartbeat("web-1", now);
        known.heartbeat("web-2", now);
        known.heartbeat("db-1", now);
        let mut o = Outbox::new(100);
        let a = action(&mut o, "web-*");
        assert_eq!(o.submit(a, "r", &known, &feed, &m, now), Ok(2));
        let b = action(&mut o, "*");
        assert_eq!(o.submit(b, "r", &known, &feed, &m, now), Ok(1));
        let c = action(&mut o, "cache-?");
        assert_eq!(
            o.submit(c, "r", &known, &feed, &m, now),
            Err(DropReason::NoTarget)
        );
        let targets: Vec<String> = feed
            .sent
            .borrow()
            .iter()
            .map(|a| a.target.to_string())
            .collect();
        assert_eq!(targets, ["web-1", "web-2", "*"]);
        assert_eq!(o.unacked(), 2, "exact targets wait for their result");
        let id = feed.sent.borrow()[0].id;
        o.acknowledge(id, "web-1");
        assert_eq!(o.unacked(), 1);
        // Silent actors are forgotten.
        known.prune(now + ACTOR_TTL + Duration::from_secs(1));
        assert!(known.is_empty());
    }

    /// Records the raw bytes it is given.
    #[derive(Default)]
    struct RawFeed(RefCell<Vec<Vec<u8>>>);

    impl Feed for RawFeed {
        fn try_send(&self, bytes: &[u8]) -> bool {
            self.0.borrow_mut().push(bytes.to_vec());
            true
        }
    }

    #[test]
    fn actions_are_signed_and_device_actions_tagged_with_the_device_key() {
        use reflex_core::auth::{SecretKey, Verifier};
        let m = Metrics::new(vec![]);
        let feed = RawFeed::default();
        let known = KnownActors::new(10);
        let manager = SecretKey::from_seed([1; 32]);
        let device = MacKey::from_bytes([2; 32]);
        let mut o = Outbox::new(10);
        o.set_signing(
            Some(Signer::Ed25519(manager.clone())),
            HashMap::from([("node-7".to_string(), device.clone())]),
        );
        let now = Instant::now();
        for target in ["web-1", "node-7"] {
            let a = action(&mut o, target);
            o.submit(a, "r", &known, &feed, &m, now).unwrap();
        }
        let sent = feed.0.borrow();
        let check = |bytes: &[u8], v: &Verifier| {
            let d = wire::decode(bytes).unwrap();
            auth::verify(&d, bytes, v)
        };
        let signature = Verifier::Ed25519(manager.public());
        let mac = Verifier::Mac(device);
        assert!(check(&sent[0], &signature).is_ok());
        assert!(check(&sent[1], &mac).is_ok());
        assert!(check(&sent[1], &signature).is_err());
    }

    #[test]
    fn waits_for_the_publisher_and_retries_until_answered() {
        let m = Metrics::new(vec![]);
        let feed = FakeFeed::default();
        let known = KnownActors::new(10);
        let mut o = Outbox::new(2);
        let now = Instant::now();
        for _ in 0..3 {
            let a = action(&mut o, "web-1");
            assert_eq!(o.submit(a, "r", &known, &feed, &m, now), Ok(1));
        }
        assert_eq!(o.pending(), 2);
        assert_eq!(m.drops(DropReason::ActionQueueFull), 1);
        *feed.open.borrow_mut() = true;
        o.tick(&feed, &m, now, reflex_core::host::clock::now_ms());
        assert_eq!(o.pending(), 0);
        assert_eq!(feed.sent.borrow().len(), 2);
        // Not answered: sent again once due.
        let later = now + RETRY_EVERY + Duration::from_secs(1);
        o.tick(&feed, &m, later, reflex_core::host::clock::now_ms());
        assert_eq!(feed.sent.borrow().len(), 4);
        assert_eq!(
            m.actions_retried.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        // Expired: forgotten, and each reported once.
        let expired = o.tick(
            &feed,
            &m,
            later + Duration::from_secs(2),
            reflex_core::host::clock::now_ms() + ACTION_TTL_MS,
        );
        assert_eq!(o.unacked(), 0);
        assert_eq!(expired.len(), 2);
        assert!(expired.iter().all(|e| e.sent && e.target == "web-1"));
        assert_eq!(expired[0].about.rule, "r");
        assert_eq!(m.drops(DropReason::ActionExpired), 2);
        let again = o.tick(
            &feed,
            &m,
            later + Duration::from_secs(4),
            reflex_core::host::clock::now_ms() + ACTION_TTL_MS,
        );
        assert!(again.is_empty());
    }
}
