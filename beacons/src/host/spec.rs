//! Host beacons as configured in the agent's configuration file.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Command, Disk, Load, Memory, Process};
use crate::{Beacon, BeaconError, Schedule};

/// Seconds between samples when `interval_s` is not given.
pub const DEFAULT_INTERVAL_S: f64 = 10.0;
/// A command's timeout when `timeout_s` is not given.
pub const DEFAULT_TIMEOUT_S: f64 = 10.0;

/// One host beacon of the agent's configuration: its kind, its options and its schedule.
///
/// In YAML, a list of maps with the key `kind` (`load`, `memory`, `disk`, `process`,
/// `command`), the kind's own keys, and the schedule keys every kind takes (see
/// [`ScheduleSpec`]). Unknown keys, and keys of another kind, are errors.
///
/// ```
/// use reflex_beacons::host::HostBeaconSpec;
///
/// let yaml = r#"
/// - kind: load                   # /client/load/<id>: load_avg, load5, load15, io_avg
/// - kind: memory                 # /client/mem/<id>: used_pct, available_mb, total_mb
///   interval_s: 30
/// - kind: disk                   # /client/disk/<id>: used_pct, free_mb, mount
///   path: /var
///   on_change: true              # send only when a value changed ...
///   min_delta: 1                 # ... by at least 1 (numbers) ...
///   heartbeat_s: 600             # ... or every 10 minutes regardless
/// - kind: process                # /client/service/<id>: running, count, name
///   name: nginx
///   pidfile: /run/nginx.pid      # optional
/// - kind: command                # /client/cmd/queue/<id>: exit, output, value
///   name: queue
///   argv: [/usr/local/bin/queue-depth, --json]
///   timeout_s: 5                 # default 10
/// "#;
/// let specs: Vec<HostBeaconSpec> = serde_yaml::from_str(yaml).unwrap();
/// assert_eq!(specs.len(), 5);
/// assert_eq!(specs[1].schedule_spec().interval_s, 30.0);
///
/// let disk = specs[2].build("web-1").unwrap();
/// assert_eq!(disk.tag(), "/client/disk/web-1");
/// let schedule = specs[2].schedule(); // the runner's Schedule for this beacon
/// assert_eq!(schedule.interval_ms(), 10_000);
///
/// let typo = "- kind: disk\n  path: /\n  intervals: 5\n";
/// assert!(serde_yaml::from_str::<Vec<HostBeaconSpec>>(typo).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawSpec")]
pub enum HostBeaconSpec {
    /// Load averages and iowait ([`Load`]).
    Load {
        /// When it runs.
        schedule: ScheduleSpec,
    },
    /// Memory use ([`Memory`]).
    Memory {
        /// When it runs.
        schedule: ScheduleSpec,
    },
    /// Use of the filesystem holding `path` ([`Disk`]).
    Disk {
        /// An absolute path on the filesystem (usually its mount point).
        path: PathBuf,
        /// When it runs.
        schedule: ScheduleSpec,
    },
    /// Liveness of processes named `name` ([`Process`]).
    Process {
        /// The program name, as in `/proc/<pid>/comm`.
        name: String,
        /// A pid file: when given, it decides `running`.
        pidfile: Option<PathBuf>,
        /// When it runs.
        schedule: ScheduleSpec,
    },
    /// A command's exit status and first line of output ([`Command`]).
    Command {
        /// The tag segment naming it: `/client/cmd/<name>/<source>`.
        name: String,
        /// The program and its arguments; no shell.
        argv: Vec<String>,
        /// Seconds before the command is killed (default [`DEFAULT_TIMEOUT_S`]).
        timeout_s: f64,
        /// When it runs.
        schedule: ScheduleSpec,
    },
}

/// When a host beacon runs and which samples it sends; the keys every kind takes.
///
/// * `interval_s`: seconds between samples (default [`DEFAULT_INTERVAL_S`], fractions allowed);
/// * `on_change`: send only samples that differ from the last one sent (default `false`);
/// * `min_delta`: with `on_change`, numbers count as changed only when they moved by at least
///   this much;
/// * `heartbeat_s`: with `on_change`, still send at least this often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleSpec {
    /// Seconds between samples.
    pub interval_s: f64,
    /// Send only changed samples.
    pub on_change: bool,
    /// Smallest change of a number that counts, with `on_change`.
    pub min_delta: Option<f64>,
    /// Longest silence, in seconds, with `on_change`.
    pub heartbeat_s: Option<f64>,
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        ScheduleSpec {
            interval_s: DEFAULT_INTERVAL_S,
            on_change: false,
            min_delta: None,
            heartbeat_s: None,
        }
    }
}

