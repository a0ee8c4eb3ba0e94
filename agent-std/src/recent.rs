//! The actions an Actor has seen recently, and their results: at-most-once execution.
//!
//! The Manager retries an action until its result comes back, so the same action may arrive
//! several times. An action is known by its issuer, its id and its issue time; ids are unique
//! per Manager run, and the issue time tells an action of a later run that reuses an id from a
//! retry of an earlier action (a retry resends the action unchanged). The Actor remembers the
//! last [`RECENT_ACTIONS`] actions: a repeat of one still running is ignored (its result follows
//! when it finishes) and a repeat of a finished one gets the same result again without running.

use std::collections::{HashMap, VecDeque};

/// How many actions an Actor remembers.
pub const RECENT_ACTIONS: usize = 4096;

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
}

#[derive(Debug)]
struct Entry {
    time: u64,
    result: Option<Cached>,
}

/// The last `capacity` actions, oldest forgotten first.
#[derive(Debug)]
pub struct Recent {
    map: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    capacity: usize,
}

impl Recent {
    /// Remembers at most `capacity` actions (at least one).
    pub fn new(capacity: usize) -> Recent {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Looks the action up, and remembers it as running when it is new.
    pub fn check_in(&mut self, source: &str, id: u64, time: u64) -> Seen {
        let key = (source.to_owned(), id);
        if let Some(entry) = self.map.get_mut(&key) {
            if entry.time == time {
                return match &entry.result {
                    None => Seen::Running,
                    Some(r) => Seen::Done(r.clone()),
                };
            }
            // The same id issued again at another time: a new action (the issuer restarted).
            *entry = Entry { time, result: None };
            return Seen::New;
        }
        if self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.map.remove(&oldest);
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, Entry { time, result: None });
        Seen::New
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

    #[test]
    fn a_repeat_is_not_new() {
        let mut r = Recent::new(8);
        assert_eq!(r.check_in("m", 1, 100), Seen::New);
        assert_eq!(r.check_in("m", 1, 100), Seen::Running);
        r.finish("m", 1, 100, done(3));
        assert_eq!(r.check_in("m", 1, 100), Seen::Done(done(3)));
        // Another issuer, or the same id issued at another time, is another action.
        assert_eq!(r.check_in("other", 1, 100), Seen::New);
        assert_eq!(r.check_in("m", 1, 200), Seen::New);
        assert_eq!(r.check_in("m", 1, 200), Seen::Running);
    }

    #[test]
    fn the_oldest_is_forgotten_first() {
        let mut r = Recent::new(3);
        for id in 0..5 {
            assert_eq!(r.check_in("m", id, 0), Seen::New);
            r.finish("m", id, 0, done(0));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.check_in("m", 4, 0), Seen::Done(done(0)));
        assert_eq!(r.check_in("m", 2, 0), Seen::Done(done(0)));
        assert_eq!(r.check_in("m", 0, 0), Seen::New);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn forget_lets_a_retry_run() {
        let mut r = Recent::new(3);
        assert_eq!(r.check_in("m", 7, 0), Seen::New);
        r.forget("m", 7, 0);
        assert!(r.is_empty());
        assert_eq!(r.check_in("m", 7, 0), Seen::New);
        // Finishing a forgotten action records nothing.
        r.forget("m", 7, 0);
        r.finish("m", 7, 0, done(0));
        assert!(r.is_empty());
    }
}
