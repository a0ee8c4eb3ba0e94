//! The actions an Actor has seen recently, and their results: at-most-once execution, and
//! the refusal of replays.
//!
//! The Manager retries an action until its result comes back, so the same action may arrive
//! several times. An action is known by its issuer, its id and its issue time; ids are unique
//! per Manager run, and the issue time tells an action of a later run that reuses an id from a
//! retry of an earlier action (a retry resends the action unchanged). The Actor remembers the
//! last [`RECENT_ACTIONS`] actions: a repeat of one still running is ignored (its result follows
//! when it finishes) and a repeat of a finished one gets the same result again without running.
//!
//! A retry and a replay are the same bytes, so they are told apart by time. Every action
//! expires (the Manager gives it 60 s); while it has not expired, a copy is a repeat as above,
//! never run twice. Once it has expired, a copy of an action performed here is a replay:
//! dropped, and not answered. A copy of an expired action never performed here is refused as
//! expired. And when the memory is full, forgetting an action that has not expired yet raises
//! its issuer's *floor* to that action's sequence number: a new action at or below the floor
//! is a replay too. So no action runs twice while the Actor runs, whatever arrives.

use std::collections::{HashMap, VecDeque};

use reflex_core::wire::Action;

/// How many actions an Actor remembers.
pub const RECENT_ACTIONS: usize = 4096;
/// How many issuers' floors an Actor keeps; a further issuer gets none (there is one Manager).
pub const MAX_ISSUERS: usize = 64;

/// What identifies an action: its issuer and its id.
type Key = (String, u64);

/// A remembered result: enough to send it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// Whether the action succeeded.
    pub ok: bool,
    /// Its exit status or code.
    pub code: i32,
    /// Its output, already truncated to what a result carries.
    pub output: Box<str>,
}

/// What [`Recent::check_in`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A new action: now remembered as running.
    New,
    /// The same action is still running.
    Running,
    /// The same action already finished with this result.
    Done(Cached),
    /// Never performed here and expired: refuse it, saying so.
    Expired,
    /// A replay: performed here and expired since, or at or below its issuer's floor. Drop it.
    Replayed,
}

#[derive(Debug)]
struct Entry {
    time: u64,
    seq: u64,
    expires: u64,
    result: Option<Cached>,
}

/// The last `capacity` actions, oldest forgotten first.
#[derive(Debug)]
pub struct Recent {
    map: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    capacity: usize,
    /// Per issuer: the highest sequence number forgotten before it expired.
    floors: HashMap<String, u64>,
}

