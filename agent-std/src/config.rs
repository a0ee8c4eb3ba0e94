//! The agent's configuration: `agent.yml`, overridden by command-line flags.
//!
//! ```yaml
//! id: web-1                         # this agent's id: its events' source, its Actor's topic
//! manager: tcp://127.0.0.1:4510     # where events, results and heartbeats are pushed
//! publisher: tcp://127.0.0.1:4511   # where actions are subscribed to
//! plugins: /etc/reflex/plugins      # plugins dir: <plugins>/reactions/actor/<name>
//! heartbeat_s: 5                    # seconds between heartbeats
//! key: /etc/reflex/web-1.key        # this agent's secret key: signs what it sends
//! manager_key: /etc/reflex/manager.pub  # the Manager's public key: actions must verify
//! state_dir: /var/lib/reflex-agent  # the Actor's replay floor; default: `state/` beside this file
//! allow:                            # what the Actor may do; nothing when absent
//!   run:
//!     - [df, -h]
//!     - [systemctl, restart, nginx]
//!     - [/usr/bin/touch, "/tmp/reflex-*"]
//!   fire_event: ["/ops/*"]
//!   plugins: [backup]
//! beacons:                          # host beacons; see docs/beacons.md
//!   - kind: load
//!     interval_s: 10
//! ```
//!
//! Every key is optional except `id` (which the `--id` flag can give instead), and `key` and
//! `manager_key`, which only `insecure: true` (a lab) does without. Unknown keys are errors with
//! the file, line and column.
//!
//! ```
//! use reflex_agent::AgentConfig;
//! let c = AgentConfig::from_yaml_str("id: web-1\ninsecure: true\nallow:\n  run: [[df, -h]]\n", "agent.yml").unwrap();
//! assert_eq!(c.heartbeat_s, 5);
//! assert!(c.allow.check_run(&["df", "-h"]).is_ok());
//!
//! let e = AgentConfig::from_yaml_str("id: web-1\nbeacon: []\n", "agent.yml").unwrap_err();
//! assert!(e.to_string().starts_with("agent.yml:2:1: unknown field `beacon`"), "{e}");
//! ```

use std::path::{Path, PathBuf};

use reflex_beacons::host::HostBeaconSpec;
use reflex_core::auth::{KeyKind, Signer, Verifier, keyfile};
use reflex_core::endpoint;
use serde::Deserialize;

use crate::Error;
use crate::allow::AllowList;

/// Seconds between heartbeats when `heartbeat_s` is not given.
pub const DEFAULT_HEARTBEAT_S: u64 = 5;

/// Everything an agent needs to run: the contents of `agent.yml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This agent's id: the source of its events and the topic its Actor subscribes to. It
    /// follows the rule of [`reflex_core::id`].
    #[serde(default)]
    pub id: String,
    /// The Manager's events endpoint, connected with a PUSH socket.
    #[serde(default = "default_manager")]
    pub manager: String,
    /// The Publisher's endpoint, connected with a SUB socket.
    #[serde(default = "default_publisher")]
    pub publisher: String,
    /// The plugins directory: `<plugins>/reactions/actor/<name>` is `reactions.actor.<name>`.
    /// No plugin runs without one.
    #[serde(default)]
    pub plugins: Option<PathBuf>,
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: u64,
    /// This agent's Ed25519 secret key file (`reflex keys gen --name <id>`): signs its events,
    /// results and heartbeats. Required unless `insecure`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The Manager's Ed25519 public key file: the Actor performs only actions signed with the
    /// Manager's secret key. Required unless `insecure`.
    #[serde(default)]
    pub manager_key: Option<PathBuf>,
    /// Lab mode: accept unsigned actions (and send unsigned messages when there is no `key`).
    /// Excludes `manager_key`.
    #[serde(default)]
    pub insecure: bool,
    /// The Actor's state directory, where it keeps its replay floor ([`crate::floor`]). When
    /// not given, `state/` in the directory of the configuration file; without either, the
    /// floor is kept in memory only.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// What the Actor may do.
    #[serde(default)]
    pub allow: AllowList,
    /// The host beacons to run.
    #[serde(default)]
    pub beacons: Vec<HostBeaconSpec>,
}

fn default_manager() -> String {
    endpoint::EVENTS.to_owned()
}

fn default_publisher() -> String {
    endpoint::PUBLISH.to_owned()
}

fn default_heartbeat_s() -> u64 {
    DEFAULT_HEARTBEAT_S
}

impl AgentConfig {
    /// A configuration with the id `id` and every default: the default endpoints, no plugins,
    /// nothing allowed, no beacons.
    pub fn new(id: &str) -> AgentConfig {
        AgentConfig {
            id: id.to_owned(),
            manager: default_manager(),
            publisher: default_publisher(),
            plugins: None,
            heartbeat_s: DEFAULT_HEARTBEAT_S,
            key: None,
            manager_key: None,
            insecure: false,
            state_dir: None,
            allow: AllowList::default(),
            beacons: Vec::new(),
        }
    }

