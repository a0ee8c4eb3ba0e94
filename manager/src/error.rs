//! The crate-wide error type.

use std::io;
use std::path::PathBuf;

use reflex_core::auth::keyfile::{KeyError, KeyFileError, KeyKind};
use reflex_core::host::socket::SocketError;
use reflex_core::id::IdError;

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
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// A ZeroMQ poll, send or receive failed outside the cases that are counted.
    #[error("cannot {what} on the {socket} socket: {source}")]
    Transfer {
        /// `poll`, `send` or `receive`.
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
    #[error("the publisher did not start: {why} (is {publish} in use?)")]
    PublisherStart {
        /// Why.
        why: crate::actions::publisher::StartError,
        /// The publish endpoint.
        publish: String,
    },
    /// `reflex demo` could not set up or keep its processes running.
    #[error("{0}")]
    Demo(String),
    /// A key cannot be made, read or used, or the Manager lacks the keys it needs to run.
    #[error(transparent)]
    Auth(#[from] TrustError),
    /// A tag glob given to `reflex watch` is not usable.
    #[error("`{0}` is not a tag glob; tags start with `/` (or use `*`)")]
    BadGlob(String),
}

/// Why a key cannot be made, read or used, or why the Manager lacks the keys it needs.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key file cannot be read, parsed or written, or it is open to other users.
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// A key file parsed, but its bytes are not a usable key.
    #[error("{}: {source}", path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why the key cannot be used.
        source: KeyError,
    },
    /// `--key` names a file that is not the Manager's Ed25519 secret key.
    #[error("{}: --key needs the Manager's Ed25519 secret key, not {found}", path.display())]
    NotASigningKey {
        /// The file.
        path: PathBuf,
        /// What it holds.
        found: KeyKind,
    },
    /// A trust directory file holds another kind of key than its extension says.
    #[error("{}: holds {found} where {expected} is expected", path.display())]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// What it holds.
        found: KeyKind,
        /// What its extension promises.
        expected: KeyKind,
    },
    /// A file of the trust directory is neither `<id>.pub` nor `<id>.mac`.
    #[error(
        "{}: the trust directory holds only <id>.pub (an agent's public key), <id>.mac (a \
         device's key) and <id>.token (an HTTP token) files",
        .0.display()
    )]
    NotATrustFile(
        /// The file.
        PathBuf,
    ),
    /// A key named for something that is not a valid id.
    #[error("key name {name:?}: {source}: use the agent's or device's id")]
    BadName {
        /// The name.
        name: String,
        /// Which part of the id rule it breaks.
        source: IdError,
    },
    /// A trust directory file named for something that is not a valid id.
    #[error("{}: key name {id:?}: {source}", path.display())]
    BadTrustName {
        /// The file.
        path: PathBuf,
        /// The name before the extension.
        id: String,
        /// Which part of the id rule it breaks.
        source: IdError,
    },
    /// The trust directory is writable by other users, who could add keys to it.
    #[error(
        "{}: the trust directory is writable by other users (mode {mode:04o}), who could add \
         their own keys to it; run `chmod go-w {}`",
        dir.display(),
        dir.display()
    )]
    OpenTrustDir {
        /// The trust directory.
        dir: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// `--http` without a trust directory to hold the senders' tokens.
    #[error("--http needs --trust DIR holding the senders' tokens (reflex keys gen --token)")]
    NoTokens,
    /// `reflex keys gen --token` without `--name`.
    #[error("--token needs --name NAME: the source the token sends as, or `admin`")]
    TokenNeedsName,
    /// One id has both a public key and a device key in the trust directory.
    #[error("{}: {id} has both a .pub and a .mac key; keep one", dir.display())]
    BothKinds {
        /// The trust directory.
        dir: PathBuf,
        /// The id.
        id: String,
    },
    /// Neither the keys the Manager needs nor `--insecure` were given.
    #[error(
        "refusing to start without {0}: give the Manager's secret key (--key PATH, made by \
         `reflex keys gen --name manager`) and the directory of the agents' and devices' keys \
         it accepts (--trust DIR); or --insecure, for a lab only, to accept and send \
         unauthenticated messages"
    )]
    Missing(
        /// What is missing: `--key`, `--trust`, or both.
        &'static str,
    ),
    /// `reflex keys gen --mac` without `--name`.
    #[error("--mac needs --name DEVICE, the device's id")]
    MacNeedsName,
    /// The operating system gave no random bytes for a new key.
    #[error("no random bytes: {0}")]
    Random(getrandom::Error),
}

impl Error {
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