impl Recent {
    /// Remembers at most `capacity` actions (at least one).
    pub fn new(capacity: usize) -> Recent {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            floors: HashMap::new(),
        }
    }

    /// Looks the action up at `now_ms` (milliseconds since the Unix epoch), and remembers it
    /// as running when it is new.
    pub fn check_in(&mut self, action: &Action, now_ms: u64) -> Seen {
        let source = action.source.as_str();
        let key = (source.to_owned(), action.id);
        let expired = action.is_expired(now_ms);
        let entry = Entry {
            time: action.time,
            seq: action.seq,
            expires: action.expires,
            result: None,
        };
        if let Some(known) = self.map.get_mut(&key) {
            if known.time == action.time {
                if expired {
                    return Seen::Replayed;
                }
                return match &known.result {
                    None => Seen::Running,
                    Some(r) => Seen::Done(r.clone()),
                };
            }
            if expired {
                return Seen::Expired;
            }
            // The same id issued again at another time: a new action (the issuer restarted).
            *known = entry;
            return Seen::New;
        }
        if expired {
            return Seen::Expired;
        }
        if self.floors.get(source).is_some_and(|f| action.seq <= *f) {
            return Seen::Replayed;
        }
        if self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                if let Some(gone) = self.map.remove(&oldest) {
                    if gone.expires == 0 || gone.expires > now_ms {
                        self.raise_floor(&oldest.0, gone.seq);
                    }
                }
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, entry);
        Seen::New
    }

    /// Sets `source`'s floor to at least `seq`, as kept by an earlier run: an action at or
    /// below it is a replay.
    pub fn set_floor(&mut self, source: &str, seq: u64) {
        self.raise_floor(source, seq);
    }

    fn raise_floor(&mut self, source: &str, seq: u64) {
        if let Some(floor) = self.floors.get_mut(source) {
            *floor = (*floor).max(seq);
        } else if self.floors.len() < MAX_ISSUERS {
            self.floors.insert(source.to_owned(), seq);
        }
    }

    /// Records the result of an action checked in earlier. Does nothing when the action has
    /// been forgotten since.
    pub fn finish(&mut self, source: &str, id: u64, time: u64, result: Cached) {
        if let Some(entry) = self.map.get_mut(&(source.to_owned(), id)) {
            if entry.time == time {
                entry.result = Some(result);
            }
        }
    }

    /// Forgets an action that was checked in but not performed, so that a retry may perform
    /// it.
    pub fn forget(&mut self, source: &str, id: u64, time: u64) {
        let key = (source.to_owned(), id);
        if self.map.get(&key).is_some_and(|e| e.time == time) {
            self.map.remove(&key);
            self.order.retain(|k| *k != key);
        }
    }

    /// How many actions are remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no action is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(code: i32) -> Cached {
        Cached {
            ok: code == 0,
            code,
            output: "out".into(),
        }
    }

    /// Now, in milliseconds since the epoch.
    const NOW: u64 = 1_700_000_000_000;

    /// Action `id` (also its seq) from `source`, issued at `time`, valid for a minute.
    fn action(source: &str, id: u64, time: u64) -> Action {
        let mut a = Action::new(id, "reactions.actor.run", "*").unwrap();
        a.source = reflex_core::event::make_source(source).unwrap();
        a.seq = id;
        a.time = time;
        a.expires = time + 60_000;
        a
    }

    #[test]
    fn a_repeat_is_not_new() {
        let mut r = Recent::new(8);
        assert_eq!(r.check_in(&action("m", 1, NOW), NOW), Seen::New);
        assert_eq!(r.check_in(&action("m", 1, NOW), NOW), Seen::Running);
        r.finish("m", 1, NOW, done(3));
        assert_eq!(r.check_in(&action("m", 1, NOW), NOW), Seen::Done(done(3)));
        // Another issuer, or the same id issued at another time, is another action.
        assert_eq!(r.check_in(&action("other", 1, NOW), NOW), Seen::New);
        assert_eq!(r.check_in(&action("m", 1, NOW + 1), NOW), Seen::New);
        assert_eq!(r.check_in(&action("m", 1, NOW + 1), NOW), Seen::Running);
    }

    #[test]
    fn expired_copies_are_replays_or_expired() {
        let mut r = Recent::new(8);
        assert_eq!(r.check_in(&action("m", 1, NOW), NOW), Seen::New);
        r.finish("m", 1, NOW, done(0));
        let later = NOW + 60_000;
        // Performed here, then expired: a replay.
        assert_eq!(r.check_in(&action("m", 1, NOW), later), Seen::Replayed);
        // Never performed here: expired.
        assert_eq!(r.check_in(&action("m", 2, NOW), later), Seen::Expired);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_oldest_is_forgotten_first_and_raises_the_floor() {
        let mut r = Recent::new(3);
        for id in 1..=5 {
            assert_eq!(r.check_in(&action("m", id, NOW), NOW), Seen::New);
            r.finish("m", id, NOW, done(0));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.check_in(&action("m", 5, NOW), NOW), Seen::Done(done(0)));
        assert_eq!(r.check_in(&action("m", 3, NOW), NOW), Seen::Done(done(0)));
        // 1 and 2 were forgotten before they expired: replays now, and so is anything older.
        assert_eq!(r.check_in(&action("m", 1, NOW), NOW), Seen::Replayed);
        assert_eq!(r.check_in(&action("m", 2, NOW), NOW), Seen::Replayed);
        assert_eq!(r.check_in(&action("m", 6, NOW), NOW), Seen::New);
        assert_eq!(r.len(), 3);
        // Forgetting what had expired raises no floor.
        let mut r = Recent::new(1);
        assert_eq!(r.check_in(&action("m", 10, NOW), NOW), Seen::New);
        let later = NOW + 60_000;
        assert_eq!(r.check_in(&action("m", 11, later), later), Seen::New);
        assert_eq!(r.check_in(&action("m", 9, later), later), Seen::New);
    }

    #[test]
    fn forget_lets_a_retry_run() {
        let mut r = Recent::new(3);
        assert_eq!(r.check_in(&action("m", 7, 0), 0), Seen::New);
        r.forget("m", 7, 0);
        assert!(r.is_empty());
        assert_eq!(r.check_in(&action("m", 7, 0), 0), Seen::New);
        // Finishing a forgotten action records nothing.
        r.forget("m", 7, 0);
        r.finish("m", 7, 0, done(0));
        assert!(r.is_empty());
    }
}