    /// Reads and parses an `agent.yml`. Does not [`validate`](AgentConfig::validate): flags
    /// may still fill in what the file leaves out.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<AgentConfig, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        AgentConfig::from_yaml_str(&text, path)
    }

    /// Parses the text of an `agent.yml`; `path` names it in errors.
    pub fn from_yaml_str(text: &str, path: impl AsRef<Path>) -> Result<AgentConfig, Error> {
        serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let message = e.to_string();
            // serde_yaml appends the position in words; it is already in front.
            let message = match message.rfind(" at line ") {
                Some(i) if line > 0 => message[..i].to_owned(),
                _ => message,
            };
            Error::ConfigSyntax {
                path: path.as_ref().to_owned(),
                line,
                column,
                message,
            }
        })
    }

    /// Checks what parsing cannot: an id is given and fits, the endpoints are given, the
    /// heartbeat is positive, the keys are given (or `insecure`), every beacon's settings are
    /// valid. Key files are read by [`AgentConfig::load_keys`].
    pub fn validate(&self) -> Result<(), Error> {
        check_id(&self.id)?;
        if self.insecure && self.manager_key.is_some() {
            return Err(Error::ConfigInvalid(
                "`insecure` and `manager_key` exclude each other: with the Manager's key, \
                 unsigned actions are refused"
                    .into(),
            ));
        }
        if !self.insecure && self.manager_key.is_none() {
            return Err(Error::ConfigInvalid(
                "no `manager_key`: give the Manager's public key file (manager_key: or \
                 --manager-key) so that only its signed actions are performed, or \
                 `insecure: true` (--insecure), for a lab only, to accept unsigned actions"
                    .into(),
            ));
        }
        if !self.insecure && self.key.is_none() {
            return Err(Error::ConfigInvalid(format!(
                "no `key`: give this agent's secret key file (key: or --key; `reflex keys gen \
                 --name {}` makes one) so the Manager accepts what it sends, or \
                 `insecure: true` (--insecure), for a lab only",
                self.id
            )));
        }
        if self.manager.is_empty() {
            return Err(Error::ConfigInvalid("`manager` is empty".into()));
        }
        if self.publisher.is_empty() {
            return Err(Error::ConfigInvalid("`publisher` is empty".into()));
        }
        if self.heartbeat_s == 0 {
            return Err(Error::ConfigInvalid(
                "`heartbeat_s` must be at least 1 second".into(),
            ));
        }
        for (index, spec) in self.beacons.iter().enumerate() {
            spec.validate().map_err(|source| Error::Beacon {
                index,
                kind: spec.kind().to_owned(),
                source,
            })?;
        }
        Ok(())
    }
}

impl AgentConfig {
    /// Reads the key files: the signer of what the agent sends (`key`) and the verifier of the
    /// actions it receives (`manager_key`), each `None` when not configured.
    pub fn load_keys(&self) -> Result<(Option<Signer>, Option<Verifier>), Error> {
        let read = |path: &Path, kind: KeyKind, what: &str| {
            let file = keyfile::read(path).map_err(|e| Error::Key(e.to_string()))?;
            if file.kind != kind {
                return Err(Error::Key(format!(
                    "{}: {what} must be {kind}, not {}",
                    path.display(),
                    file.kind
                )));
            }
            Ok(file)
        };
        let signer = match &self.key {
            Some(p) => Some(
                read(p, KeyKind::Ed25519Secret, "key")?
                    .signer()
                    .map_err(|e| Error::Key(format!("{}: {e}", p.display())))?,
            ),
            None => None,
        };
        let verifier = match &self.manager_key {
            Some(p) => Some(
                read(p, KeyKind::Ed25519Public, "manager_key")?
                    .verifier()
                    .map_err(|e| Error::Key(format!("{}: {e}", p.display())))?,
            ),
            None => None,
        };
        Ok((signer, verifier))
    }
}

