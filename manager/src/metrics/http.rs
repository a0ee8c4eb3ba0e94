//! The counters of the Manager's HTTP endpoints (the metrics address and `--http` ingest).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why an HTTP request was refused: `reflex_http_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRefusal {
    /// The connection was closed to make room under the connection limit.
    ConnectionLimit,
    /// The request did not arrive in full within its deadline.
    Deadline,
    /// The request head was too large.
    HeadTooLarge,
    /// The request body was too large.
    BodyTooLarge,
    /// The request head was not HTTP/1.x, or its body was chunked.
    Malformed,
    /// Every worker was busy and their queue full.
    Busy,
    /// Accepting a connection failed (descriptors exhausted, typically).
    AcceptFailed,
    /// No bearer token, or one that no token file holds.
    Unauthorized,
    /// A valid token used for what it does not allow (another source, say).
    Forbidden,
    /// A body that is not the JSON expected, or an event that does not fit.
    Invalid,
    /// A tag under `/reflex/`, which belongs to the Manager.
    ReservedTag,
    /// The Manager's event queue was full.
    QueueFull,
}

impl HttpRefusal {
    /// Every reason, in metric order.
    pub const ALL: [HttpRefusal; 12] = [
        HttpRefusal::ConnectionLimit,
        HttpRefusal::Deadline,
        HttpRefusal::HeadTooLarge,
        HttpRefusal::BodyTooLarge,
        HttpRefusal::Malformed,
        HttpRefusal::Busy,
        HttpRefusal::AcceptFailed,
        HttpRefusal::Unauthorized,
        HttpRefusal::Forbidden,
        HttpRefusal::Invalid,
        HttpRefusal::ReservedTag,
        HttpRefusal::QueueFull,
    ];

    /// The `reason` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpRefusal::ConnectionLimit => "connection_limit",
            HttpRefusal::Deadline => "deadline",
            HttpRefusal::HeadTooLarge => "head_too_large",
            HttpRefusal::BodyTooLarge => "body_too_large",
            HttpRefusal::Malformed => "malformed",
            HttpRefusal::Busy => "busy",
            HttpRefusal::AcceptFailed => "accept_failed",
            HttpRefusal::Unauthorized => "unauthorized",
            HttpRefusal::Forbidden => "forbidden",
            HttpRefusal::Invalid => "invalid",
            HttpRefusal::ReservedTag => "reserved_tag",
            HttpRefusal::QueueFull => "queue_full",
        }
    }
}

/// Counters of the HTTP endpoints, shown on `/metrics`.
#[derive(Debug, Default)]
pub struct HttpCounters {
    answered: AtomicU64,
    /// Events taken in by `POST /events` and `POST /alertmanager`.
    pub events: AtomicU64,
    refused: [AtomicU64; HttpRefusal::ALL.len()],
}

impl HttpCounters {
    /// Counts a request read in full and handed to its route.
    pub fn answered(&self) {
        self.answered.fetch_add(1, Relaxed);
    }

    /// Counts one refusal.
    pub fn refused(&self, reason: HttpRefusal) {
        self.refused[reason as usize].fetch_add(1, Relaxed);
    }

    /// Refusals counted so far for `reason`.
    pub fn refusals(&self, reason: HttpRefusal) -> u64 {
        self.refused[reason as usize].load(Relaxed)
    }

    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "reflex_http_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP requests read in full and routed.\n# TYPE {name} counter\n{name} {}",
            self.answered.load(Relaxed)
        );
        let name = "reflex_http_events_total";
        let _ = writeln!(
            out,
            "# HELP {name} Events taken in over HTTP (POST /events, POST /alertmanager).\n# TYPE {name} counter\n{name} {}",
            self.events.load(Relaxed)
        );
        let name = "reflex_http_refused_total";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP requests or connections refused, by reason.\n# TYPE {name} counter"
        );
        for r in HttpRefusal::ALL {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{}\"}} {}",
                r.as_str(),
                self.refusals(r)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render() {
        let c = HttpCounters::default();
        c.refused(HttpRefusal::Deadline);
        c.answered();
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("reflex_http_refused_total{reason=\"deadline\"} 1"));
        assert!(out.contains("reflex_http_refused_total{reason=\"queue_full\"} 0"));
        assert!(out.contains("\nreflex_http_requests_total 1"));
    }
}
