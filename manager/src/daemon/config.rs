//! How to run a Manager: [`Config`] and the defaults of every setting, each written once here
//! (the command line of `reflex manager` shows these same constants).

use std::path::PathBuf;

/// Where events, results and heartbeats arrive by default (PULL, bound).
pub const DEFAULT_EVENTS: &str = "tcp://127.0.0.1:4510";
/// Where the Publisher broadcasts actions by default (PUB, bound by the Publisher).
pub const DEFAULT_PUBLISH: &str = "tcp://127.0.0.1:4511";
/// Where the watch stream is published by default (PUB, bound).
pub const DEFAULT_WATCH: &str = "tcp://127.0.0.1:4512";
/// The default address of the metrics endpoint.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9510";
/// The Manager's default id.
pub const DEFAULT_ID: &str = "manager";
/// Worker threads for local reactions by default.
pub const DEFAULT_WORKERS: u16 = 4;
/// The default capacity of each queue.
pub const DEFAULT_QUEUE: u32 = 10_000;
/// Seconds an action is valid by default.
pub const DEFAULT_ACTION_TTL_S: u32 = 60;

/// How to run a Manager.
#[derive(Debug, Clone)]
pub struct Config {
    /// The rulebook: a file, or a directory of `*.yml` files.
    pub rules: PathBuf,
    /// Plugin directories; empty means `plugins/` beside the rulebook.
    pub plugins: Vec<PathBuf>,
    /// Endpoint of the events PULL socket (bound).
    pub events: String,
    /// Endpoint of the Publisher's PUB socket (bound by the Publisher).
    pub publish: String,
    /// Endpoint of the watch PUB socket (bound).
    pub watch: String,
    /// Endpoint of the feed PUSH socket to the Publisher (bound); `None` for
    /// `ipc://$TMPDIR/reflex-manager-<pid>/feed.ipc`, in a directory of mode 0700 made for it.
    pub feed: Option<String>,
    /// Where register state is kept across restarts (see [`crate::state`]); `None` keeps it
    /// in memory only.
    pub state: Option<PathBuf>,
    /// `HOST:PORT` of the metrics HTTP server; `None` for none.
    pub metrics: Option<String>,
    /// `HOST:PORT` of the HTTP ingest server (`POST /events`, `POST /alertmanager`); `None`
    /// (the default) for none.
    pub http: Option<String>,
    /// The Manager's id: the source of its actions.
    pub id: String,
    /// Worker threads for local reactions.
    pub workers: usize,
    /// Capacity of each queue (events socket, local reactions, actions waiting).
    pub queue: usize,
    /// The `reflex` executable to start as the Publisher; `None` to start none.
    pub publisher: Option<PathBuf>,
    /// The Manager's Ed25519 secret key, which signs actions.
    pub key: Option<PathBuf>,
    /// The directory of allow-listed keys: `<id>.pub` for agents, `<id>.mac` for devices.
    pub trust: Option<PathBuf>,
    /// Lab mode: accept unauthenticated messages from sources without a key, and run without
    /// `key` and `trust`.
    pub insecure: bool,
    /// How long an action is valid after it is issued, in milliseconds: unanswered by then,
    /// it is reported expired.
    pub action_ttl_ms: u64,
}

impl Config {
    /// The feed endpoint, with the default filled in.
    pub fn feed_endpoint(&self) -> String {
        self.feed.clone().unwrap_or_else(|| {
            let dir = std::env::temp_dir();
            format!(
                "ipc://{}/reflex-manager-{}/feed.ipc",
                dir.display().to_string().trim_end_matches('/'),
                std::process::id()
            )
        })
    }
}