impl ScheduleSpec {
    /// Checks the values: positive intervals, options that need `on_change` only with it.
    pub fn validate(&self) -> Result<(), BeaconError> {
        if !positive_seconds(self.interval_s) {
            return Err(BeaconError::InvalidConfig(
                "interval_s must be a positive number of seconds",
            ));
        }
        if self.heartbeat_s.is_some_and(|h| !positive_seconds(h)) {
            return Err(BeaconError::InvalidConfig(
                "heartbeat_s must be a positive number of seconds",
            ));
        }
        if self.min_delta.is_some_and(|d| !d.is_finite() || d < 0.0) {
            return Err(BeaconError::InvalidConfig(
                "min_delta must be a number, 0 or more",
            ));
        }
        if !self.on_change && (self.min_delta.is_some() || self.heartbeat_s.is_some()) {
            return Err(BeaconError::InvalidConfig(
                "min_delta and heartbeat_s apply only with on_change: true",
            ));
        }
        Ok(())
    }

    /// The [`Schedule`] these settings describe (assumes [`validate`](ScheduleSpec::validate)
    /// passed).
    pub fn schedule(&self) -> Schedule {
        let mut s = Schedule::every(millis(self.interval_s));
        if self.on_change {
            s = s.on_change();
        }
        if let Some(d) = self.min_delta {
            s = s.min_delta(d);
        }
        if let Some(h) = self.heartbeat_s {
            s = s.heartbeat(millis(h));
        }
        s
    }
}

impl HostBeaconSpec {
    /// The kind, as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            HostBeaconSpec::Load { .. } => "load",
            HostBeaconSpec::Memory { .. } => "memory",
            HostBeaconSpec::Disk { .. } => "disk",
            HostBeaconSpec::Process { .. } => "process",
            HostBeaconSpec::Command { .. } => "command",
        }
    }

    /// The schedule settings.
    pub fn schedule_spec(&self) -> &ScheduleSpec {
        match self {
            HostBeaconSpec::Load { schedule }
            | HostBeaconSpec::Memory { schedule }
            | HostBeaconSpec::Disk { schedule, .. }
            | HostBeaconSpec::Process { schedule, .. }
            | HostBeaconSpec::Command { schedule, .. } => schedule,
        }
    }

    /// The runner's [`Schedule`] for this beacon.
    pub fn schedule(&self) -> Schedule {
        self.schedule_spec().schedule()
    }

    /// Checks the settings without building the beacon.
    pub fn validate(&self) -> Result<(), BeaconError> {
        self.schedule_spec().validate()?;
        match self {
            HostBeaconSpec::Command { timeout_s, .. } if !positive_seconds(*timeout_s) => Err(
                BeaconError::InvalidConfig("timeout_s must be a positive number of seconds"),
            ),
            _ => Ok(()),
        }
    }

    /// Builds the beacon for the host `source_id`.
    pub fn build(&self, source_id: &str) -> Result<Box<dyn Beacon + Send>, BeaconError> {
        self.validate()?;
        Ok(match self {
            HostBeaconSpec::Load { .. } => Box::new(Load::new(source_id)?),
            HostBeaconSpec::Memory { .. } => Box::new(Memory::new(source_id)?),
            HostBeaconSpec::Disk { path, .. } => Box::new(Disk::new(source_id, path)?),
            HostBeaconSpec::Process { name, pidfile, .. } => {
                Box::new(Process::new(source_id, name, pidfile.as_deref())?)
            }
            HostBeaconSpec::Command {
                name,
                argv,
                timeout_s,
                ..
            } => Box::new(Command::new(
                source_id,
                name,
                argv.clone(),
                Duration::from_secs_f64(*timeout_s),
            )?),
        })
    }
}

/// Builds the beacon `spec` describes for the host `source_id`; see [`HostBeaconSpec::build`].
pub fn build(
    spec: &HostBeaconSpec,
    source_id: &str,
) -> Result<Box<dyn Beacon + Send>, BeaconError> {
    spec.build(source_id)
}

