//! `reflex demo`: the Manager, its Publisher, an Actor with host beacons, and a few simulated
//! hosts, all on loopback, with the example rulebook; the live stream is printed until Ctrl-C
//! (or `--duration`), and then every process is stopped.
//!
//! Nothing runs in lab mode: the demo makes its own keys (the Manager's, the Actor's and the
//! simulated hosts'), the Manager signs every action and trusts only those keys, and every
//! event is signed by its source.
//!
//! What it shows, within seconds:
//! * the Actor's own beacons (`/client/load/…`, `/client/mem/…`) flowing in;
//! * `web-1`'s simulated load climbing past 20: `load_avg` fires, an event goes to
//!   `/reconfig/lb` and the `reactions.cloud.scale_up` plugin runs;
//! * a simulated full disk on the Actor's host: `disk_full` fires, and `df -h` runs on the
//!   Actor, whose result comes back to the Manager.
//!
//! It prints the dashboard's address and a legend of what to watch for first, and a summary
//! (events, firings, actions, results, from the Manager's counters) last. Its rulebook, keys
//! and plugin live in a temporary directory removed at the end, or in `--keep DIR`, left in
//! place to read, check or run again.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use reflex_core::auth::{self, Signer};
use reflex_core::host::socket::SocketSpec;
use reflex_core::host::sys::{self, Signal};
use reflex_core::wire::{Body, MAX_ENVELOPE_LEN};
use reflex_core::{Event, Value};

use crate::Error;

/// The example rulebook, embedded so the demo needs no checkout.
const RULEBOOK: &[(&str, &str)] = &[
    ("load.yml", include_str!("../../../rules/examples/load.yml")),
    ("disk.yml", include_str!("../../../rules/examples/disk.yml")),
    (
        "service.yml",
        include_str!("../../../rules/examples/service.yml"),
    ),
];
/// The plugin the example rulebook uses.
const SCALE_UP: &str = include_str!("../../../rules/examples/plugins/reactions/cloud/scale_up");

/// The demo Actor's id.
pub const ACTOR_ID: &str = "demo-host";

/// Arguments of `reflex demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Stop by itself after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Write the rulebook, its plugin and the keys into DIR (created if missing; files
    /// already there are not overwritten) and leave them there at the end.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Runs the demo; the exit code is 0 after a clean stop.
