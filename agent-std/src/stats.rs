//! Counters of what the agent did, dropped and refused. Logged when the agent stops.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The agent's counters. Every drop and every refusal is counted here, never silent.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Messages handed to ZeroMQ for the Manager.
    pub sent: AtomicU64,
    /// Messages dropped because the send queue was full.
    pub dropped_queue: AtomicU64,
    /// Messages dropped because the socket was full (Manager down or slow).
    pub dropped_hwm: AtomicU64,
    /// Drops since the socket last took a message; for logging once per outage.
    pub dropped_hwm_unreported: AtomicU64,
    /// Envelopes that could not be encoded.
    pub encode_errors: AtomicU64,
    /// Beacon events sent.
    pub beacon_events: AtomicU64,
    /// Beacon samples that failed.
    pub beacon_errors: AtomicU64,
    /// Messages received on the subscription.
    pub received: AtomicU64,
    /// Messages that were not two frames or did not decode.
    pub bad_messages: AtomicU64,
    /// Envelopes that were not actions.
    pub not_actions: AtomicU64,
    /// Actions without a signature, while the Manager's key is required.
    pub unauthenticated: AtomicU64,
    /// Actions whose signature does not verify with the Manager's key.
    pub bad_signature: AtomicU64,
    /// Actions refused as replays: performed already and now expired, or older than what this
    /// Actor still remembers.
    pub replayed: AtomicU64,
    /// Actions whose target does not name this agent.
    pub wrong_target: AtomicU64,
    /// Repeats of actions already seen.
    pub duplicates: AtomicU64,
    /// Actions refused (expired, not allowed, invalid).
    pub refused: AtomicU64,
    /// Actions not started because every worker was busy (answered as busy, to be sent again).
    pub busy: AtomicU64,
    /// Actions performed.
    pub performed: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "sent {}, dropped {} (queue {}, socket {}), encode errors {}, beacon events {}, \
             beacon errors {}, received {}, bad {}, not actions {}, unauthenticated {}, \
             bad signature {}, replayed {}, other targets {}, duplicates {}, refused {}, \
             busy {}, performed {}",
            get(&self.sent),
            get(&self.dropped_queue) + get(&self.dropped_hwm),
            get(&self.dropped_queue),
            get(&self.dropped_hwm),
            get(&self.encode_errors),
            get(&self.beacon_events),
            get(&self.beacon_errors),
            get(&self.received),
            get(&self.bad_messages),
            get(&self.not_actions),
            get(&self.unauthenticated),
            get(&self.bad_signature),
            get(&self.replayed),
            get(&self.wrong_target),
            get(&self.duplicates),
            get(&self.refused),
            get(&self.busy),
            get(&self.performed),
        )
    }
}