fn positive_seconds(s: f64) -> bool {
    // Up to about 31 years: beyond, the milliseconds would not be exact anyway.
    s.is_finite() && s > 0.0 && s < 1e9
}

fn millis(s: f64) -> u64 {
    (s * 1000.0).round() as u64
}

/// Every key any kind takes, as read; checked and sorted into a [`HostBeaconSpec`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    kind: Kind,
    interval_s: Option<f64>,
    #[serde(default)]
    on_change: bool,
    min_delta: Option<f64>,
    heartbeat_s: Option<f64>,
    path: Option<PathBuf>,
    name: Option<String>,
    pidfile: Option<PathBuf>,
    argv: Option<Vec<String>>,
    timeout_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Load,
    Memory,
    Disk,
    Process,
    Command,
}

/// Why a configured beacon was refused: names the kind, the key and what it needs.
#[derive(Debug)]
struct SpecError(String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<RawSpec> for HostBeaconSpec {
    type Error = SpecError;

    fn try_from(raw: RawSpec) -> Result<Self, SpecError> {
        let kind = match raw.kind {
            Kind::Load => "load",
            Kind::Memory => "memory",
            Kind::Disk => "disk",
            Kind::Process => "process",
            Kind::Command => "command",
        };
        let allowed: &[&str] = match raw.kind {
            Kind::Load | Kind::Memory => &[],
            Kind::Disk => &["path"],
            Kind::Process => &["name", "pidfile"],
            Kind::Command => &["name", "argv", "timeout_s"],
        };
        let given = [
            ("path", raw.path.is_some()),
            ("name", raw.name.is_some()),
            ("pidfile", raw.pidfile.is_some()),
            ("argv", raw.argv.is_some()),
            ("timeout_s", raw.timeout_s.is_some()),
        ];
        if let Some((key, _)) = given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            return Err(SpecError(format!(
                "beacon `{kind}` takes no `{key}` (it takes: {})",
                keys_of(allowed)
            )));
        }
        let missing = |key: &str| SpecError(format!("beacon `{kind}` needs `{key}`"));
        let schedule = ScheduleSpec {
            interval_s: raw.interval_s.unwrap_or(DEFAULT_INTERVAL_S),
            on_change: raw.on_change,
            min_delta: raw.min_delta,
            heartbeat_s: raw.heartbeat_s,
        };
        let spec = match raw.kind {
            Kind::Load => HostBeaconSpec::Load { schedule },
            Kind::Memory => HostBeaconSpec::Memory { schedule },
            Kind::Disk => HostBeaconSpec::Disk {
                path: raw.path.ok_or_else(|| missing("path"))?,
                schedule,
            },
            Kind::Process => HostBeaconSpec::Process {
                name: raw.name.ok_or_else(|| missing("name"))?,
                pidfile: raw.pidfile,
                schedule,
            },
            Kind::Command => HostBeaconSpec::Command {
                name: raw.name.ok_or_else(|| missing("name"))?,
                argv: raw.argv.ok_or_else(|| missing("argv"))?,
                timeout_s: raw.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S),
                schedule,
            },
        };
        spec.validate()
            .map_err(|e| SpecError(format!("beacon `{kind}`: {e}")))?;
        Ok(spec)
    }
}