pub fn main(args: &DemoArgs) -> std::process::ExitCode {
    let stop = super::stop_on_signals();
    if let Some(secs) = args.duration {
        let stop = stop.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(secs));
            stop.store(true, Relaxed);
        });
    }
    match run(&stop, args.keep.as_deref(), &mut std::io::stdout()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reflex demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Endpoints of one demo run: free loopback ports.
struct Ports {
    events: String,
    publish: String,
    watch: String,
    metrics: String,
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("find a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("find a free port", e))
}

impl Ports {
    fn pick() -> Result<Ports, Error> {
        Ok(Ports {
            events: format!("tcp://127.0.0.1:{}", free_port()?),
            publish: format!("tcp://127.0.0.1:{}", free_port()?),
            watch: format!("tcp://127.0.0.1:{}", free_port()?),
            metrics: format!("127.0.0.1:{}", free_port()?),
        })
    }
}

/// Kills and reaps the Manager when the demo ends, however it ends.
struct ManagerChild(Child);

impl Drop for ManagerChild {
    fn drop(&mut self) {
        // SIGTERM first, so the Manager stops its Publisher; then make sure.
        let _ = sys::signal(self.0.id(), Signal::Term);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes the demo's directory when it ends, unless it is kept.
struct TempDir(PathBuf, bool);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What to watch for, printed at start.
const LEGEND: &str = "\
reflex demo: what to watch for
  /client/load/<host> /client/mem/<host>  beacons flowing in (the Actor's host, web-1, web-2)
  REACTION ... rule=disk_full             the simulated full disk fired: a log line, and an
                                          action sent to the Actor (df -h)
  RESULT reactions.actor.run demo-host    df -h ran on the Actor; its output came back
  /reconfig/lb, REACTION ... rule=load_avg  web-1's load passed 20: an event fired and the
                                          cloud.scale_up plugin ran
  DROP ...                                something was dropped, with the reason
  dashboard: registers per host, firing groups in red, the Actor's last heartbeat";

/// The Manager's counters the summary reports: `(label, metric)`.
const SUMMARY: &[(&str, &str)] = &[
    ("events", "reflex_events_received_total"),
    ("firings", "reflex_rules_fired_total"),
    ("actions", "reflex_actions_sent_total"),
    ("results", "reflex_results_received_total"),
];

/// One line of the Manager's counters at `metrics`: `events 120, firings 4, ...`.
fn summary(metrics: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(metrics).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    // Every sample of the family, summed: per-rule counters carry a `rule` label.
    let value = |name: &str| {
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?;
                let (labels, n) = rest.rsplit_once(' ')?;
                (labels.is_empty() || labels.starts_with('{')).then(|| n.parse::<u64>().ok())?
            })
            .reduce(|a, b| a + b)
    };
    let parts: Vec<String> = SUMMARY
        .iter()
        .map(|(label, name)| Some(format!("{} {label}", value(name)?)))
        .collect::<Option<_>>()?;
    Some(parts.join(", "))
}

/// Writes the rulebook and its plugin into `dir`.
fn write_rulebook(dir: &Path) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let rules = dir.join("rules");
    let plugin_dir = rules.join("plugins/reactions/cloud");
    std::fs::create_dir_all(&plugin_dir).map_err(|e| Error::io("create the demo directory", e))?;
    for (name, text) in RULEBOOK {
        std::fs::write(rules.join(name), text)
            .map_err(|e| Error::io("write the demo rulebook", e))?;
    }
    let plugin = plugin_dir.join("scale_up");
    std::fs::write(&plugin, SCALE_UP).map_err(|e| Error::io("write the demo plugin", e))?;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("make the demo plugin executable", e))?;
    Ok(rules)
}

/// The simulated hosts, which sign their events with keys of their own.
const SIMULATED: &[&str] = &["web-1", "web-2"];

/// Makes the demo's keys under `dir/keys`, and the Manager's trust directory `dir/trust` with
/// the public keys of the Actor and the simulated hosts.
fn make_keys(dir: &Path) -> Result<(), Error> {
    let keys = dir.join("keys");
    let trust = dir.join("trust");
    super::keys::generate_pair(&keys, "manager")?;
    for id in std::iter::once(&ACTOR_ID).chain(SIMULATED) {
        let (_, public) = super::keys::generate_pair(&keys, id)?;
        std::fs::create_dir_all(&trust).map_err(|e| Error::io("create the trust directory", e))?;
        std::fs::copy(&public, trust.join(format!("{id}.pub")))
            .map_err(|e| Error::io("fill the trust directory", e))?;
    }
    Ok(())
}

/// The signer of a simulated host (or of the Actor's host, for its simulated disk report).
fn signer(dir: &Path, id: &str) -> Result<Signer, Error> {
    let path = dir.join("keys").join(format!("{id}.key"));
    auth::keyfile::read(&path)
        .map_err(|e| Error::Demo(format!("{}: {e}", path.display())))?
        .signer()
        .map_err(|e| Error::Demo(format!("{}: {e}", path.display())))
}

/// The demo Actor: allowed to run `df -h` only, with load and memory beacons every 2 s.
fn agent_config(ports: &Ports, dir: &Path) -> Result<reflex_agent::AgentConfig, Error> {
    let keys = dir.join("keys");
    let yaml = format!(
        "id: {ACTOR_ID}\nmanager: {}\npublisher: {}\nkey: {}\nmanager_key: {}\nheartbeat_s: 2\nallow:\n  run:\n    - [df, -h]\nbeacons:\n  - kind: load\n    interval_s: 2\n  - kind: memory\n    interval_s: 2\n",
        ports.events,
        ports.publish,
        keys.join(format!("{ACTOR_ID}.key")).display(),
        keys.join("manager.pub").display(),
    );
    reflex_agent::AgentConfig::from_yaml_str(&yaml, "demo-agent.yml")
        .map_err(|e| Error::Demo(e.to_string()))
}

/// Runs the demo until `stop` is set, writing the live stream to `out`.
pub fn run(stop: &Arc<AtomicBool>, keep: Option<&Path>, out: &mut impl Write) -> Result<(), Error> {
    let dir = keep.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("reflex-demo-{}", std::process::id()))
    });
    if keep.is_some() && dir.join("rules").exists() {
        return Err(Error::Demo(format!(
            "{} already holds a demo; give another --keep directory or remove it",
            dir.display()
        )));
    }
    let _cleanup = TempDir(dir.clone(), keep.is_some());
    let rules = write_rulebook(&dir)?;
    make_keys(&dir)?;
    let ports = Ports::pick()?;
    let exe = std::env::current_exe().map_err(|e| Error::io("find the reflex executable", e))?;

    let _ = writeln!(
        out,
        "reflex demo: Manager on {}, Publisher on {}, watch on {}, metrics on http://{}/metrics",
        ports.events, ports.publish, ports.watch, ports.metrics
    );
    let _ = writeln!(
        out,
        "reflex demo: dashboard on http://{}/ (open it in a browser)",
        ports.metrics
    );
    let _ = writeln!(
        out,
        "reflex demo: rulebook {} ({}; Ctrl-C stops everything)",
        rules.display(),
        if keep.is_some() {
            "kept after the demo"
        } else {
            "removed after the demo; --keep DIR keeps it"
        }
    );
    let _ = writeln!(out, "{LEGEND}");
    let manager = Command::new(&exe)
        .arg("manager")
        .arg("--rules")
        .arg(&rules)
        .args(["--events", &ports.events])
        .args(["--publish", &ports.publish])
        .args(["--watch", &ports.watch])
        .args(["--metrics", &ports.metrics])
        .args(["--feed", &format!("ipc://{}/feed.ipc", dir.display())])
        .arg("--key")
        .arg(dir.join("keys/manager.key"))
        .arg("--trust")
        .arg(dir.join("trust"))
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("start the Manager", e))?;
    let mut manager = ManagerChild(manager);

    // The live stream, printed by a watcher thread.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let watch_stop = stop.clone();
    let watch_from = ports.watch.clone();
    let watcher = thread::spawn(move || {
        struct Lines(std::sync::mpsc::Sender<String>);
        impl Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        crate::cli::watch::watch(&watch_from, None, &mut Lines(tx), &watch_stop)
    });

    // The Actor and its beacons.
    let agent_stop = Arc::new(AtomicBool::new(false));
    let config = agent_config(&ports, &dir)?;
    let agent = {
        let agent_stop = agent_stop.clone();
        thread::spawn(move || reflex_agent::run(config, agent_stop))
    };

    // Simulated hosts.
    let ctx = zmq::Context::new();
    let push = SocketSpec::new(zmq::PUSH, "events")
        .send_hwm(1000)
        .connect(&ctx, &ports.events)?;

    let signers = SIMULATED
        .iter()
        .chain(std::iter::once(&ACTOR_ID))
        .map(|id| Ok((*id, signer(&dir, id)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let start = Instant::now();
    let mut next_tick = start;
    let mut tick = 0u64;
    let mut result = Ok(());
    while !stop.load(Relaxed) {
        if let Ok(Some(status)) = manager.0.try_wait() {
            result = Err(Error::Demo(format!("the Manager exited early ({status})")));
            break;
        }
        while let Ok(line) = rx.try_recv() {
            let _ = out.write_all(line.as_bytes());
        }
        let _ = out.flush();
        if Instant::now() >= next_tick {
            simulate(&push, &signers, tick);
            tick += 1;
            next_tick += Duration::from_secs(1);
        }
        thread::sleep(Duration::from_millis(50));
    }

    let _ = writeln!(out, "reflex demo: stopping");
    let counted = summary(&ports.metrics);
    stop.store(true, Relaxed);
    agent_stop.store(true, Relaxed);
    if let Ok(Err(e)) = agent.join() {
        let _ = writeln!(out, "reflex demo: the Actor stopped with an error: {e}");
    }
    drop(push);
    drop(manager);
    let _ = watcher.join();
    while let Ok(line) = rx.try_recv() {
        let _ = out.write_all(line.as_bytes());
    }
    match counted {
        Some(line) => {
            let _ = writeln!(out, "reflex demo: summary: {line}");
        }
        None => {
            let _ = writeln!(
                out,
                "reflex demo: summary: the Manager's counters did not answer"
            );
        }
    }
    if keep.is_some() {
        let _ = writeln!(
            out,
            "reflex demo: kept {} (rules/, keys/, trust/)",
            dir.display()
        );
    }
    let _ = writeln!(out, "reflex demo: stopped");
    result
}

/// One second of simulated hosts: `web-1`'s load climbs by 8 a second from 4 and falls back
/// after 15 s, `web-2` stays calm, and from the 4th second the Actor's host reports a disk 95%
/// full.
fn simulate(push: &zmq::Socket, signers: &[(&str, Signer)], tick: u64) {
    let send = |tag: &str, source: &str, fields: &[(&str, Value)]| {
        if let Some((_, signer)) = signers.iter().find(|(id, _)| *id == source) {
            send(push, signer, tag, source, fields);
        }
    };
    let phase = tick % 30;
    let web1 = if phase < 15 {
        4.0 + 8.0 * phase as f64
    } else {
        2.0
    };
    send(
        "/client/load/web-1",
        "web-1",
        &[
            ("load_avg", Value::Float(web1)),
            ("io_avg", Value::Float(1.5)),
        ],
    );
    send(
        "/client/load/web-2",
        "web-2",
        &[
            ("load_avg", Value::Float(3.0)),
            ("io_avg", Value::Float(0.5)),
        ],
    );
    if tick >= 3 {
        let used = if phase < 20 { 95 } else { 60 };
        let mount = Value::str("/").unwrap_or(Value::Int(0));
        send(
            &format!("/client/disk/{ACTOR_ID}"),
            ACTOR_ID,
            &[("used_pct", Value::Int(used)), ("mount", mount)],
        );
    }
}

/// Sends one signed event; its sequence number is the time in microseconds, which keeps
/// increasing across demo runs as the Manager's replay window wants.
fn send(push: &zmq::Socket, signer: &Signer, tag: &str, source: &str, fields: &[(&str, Value)]) {
    let Ok(mut event) = Event::new(tag, source) else {
        return;
    };
    event.time = reflex_core::host::clock::now_ms();
    event.seq = reflex_core::host::clock::now_us();
    for (name, value) in fields {
        let _ = event.push(name, value.clone());
    }
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    if let Ok(n) = auth::encode(&Body::Event(event), Some(signer), &mut buf) {
        // A full queue drops the sample: the demo never blocks on the bus.
        let _ = push.send(&buf[..n], zmq::DONTWAIT);
    }
}
