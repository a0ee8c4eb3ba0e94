//! Counters and gauges of the Manager, rendered in the Prometheus text format for
//! `GET /metrics` (served by [`crate::http`]).
//!
//! Every counter is an atomic: the event thread and the workers never take a lock to count.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

mod http;
mod reload;
mod rules;
mod state;

pub use http::{HttpCounters, HttpRefusal};
pub use reload::ReloadCounters;
pub use rules::{RuleCount, RuleCounters};
pub use state::StateCounters;

/// How an action to one Actor ended: exactly one of these, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// The Actor performed it (successfully or not) and said so.
    Ran,
    /// The Actor refused it (not allowed, invalid, expired on arrival).
    Refused,
    /// No answer came before it expired.
    Expired,
}

impl ActionOutcome {
    /// Every outcome, in metric order.
    pub const ALL: [ActionOutcome; 3] = [
        ActionOutcome::Ran,
        ActionOutcome::Refused,
        ActionOutcome::Expired,
    ];

    /// The `outcome` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Ran => "ran",
            ActionOutcome::Refused => "refused",
            ActionOutcome::Expired => "expired",
        }
    }
}

/// Why something was dropped. Event reasons count in `reflex_events_dropped_total`, reaction
/// reasons in `reflex_reactions_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The bytes end before the envelope does.
    Truncated,
    /// The envelope is larger than the wire format allows.
    TooLarge,
    /// The envelope speaks another wire version.
    Version,
    /// The bytes are not an envelope.
    Malformed,
    /// Bytes follow a complete envelope.
    Trailing,
    /// The authentication tag is too long.
    Auth,
    /// The event's tag or fields are invalid.
    InvalidEvent,
    /// An envelope that has no business on the events socket (an action).
    UnexpectedKind,
    /// A message without an authentication tag, from a source that needs one.
    Unauthenticated,
    /// A message whose tag does not verify with its source's key.
    BadSignature,
    /// A tagged message from a source without a key in the allow-list.
    UnknownSource,
    /// A message whose sequence number was seen already, or is too far behind.
    Replay,
    /// A message from an agent whose time is too far from the Manager's clock.
    Stale,
    /// An event re-fired by reactions more than `MAX_HOPS` times.
    Loop,
    /// A rule could not be evaluated because the register store is full.
    StoreFull,
    /// The Manager's own event queue (re-injected events) is full.
    InternalQueueFull,
    /// The local reaction queue is full.
    ReactionQueueFull,
    /// A remote reaction whose rendered argument or target does not fit an action.
    ArgTooLong,
    /// A remote reaction whose target glob matches no known Actor.
    NoTarget,
    /// The queue of actions waiting for the Publisher is full (the oldest is dropped).
    ActionQueueFull,
    /// An action expired before it could be delivered or acknowledged.
    ActionExpired,
    /// An event from outside under `/reflex/`, the tag space of the Manager's own events.
    ReservedTag,
}

impl DropReason {
    /// Every reason, in metric order.
    pub const ALL: [DropReason; 22] = [
        DropReason::Truncated,
        DropReason::TooLarge,
        DropReason::Version,
        DropReason::Malformed,
        DropReason::Trailing,
        DropReason::Auth,
        DropReason::InvalidEvent,
        DropReason::UnexpectedKind,
        DropReason::Unauthenticated,
        DropReason::BadSignature,
        DropReason::UnknownSource,
        DropReason::Replay,
        DropReason::Stale,
        DropReason::Loop,
        DropReason::StoreFull,
        DropReason::InternalQueueFull,
        DropReason::ReactionQueueFull,
        DropReason::ArgTooLong,
        DropReason::NoTarget,
        DropReason::ActionQueueFull,
        DropReason::ActionExpired,
        DropReason::ReservedTag,
    ];