/// Checks an agent id against the one rule of [`reflex_core::id`].
pub fn check_id(id: &str) -> Result<(), Error> {
    match reflex_core::id::check_id(id) {
        Ok(()) => Ok(()),
        Err(reflex_core::id::IdError::Empty) => Err(Error::NoId),
        Err(source) => Err(Error::InvalidId {
            id: id.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, Error> {
        AgentConfig::from_yaml_str(text, "agent.yml")
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c, AgentConfig::new(""));
        assert_eq!(c.manager, endpoint::EVENTS);
        assert_eq!(c.publisher, endpoint::PUBLISH);
        assert!(c.allow.is_empty());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("no agent id")
        );
    }

    #[test]
    fn full_file() {
        let c = parse(
            r#"
id: web-1
manager: tcp://10.0.0.1:4510
publisher: tcp://10.0.0.1:4511
plugins: /etc/reflex/plugins
heartbeat_s: 2
key: /etc/reflex/web-1.key
manager_key: /etc/reflex/manager.pub
allow:
  run:
    - [df, -h]
    - [systemctl, restart, nginx]
    - [/usr/bin/touch, "/tmp/reflex-*"]
  fire_event: ["/ops/*"]
  plugins: [backup]
beacons:
  - kind: load
    interval_s: 1
  - kind: disk
    path: /
"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.id, "web-1");
        assert_eq!(c.manager, "tcp://10.0.0.1:4510");
        assert_eq!(c.plugins.as_deref(), Some(Path::new("/etc/reflex/plugins")));
        assert_eq!(c.heartbeat_s, 2);
        assert_eq!(
            c.manager_key.as_deref(),
            Some(Path::new("/etc/reflex/manager.pub"))
        );
        assert_eq!(c.allow.run.len(), 3);
        assert!(
            c.allow
                .check_run(&["systemctl", "restart", "nginx"])
                .is_ok()
        );
        assert!(c.allow.check_fire_event("/ops/restart").is_ok());
        assert!(c.allow.check_plugin("backup").is_ok());
        assert_eq!(c.beacons.len(), 2);
        assert_eq!(c.beacons[1].kind(), "disk");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let e = err("id: a\nheartbeat: 5\n");
        assert!(
            e.starts_with("agent.yml:2:1: unknown field `heartbeat`, expected one of"),
            "{e}"
        );
        let e = err("id: a\nallow:\n  runs: []\n");
        assert!(
            e.starts_with("agent.yml:3:3: allow: unknown field `runs`"),
            "{e}"
        );
        let e = err("id: a\nbeacons:\n  - kind: load\n    every: 3\n");
        assert!(
            e.starts_with("agent.yml:4:5: beacons[0]: unknown field `every`"),
            "{e}"
        );
    }

    #[test]
    fn invalid_entries_are_errors_with_a_position() {
        let e = err("allow:\n  run:\n    - []\n");
        assert!(e.starts_with("agent.yml:3:"), "{e}");
        assert!(e.contains("at least the program"), "{e}");
        let e = err("allow:\n  run: [df, -h]\n");
        assert!(e.starts_with("agent.yml:2:"), "{e}");
        let e = err("allow:\n  plugins: [\"../x\"]\n");
        assert!(e.contains("must be a plugin name"), "{e}");
        let e = err("allow:\n  fire_event: [ops]\n");
        assert!(e.contains("starting with '/'"), "{e}");
        let e = err("heartbeat_s: -1\n");
        assert!(e.starts_with("agent.yml:1:"), "{e}");
        let e = err("id: [a\n");
        assert!(e.starts_with("agent.yml:"), "{e}");
    }

    fn lab(id: &str) -> AgentConfig {
        AgentConfig {
            insecure: true,
            ..AgentConfig::new(id)
        }
    }

    #[test]
    fn keys_or_insecure() {
        let e = AgentConfig::new("web-1")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no `manager_key`") && e.contains("insecure"),
            "{e}"
        );
        let mut c = AgentConfig::new("web-1");
        c.manager_key = Some("/m.pub".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("no `key`") && e.contains("--name web-1"), "{e}");
        c.key = Some("/w.key".into());
        c.validate().unwrap();
        c.insecure = true;
        assert!(c.validate().unwrap_err().to_string().contains("exclude"));
        lab("web-1").validate().unwrap();
        assert!(lab("web-1").load_keys().unwrap().0.is_none());
    }

    #[test]
    fn validation() {
        let ok = lab("web-1");
        ok.validate().unwrap();
        for bad_id in [
            "web/1",
            "web 1",
            "web-*",
            &"x".repeat(reflex_core::event::MAX_SOURCE_LEN + 1),
        ] {
            assert!(lab(bad_id).validate().is_err(), "{bad_id}");
        }
        let mut c = lab("a");
        c.heartbeat_s = 0;
        assert!(c.validate().is_err());
        let mut c = lab("a");
        c.manager.clear();
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_documented_example_is_valid() {
        let doc = include_str!("../../docs/agent.md");
        let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let len = doc[start..].find("```").unwrap();
        let c = parse(&doc[start..start + len]).unwrap();
        c.validate().unwrap();
        let a = &c.allow;
        assert!(a.check_run(&["systemctl", "restart", "php8.2-fpm"]).is_ok());
        assert!(a.check_run(&["systemctl", "restart", "--all"]).is_err());
        assert!(
            a.check_run(&["/usr/local/bin/drain", "--node", "web-1"])
                .is_ok()
        );
        assert!(a.check_run(&["/usr/local/bin/drain", "-f", "-x"]).is_err());
        assert!(a.check_fire_event("/ops/drained").is_ok());
        assert_eq!(c.beacons.len(), 2);
    }

    #[test]
    fn missing_file() {
        let e = AgentConfig::from_yaml_file("/nonexistent/agent.yml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/agent.yml: cannot read"),
            "{e}"
        );
    }
}
