//! The Actors the Manager knows from their heartbeats, and glob targets expanded against them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reflex_core::tag::glob_match;

/// How long an Actor is known after its last heartbeat.
pub const ACTOR_TTL: Duration = Duration::from_secs(60);

/// Whether a target is a glob (holds `*`, `?` or `[`) rather than an exact id.
pub fn is_glob(target: &str) -> bool {
    target.contains(['*', '?', '['])
}

/// The Actors heard from recently, bounded.
#[derive(Debug)]
pub struct KnownActors {
    seen: HashMap<String, Instant>,
    limit: usize,
}

impl KnownActors {
    /// An empty table of at most `limit` Actors.
    pub fn new(limit: usize) -> KnownActors {
        KnownActors {
            seen: HashMap::new(),
            limit,
        }
    }

    /// Records a heartbeat of `id` at `now`. A new Actor is not added while the table is
    /// full of live ones.
    pub fn heartbeat(&mut self, id: &str, now: Instant) {
        if let Some(t) = self.seen.get_mut(id) {
            *t = now;
            return;
        }
        if self.seen.len() >= self.limit {
            self.prune(now);
        }
        if self.seen.len() < self.limit {
            self.seen.insert(id.to_string(), now);
        }
    }

    /// Forgets the Actors silent for longer than [`ACTOR_TTL`].
    pub fn prune(&mut self, now: Instant) {
        self.seen
            .retain(|_, t| now.saturating_duration_since(*t) <= ACTOR_TTL);
    }

    /// Every known Actor and its last heartbeat (prune first to leave out the silent ones).
    pub fn each(&self) -> impl Iterator<Item = (&str, Instant)> {
        self.seen.iter().map(|(id, t)| (id.as_str(), *t))
    }

    /// How many Actors are known (prune first for an exact count).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is known.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The known Actors whose id matches `glob`, sorted.
    pub fn matching(&self, glob: &str, now: Instant) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .seen
            .iter()
            .filter(|(id, t)| {
                now.saturating_duration_since(**t) <= ACTOR_TTL && glob_match(glob, id)
            })
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_example() {
        use std::time::Instant;
        let mut k = KnownActors::new(10);
        let now = Instant::now();
        for id in ["web-2", "db-1", "web-1"] {
            k.heartbeat(id, now);
        }
        assert_eq!(k.matching("web-*", now), ["web-1", "web-2"]);
    }
}
