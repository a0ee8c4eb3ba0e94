//! The counters of rulebook reloads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `reflex_reloads_total{result}`.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    /// Reloads swapped in.
    pub ok: AtomicU64,
    /// Reloads refused (the rulebook has errors).
    pub error: AtomicU64,
}

impl ReloadCounters {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "reflex_reloads_total";
        let _ = writeln!(
            out,
            "# HELP {name} Rulebook reloads, by result.\n# TYPE {name} counter"
        );
        let _ = writeln!(out, "{name}{{result=\"ok\"}} {}", self.ok.load(Relaxed));
        let _ = writeln!(
            out,
            "{name}{{result=\"error\"}} {}",
            self.error.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render() {
        let c = ReloadCounters::default();
        c.error.fetch_add(2, Relaxed);
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("reflex_reloads_total{result=\"ok\"} 0"));
        assert!(out.contains("reflex_reloads_total{result=\"error\"} 2"));
    }
}
