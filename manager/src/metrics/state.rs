//! The counters of register persistence (`--state`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of persistence, shown on `/metrics`.
#[derive(Debug, Default)]
pub struct StateCounters {
    /// Records appended to the log.
    pub records: AtomicU64,
    /// Updates dropped because the writer's queue was full.
    pub dropped: AtomicU64,
    /// Snapshots written.
    pub snapshots: AtomicU64,
    /// Failed writes, syncs, renames and record encodings.
    pub errors: AtomicU64,
    /// Slots restored at start.
    pub restored: AtomicU64,
    /// Damaged records met at start (a torn last write, typically).
    pub torn: AtomicU64,
    /// What the last start skipped, by reason (in the order of
    /// [`crate::state::SkipReason::ALL`]).
    pub skipped: [AtomicU64; crate::state::SkipReason::ALL.len()],
}

impl StateCounters {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, kind, help, v) in [
            (
                "reflex_state_records_total",
                "counter",
                "Register updates written to the state log.",
                &self.records,
            ),
            (
                "reflex_state_records_dropped_total",
                "counter",
                "Register updates not logged because the state writer's queue was full.",
                &self.dropped,
            ),
            (
                "reflex_state_snapshots_total",
                "counter",
                "Register snapshots written.",
                &self.snapshots,
            ),
            (
                "reflex_state_errors_total",
                "counter",
                "Failed writes, syncs or renames of state files.",
                &self.errors,
            ),
            (
                "reflex_state_restored_slots",
                "gauge",
                "Register slots restored from the state directory at start.",
                &self.restored,
            ),
            (
                "reflex_state_torn_records_total",
                "counter",
                "Damaged state records skipped at start.",
                &self.torn,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        }
        let name = "reflex_state_records_skipped_total";
        let _ = writeln!(
            out,
            "# HELP {name} State records (or whole files, bad_header) skipped at start, by reason.\n# TYPE {name} counter"
        );
        for (reason, v) in crate::state::SkipReason::ALL.iter().zip(&self.skipped) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{}\"}} {}",
                reason.as_str(),
                v.load(Relaxed)
            );
        }
    }
}
