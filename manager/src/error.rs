//! The crate-wide error type.

use std::io;

/// Everything that stops a `reflex` command. Problems met while running (a bad envelope, a
/// failed reaction, a full queue) are counted and logged instead; they never stop the Manager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A partitioned deployment (NATS) failed or refused the rulebook.
    #[cfg(feature = "nats")]
    #[error("{0}")]
    Scale(#[from] crate::scale::ScaleError),
    /// The rulebook does not compile; displayed as `file:line:col: message` lines.
    #[error("{0}")]
    Rulebook(#[from] reflex_rules::Errors),
    /// A reaction of the rulebook is meant to run in the Manager but nothing performs it.
    #[error("reaction `{key}` has no local implementation; give it a `target:` or add a plugin")]
    NoHandler {
        /// The reaction key.
        key: String,
    },
    /// A ZeroMQ socket could not be made, bound or connected.
    #[error("cannot {what} {endpoint}: {source}")]
    Socket {
        /// What was tried: `bind`, `connect`, `create`, `configure`.
        what: &'static str,
        /// The endpoint, or the socket's role.
        endpoint: String,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// A ZeroMQ send or receive failed outside the cases that are counted.
    #[error("cannot {what} on the {socket} socket: {source}")]
    Transfer {
        /// `send` or `receive`.
        what: &'static str,
        /// The socket's role.
        socket: &'static str,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// An operating-system call failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was tried.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// An event, a field or a value does not fit the core's capacities.
    #[error("{what}: {source}")]
    Core {
        /// What was being built, e.g. "tag `/x`".
        what: String,
        /// The capacity that was exceeded.
        source: reflex_core::Error,
    },
    /// A command-line `key=value` field without `=`.
    #[error("`{0}` is not a KEY=VALUE field")]
    NotAField(String),
    /// A command-line field given twice.
    #[error("field `{0}` is given more than once")]
    DuplicateField(String),
    /// The event could not be handed to a Manager in time.
    #[error("no Manager took the event at {to} within {seconds} s; it was not sent")]
    NotDelivered {
        /// The events endpoint.
        to: String,
        /// The timeout.
        seconds: f64,
    },
    /// The first Publisher could not start (its publish socket cannot be bound, say).
    #[error("the publisher did not start: {0}")]
    PublisherStart(String),
    /// `reflex demo` could not set up or keep its processes running.
    #[error("{0}")]
    Demo(String),
    /// A key cannot be made, read or used, or the Manager lacks the keys it needs to run.
    #[error("{0}")]
    Auth(String),
    /// A tag glob given to `reflex watch` is not usable.
    #[error("`{0}` is not a tag glob; tags start with `/` (or use `*`)")]
    BadGlob(String),
}

impl Error {
    /// A socket error with context.
    pub(crate) fn socket(what: &'static str, endpoint: &str, source: zmq::Error) -> Error {
        Error::Socket {
            what,
            endpoint: endpoint.to_string(),
            source,
        }
    }

    /// An I/O error with context.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// A core capacity error with context.
    pub(crate) fn core(what: impl Into<String>, source: reflex_core::Error) -> Error {
        Error::Core {
            what: what.into(),
            source,
        }
    }
}