fn keys_of(kind_keys: &[&str]) -> String {
    let mut keys: Vec<&str> = kind_keys.to_vec();
    keys.extend(["interval_s", "on_change", "min_delta", "heartbeat_s"]);
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::{Event, Value};

    fn parse(yaml: &str) -> Result<Vec<HostBeaconSpec>, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    fn one(yaml: &str) -> HostBeaconSpec {
        parse(yaml).unwrap().remove(0)
    }

    #[test]
    fn defaults() {
        assert_eq!(
            one("- kind: load\n"),
            HostBeaconSpec::Load {
                schedule: ScheduleSpec::default()
            }
        );
        assert_eq!(
            one("- kind: command\n  name: q\n  argv: [echo, hi]\n"),
            HostBeaconSpec::Command {
                name: "q".into(),
                argv: vec!["echo".into(), "hi".into()],
                timeout_s: DEFAULT_TIMEOUT_S,
                schedule: ScheduleSpec::default(),
            }
        );
        let p = one("- kind: process\n  name: sshd\n  interval_s: 0.5\n");
        assert_eq!(p.schedule_spec().interval_s, 0.5);
        assert_eq!(p.schedule().interval_ms(), 500);
        assert_eq!(p.kind(), "process");
    }

    #[test]
    fn errors_name_the_kind_and_the_key() {
        let e = parse("- kind: disk\n").unwrap_err();
        assert!(e.contains("beacon `disk` needs `path`"), "{e}");
        let e = parse("- kind: load\n  path: /\n").unwrap_err();
        assert!(e.contains("beacon `load` takes no `path`"), "{e}");
        let e = parse("- kind: process\n  name: x\n  argv: [a]\n").unwrap_err();
        assert!(
            e.contains("takes no `argv` (it takes: `name`, `pidfile`, `interval_s`"),
            "{e}"
        );
        let e = parse("- kind: memory\n  interval: 5\n").unwrap_err();
        assert!(e.contains("unknown field `interval`"), "{e}");
        let e = parse("- kind: cpu\n").unwrap_err();
        assert!(e.contains("unknown variant `cpu`"), "{e}");
        let e = parse("- kind: memory\n  interval_s: 0\n").unwrap_err();
        assert!(
            e.contains("beacon `memory`: invalid beacon configuration: interval_s"),
            "{e}"
        );
        let e = parse("- kind: memory\n  heartbeat_s: 60\n").unwrap_err();
        assert!(e.contains("only with on_change: true"), "{e}");
        let e = parse("- kind: memory\n  on_change: true\n  min_delta: -1\n").unwrap_err();
        assert!(e.contains("min_delta must be"), "{e}");
        let e = parse("- kind: command\n  name: x\n  argv: [a]\n  timeout_s: -2\n").unwrap_err();
        assert!(e.contains("timeout_s must be"), "{e}");
        // Key errors carry their position.
        let e = parse("- kind: load\n- kind: memory\n  intervals_s: 1\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn schedule_from_settings() {
        let spec = one(
            "- kind: memory\n  interval_s: 1\n  on_change: true\n  min_delta: 5\n  heartbeat_s: 3\n",
        );
        let mut s = spec.schedule();
        assert_eq!(s.interval_ms(), 1_000);
        let ev = |x: f64| {
            let mut e = Event::new("/t", "h").unwrap();
            e.push("used_pct", Value::Float(x)).unwrap();
            e
        };
        use crate::Emit;
        assert_eq!(s.filter(0, &ev(50.0)), Emit::Event);
        assert_eq!(s.filter(1_000, &ev(52.0)), Emit::Skip);
        assert_eq!(s.filter(2_000, &ev(55.0)), Emit::Event);
        assert_eq!(s.filter(5_000, &ev(55.0)), Emit::Event);
    }

    #[test]
    fn builds_every_kind() {
        let yaml = "- kind: load\n- kind: memory\n- kind: disk\n  path: /\n\
            - kind: process\n  name: init\n- kind: command\n  name: up\n  argv: [true]\n";
        let tags: Vec<String> = parse(yaml)
            .unwrap()
            .iter()
            .map(|s| build(s, "web-1").unwrap().tag().to_owned())
            .collect();
        assert_eq!(
            tags,
            [
                "/client/load/web-1",
                "/client/mem/web-1",
                "/client/disk/web-1",
                "/client/service/web-1",
                "/client/cmd/up/web-1"
            ]
        );
        // Settings built in code are checked too.
        let bad = HostBeaconSpec::Disk {
            path: "rel".into(),
            schedule: ScheduleSpec::default(),
        };
        assert!(matches!(bad.build("h"), Err(BeaconError::InvalidConfig(_))));
        let bad = HostBeaconSpec::Load {
            schedule: ScheduleSpec {
                interval_s: f64::NAN,
                ..ScheduleSpec::default()
            },
        };
        assert!(bad.build("h").is_err());
        assert!(one("- kind: load\n").build("bad/id").is_err());
    }

    #[test]
    fn built_beacons_are_send_and_run() {
        fn assert_send<T: Send>(_: &T) {}
        let mut b = one("- kind: memory\n").build("h").unwrap();
        assert_send(&b);
        let mut s = one("- kind: memory\n").schedule();
        let mut e = Event::new("/", "h").unwrap();
        assert_eq!(s.run(&mut b, 0, &mut e), Ok(crate::Emit::Event));
        assert_eq!(e.tag.as_str(), "/client/mem/h");
        assert!(e.get("used_pct").is_some());
    }
}
