//! The crate-wide error type.

use std::path::PathBuf;

/// Everything that stops an agent from starting or running. Each variant names what went
/// wrong and where; problems with single messages (bad bytes, refused actions, full queues)
/// are counted and logged instead, never returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("{path}: cannot read: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is not valid YAML or does not fit the format: an unknown key, a wrong
    /// type, an invalid allow-list entry.
    #[error("{}:{line}:{column}: {message}", path.display())]
    ConfigSyntax {
        /// The file (`<string>` when parsed from text).
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A line of the replay floors file is not `<issuer> <seq>`.
    #[error(
        "{}:{line}: not `<issuer> <seq>`; move the file away to start with no replay floor",
        path.display()
    )]
    FloorLine {
        /// The floors file.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
    },
    /// The configuration parsed but a setting is missing or invalid; names the setting.
    #[error("invalid configuration: {0}")]
    ConfigInvalid(String),
    /// The gateway's line speed is not one the serial driver sets.
    #[error(
        "invalid configuration: unsupported baud rate {0}: use one of 1200, 2400, 4800, 9600, \
         19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000, 3000000"
    )]
    UnsupportedBaud(
        /// The rate asked for.
        u32,
    ),
    /// No agent id was given.
    #[error("invalid configuration: no agent id: give `id:` in the configuration or --id")]
    NoId,
    /// The agent id breaks the rule of [`reflex_core::id`].
    #[error("invalid configuration: agent id {id:?}: {source}")]
    InvalidId {
        /// The id as given.
        id: String,
        /// Which part of the rule it breaks.
        source: reflex_core::id::IdError,
    },
    /// The operating system refused a facility the agent needs: polling, signal handling.
    #[error("cannot {what}: {source}")]
    System {
        /// What was being set up, such as `poll the SUB socket`.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A key file cannot be read, or is not the kind of key its setting needs.
    #[error("{0}")]
    Key(String),
    /// A beacon could not be built from its configuration.
    #[error("beacon {index} ({kind}): {source}")]
    Beacon {
        /// Position of the beacon in the `beacons` list, from 0.
        index: usize,
        /// The beacon's kind, as configured.
        kind: String,
        /// Why.
        source: reflex_beacons::BeaconError,
    },
    /// A ZeroMQ socket could not be created, configured, bound or connected.
    #[error(transparent)]
    Socket(#[from] reflex_core::host::socket::SocketError),
    /// A ZeroMQ poll, send or receive failed, or a subscription could not be made.
    #[error("{what}: {source}")]
    Zmq {
        /// What was being done, such as `connect to tcp://127.0.0.1:4511`.
        what: String,
        /// The ZeroMQ error.
        source: zmq::Error,
    },
    /// The Actor's state directory cannot be made, read or written.
    #[error("{}: cannot {what}: {source}", path.display())]
    State {
        /// The state directory.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// An id that does not fit a source's capacity.
    pub(crate) fn id_too_long(id: &str) -> Error {
        Error::InvalidId {
            id: id.to_owned(),
            source: reflex_core::id::IdError::TooLong,
        }
    }

    pub(crate) fn zmq(what: impl Into<String>) -> impl FnOnce(zmq::Error) -> Error {
        let what = what.into();
        move |source| Error::Zmq { what, source }
    }
}
