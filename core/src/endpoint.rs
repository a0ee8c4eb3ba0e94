//! The default endpoints, written once for the Manager, the Publisher, the Actor, the gateway
//! and the CLI.

/// Where the Manager pulls events, results and heartbeats from (`reflex run --events`, an
/// agent's `manager:`).
pub const EVENTS: &str = "tcp://127.0.0.1:4510";
/// Where the Publisher publishes actions (`reflex run --publish`, an agent's `publisher:`).
pub const PUBLISH: &str = "tcp://127.0.0.1:4511";
/// Where the Manager publishes what `reflex watch` subscribes to.
pub const WATCH: &str = "tcp://127.0.0.1:4512";
/// Where the Manager serves its metrics over HTTP (`host:port`, no scheme).
pub const METRICS: &str = "127.0.0.1:9510";