    /// The `reason` label, also the last part of `/reflex/drop/<reason>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::TooLarge => "too_large",
            DropReason::Version => "version",
            DropReason::Malformed => "malformed",
            DropReason::Trailing => "trailing",
            DropReason::Auth => "auth",
            DropReason::InvalidEvent => "invalid_event",
            DropReason::UnexpectedKind => "unexpected_kind",
            DropReason::Unauthenticated => "unauthenticated",
            DropReason::BadSignature => "bad_signature",
            DropReason::UnknownSource => "unknown_source",
            DropReason::Replay => "replay",
            DropReason::Stale => "stale",
            DropReason::Loop => "loop",
            DropReason::StoreFull => "store_full",
            DropReason::InternalQueueFull => "internal_queue_full",
            DropReason::ReactionQueueFull => "reaction_queue_full",
            DropReason::ArgTooLong => "arg_too_long",
            DropReason::NoTarget => "no_target",
            DropReason::ActionQueueFull => "action_queue_full",
            DropReason::ActionExpired => "action_expired",
            DropReason::ReservedTag => "reserved_tag",
        }
    }

    /// Whether the reason is about reactions rather than events.
    pub const fn is_reaction(self) -> bool {
        matches!(
            self,
            DropReason::ReactionQueueFull
                | DropReason::ArgTooLong
                | DropReason::NoTarget
                | DropReason::ActionQueueFull
                | DropReason::ActionExpired
        )
    }

    /// The reason a decoding error is counted under.
    pub fn of_decode(e: reflex_core::Error) -> DropReason {
        use reflex_core::Error as E;
        match e {
            E::UnexpectedEnd => DropReason::Truncated,
            E::EnvelopeTooLarge => DropReason::TooLarge,
            E::UnsupportedVersion(_) => DropReason::Version,
            E::TrailingBytes => DropReason::Trailing,
            E::AuthTooLong => DropReason::Auth,
            E::TagInvalid | E::TagTooLong => DropReason::InvalidEvent,
            _ => DropReason::Malformed,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The queues whose depth is reported as `reflex_queue_depth{queue=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Local reactions waiting for a worker.
    Reactions,
    /// Events re-injected by the Manager itself, waiting for the event thread.
    Internal,
    /// Actions waiting for the Publisher.
    ActionsPending,
    /// Actions sent and waiting for their result (retried until it comes or they expire).
    ActionsUnacked,
}

impl Queue {
    /// Every queue, in metric order.
    pub const ALL: [Queue; 4] = [
        Queue::Reactions,
        Queue::Internal,
        Queue::ActionsPending,
        Queue::ActionsUnacked,
    ];

    /// The `queue` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Queue::Reactions => "reactions",
            Queue::Internal => "internal",
            Queue::ActionsPending => "actions_pending",
            Queue::ActionsUnacked => "actions_unacked",
        }
    }
}

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A histogram of durations with the fixed [`LATENCY_BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let mut cumulative = 0;
        for (b, n) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every metric of one Manager.
#[derive(Debug)]
pub struct Metrics {
    /// Messages received on the events socket.
    pub events_received: AtomicU64,
    /// Of those, the ones that decoded.
    pub events_decoded: AtomicU64,
    /// Events the Manager made itself (fired by reactions, reaction reports, results).
    pub events_internal: AtomicU64,
    /// Heartbeats received.
    pub heartbeats: AtomicU64,
    /// Action results received.
    pub results: AtomicU64,
    /// Per rule: evaluations and firings.
    pub rules: RuleCounters,
    /// Events whose tag matched no rulebook entry (outside the Manager's own `/reflex/` tree).
    pub events_unmatched: AtomicU64,
    /// Values a rule could not use: its field held text, not a number.
    pub values_not_numeric: AtomicU64,
    /// Firings suppressed by a cooldown.
    pub rules_cooled_down: AtomicU64,
    /// Actions handed to the Publisher (first sends).
    pub actions_sent: AtomicU64,
    /// Actions sent again while waiting for their result.
    pub actions_retried: AtomicU64,
    /// Answers "busy" from Actors: the action is sent again.
    pub actions_busy: AtomicU64,
    /// Outcomes of actions to one Actor: `[ran, refused, expired]`.
    pub action_outcomes: [AtomicU64; 3],
    /// Times the Publisher process was restarted.
    pub publisher_restarts: AtomicU64,
    /// The Publisher's process id (0 while it is not running).
    pub publisher_pid: AtomicU64,
    /// Actors heard from within the last minute.
    pub known_actors: AtomicU64,
    /// 1 when the Manager runs with `--insecure`.
    pub insecure: AtomicU64,
    /// Watch subscriptions (distinct tag prefixes) being served.
    pub watch_subscriptions: AtomicU64,
    /// Watch subscriptions refused because the Manager serves its most already.
    pub watch_subscriptions_refused: AtomicU64,
    /// Time from an event's receipt to the end of a local reaction it caused.
    pub reaction_latency: Histogram,
    /// Register persistence (`--state`).
    pub state: Arc<StateCounters>,
    /// Rulebook reloads.
    pub reloads: Arc<ReloadCounters>,
    /// The HTTP endpoints.
    pub http: Arc<HttpCounters>,
    drops: [AtomicU64; DropReason::ALL.len()],
    queues: [AtomicU64; Queue::ALL.len()],
    functions: Vec<String>,
    /// Per function: `[ok, error]`.
    reactions: Vec<[AtomicU64; 2]>,
}

impl Metrics {
    /// Metrics for a Manager whose reaction numbers index `functions` (the catalog's keys).
    pub fn new(functions: Vec<String>) -> Metrics {
        let reactions = functions.iter().map(|_| Default::default()).collect();
        Metrics {
            events_received: AtomicU64::new(0),
            events_decoded: AtomicU64::new(0),
            events_internal: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            results: AtomicU64::new(0),
            rules: RuleCounters::default(),
            events_unmatched: AtomicU64::new(0),
            values_not_numeric: AtomicU64::new(0),
            rules_cooled_down: AtomicU64::new(0),
            actions_sent: AtomicU64::new(0),
            actions_retried: AtomicU64::new(0),
            actions_busy: AtomicU64::new(0),
            action_outcomes: Default::default(),
            publisher_restarts: AtomicU64::new(0),
            publisher_pid: AtomicU64::new(0),
            known_actors: AtomicU64::new(0),
            insecure: AtomicU64::new(0),
            watch_subscriptions: AtomicU64::new(0),
            watch_subscriptions_refused: AtomicU64::new(0),
            reaction_latency: Histogram::default(),
            state: Default::default(),
            reloads: Default::default(),
            http: Default::default(),
            drops: Default::default(),
            queues: Default::default(),
            functions,
            reactions,
        }
    }

    /// Counts one final outcome of an action.
    pub fn outcome(&self, outcome: ActionOutcome) {
        self.action_outcomes[outcome as usize].fetch_add(1, Relaxed);
    }

    /// Counts `n` drops for `reason`.
    pub fn dropped(&self, reason: DropReason, n: u64) {
        self.drops[reason.index()].fetch_add(n, Relaxed);
    }

    /// Drops counted so far for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Relaxed)
    }

    /// Sets a queue's depth.
    pub fn set_queue(&self, queue: Queue, depth: usize) {
        self.queues[queue as usize].store(depth as u64, Relaxed);
    }

    /// Counts one reaction of function number `func` (an index into the catalog's keys).
    pub fn reaction(&self, func: u16, ok: bool) {
        if let Some(c) = self.reactions.get(usize::from(func)) {
            c[usize::from(!ok)].fetch_add(1, Relaxed);
        }
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        };
        counter(
            &mut out,
            "reflex_events_received_total",
            "Messages received on the events socket.",
            &self.events_received,
        );
        counter(
            &mut out,
            "reflex_events_decoded_total",
            "Messages received on the events socket that decoded.",
            &self.events_decoded,
        );
        counter(
            &mut out,
            "reflex_events_internal_total",
            "Events made by the Manager: fired by reactions, reaction reports, action results.",
            &self.events_internal,
        );
        counter(
            &mut out,
            "reflex_heartbeats_received_total",
            "Heartbeats received.",
            &self.heartbeats,
        );
        counter(
            &mut out,
            "reflex_results_received_total",
            "Action results received.",
            &self.results,
        );
        for (name, help, reaction) in [
            (
                "reflex_events_dropped_total",
                "Events (or rule evaluations) dropped, by reason.",
                false,
            ),
            (
                "reflex_reactions_dropped_total",
                "Reactions dropped before they were performed or sent, by reason.",
                true,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for r in DropReason::ALL
                .iter()
                .filter(|r| r.is_reaction() == reaction)
            {
                let _ = writeln!(
                    out,
                    "{name}{{reason=\"{}\"}} {}",
                    r.as_str(),
                    self.drops(*r)
                );
            }
        }
        self.rules.render(&mut out);
        counter(
            &mut out,
            "reflex_events_unmatched_total",
            "Events whose tag matched no rulebook entry (outside the reserved /reflex/ tree).",
            &self.events_unmatched,
        );
        counter(
            &mut out,
            "reflex_values_not_numeric_total",
            "Values a rule could not use: its field held text, not a number.",
            &self.values_not_numeric,
        );
        counter(
            &mut out,
            "reflex_rules_cooled_down_total",
            "Firings suppressed by a cooldown.",
            &self.rules_cooled_down,
        );
        let name = "reflex_reactions_total";
        let _ = writeln!(
            out,
            "# HELP {name} Reactions performed locally or handed to the Publisher, by function \
             and outcome.\n# TYPE {name} counter"
        );
        for (f, c) in self.functions.iter().zip(&self.reactions) {
            for (outcome, n) in [("ok", &c[0]), ("error", &c[1])] {
                let _ = writeln!(
                    out,
                    "{name}{{function=\"{f}\",outcome=\"{outcome}\"}} {}",
                    n.load(Relaxed)
                );
            }
        }
        let name = "reflex_reaction_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from an event's receipt to the end of a local reaction it \
             caused.\n# TYPE {name} histogram"
        );
        self.reaction_latency.render(name, &mut out);
        let name = "reflex_queue_depth";
        let _ = writeln!(
            out,
            "# HELP {name} Items waiting, by queue.\n# TYPE {name} gauge"
        );
        for (q, n) in Queue::ALL.iter().zip(&self.queues) {
            let _ = writeln!(
                out,
                "{name}{{queue=\"{}\"}} {}",
                q.as_str(),
                n.load(Relaxed)
            );
        }
        counter(
            &mut out,
            "reflex_actions_sent_total",
            "Actions handed to the Publisher (one per target Actor).",
            &self.actions_sent,
        );
        counter(
            &mut out,
            "reflex_actions_retried_total",
            "Actions sent again while waiting for their result.",
            &self.actions_retried,
        );
        counter(
            &mut out,
            "reflex_actions_busy_total",
            "Busy answers from Actors (the action is sent again).",
            &self.actions_busy,
        );
        let name = "reflex_action_outcomes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Final outcomes of actions to one Actor.\n# TYPE {name} counter"
        );
        for (outcome, n) in ActionOutcome::ALL.iter().zip(&self.action_outcomes) {
            let _ = writeln!(
                out,
                "{name}{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                n.load(Relaxed)
            );
        }
        counter(
            &mut out,
            "reflex_publisher_restarts_total",
            "Times the Publisher process was restarted.",
            &self.publisher_restarts,
        );
        gauge(
            &mut out,
            "reflex_publisher_pid",
            "Process id of the running Publisher (0 when none runs).",
            &self.publisher_pid,
        );
        gauge(
            &mut out,
            "reflex_known_actors",
            "Actors heard from within the last 60 seconds.",
            &self.known_actors,
        );
        gauge(
            &mut out,
            "reflex_watch_subscriptions",
            "Watch subscriptions (distinct tag prefixes) being served.",
            &self.watch_subscriptions,
        );
        counter(
            &mut out,
            "reflex_watch_subscriptions_refused_total",
            "Watch subscriptions refused: the Manager serves its most already.",
            &self.watch_subscriptions_refused,
        );
        gauge(
            &mut out,
            "reflex_insecure",
            "1 when the Manager runs with --insecure: unauthenticated messages accepted.",
            &self.insecure,
        );
        self.reloads.render(&mut out);
        self.state.render(&mut out);
        self.http.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_decode_example() {
        let e = reflex_core::wire::decode(&[]).unwrap_err();
        assert_eq!(DropReason::of_decode(e), DropReason::Truncated);
    }

    #[test]
    fn renders_every_family() {
        let m = Metrics::new(vec!["reactions.log.print".into()]);
        m.dropped(DropReason::Loop, 3);
        m.reaction(0, true);
        m.reaction(0, false);
        m.reaction(9, false);
        m.reaction_latency.observe(Duration::from_micros(300));
        m.set_queue(Queue::Reactions, 5);
        let text = m.render();
        assert!(text.contains("reflex_events_dropped_total{reason=\"loop\"} 3"));
        assert!(text.contains("reflex_reactions_dropped_total{reason=\"reaction_queue_full\"} 0"));
        assert!(
            text.contains(
                "reflex_reactions_total{function=\"reactions.log.print\",outcome=\"ok\"} 1"
            )
        );
        assert!(text.contains("reflex_reaction_latency_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("reflex_reaction_latency_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("reflex_reaction_latency_seconds_count 1"));
        assert!(text.contains("reflex_queue_depth{queue=\"reactions\"} 5"));
        m.rules.for_rules(["load_avg"])[0]
            .fired
            .fetch_add(1, Relaxed);
        let text = m.render();
        assert!(text.contains("\nreflex_rules_fired_total{rule=\"load_avg\"} 1\n"));
        assert!(text.contains("\nreflex_rules_evaluated_total{rule=\"load_avg\"} 0\n"));
        for family in [
            "reflex_events_received_total",
            "reflex_events_decoded_total",
            "reflex_events_unmatched_total",
            "reflex_values_not_numeric_total",
            "reflex_actions_sent_total",
            "reflex_publisher_restarts_total",
            "reflex_known_actors",
        ] {
            assert!(text.contains(&format!("\n{family} 0")), "{family}");
        }
    }
}
