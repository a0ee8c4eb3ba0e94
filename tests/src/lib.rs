//! The harness of reflex's cross-process tests: it finds the real `reflex` and
//! `reflex-agent` binaries, starts them on free loopback ports, watches what the Manager sees
//! through its watch socket and reads its `/metrics`; every process it starts is stopped when
//! its guard is dropped, however the test ends.
//!
//! It serves the cross-process tests of every crate: `tests/tests` (Managers and Actors
//! together, with the watch stream collected: [`Manager`], [`Agent`]), the Manager's own in
//! `manager/tests` ([`standalone`]: a Manager on a rulebook given as text), and the Actor's in
//! `agent-std/tests` ([`bus`]: the test plays Manager and Publisher).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reflex_core::Event;
use reflex_core::wire::{self, Body, MAX_ENVELOPE_LEN};

pub mod bus;
pub mod standalone;

/// How long any wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Flags every test Manager and Agent is started with, beyond its endpoints: lab mode, since
/// these tests are about behaviour other than authentication (which `manager/tests/security.rs`
/// and `agent-std/tests/security.rs` test with keys).
pub const LAB_FLAGS: &[&str] = &["--insecure"];

/// The path of a binary of the workspace (`reflex`, `reflex-agent`), built if missing.
///
/// The binaries sit beside the test executable's `deps/` directory; `cargo test --workspace`
/// builds them, and a lone `cargo test -p reflex-tests` gets them built here.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--bins",
                "-p",
                "reflex-manager",
                "-p",
                "reflex-agent",
            ])
            .status()
            .expect("cargo build of the binaries");
        assert!(status.success(), "cannot build the binaries");
    }
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A loopback port nobody listens on right now, and never handed out before by this process
/// (tests run in parallel: two of them must not pick the same port between its release here
/// and its bind by a Manager).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut given = GIVEN.lock().expect("port list");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A `tcp://127.0.0.1:PORT` endpoint on a free port.
pub fn free_endpoint() -> String {
    format!("tcp://127.0.0.1:{}", free_port())
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after [`PATIENCE`].
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_within(what, PATIENCE, cond);
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after `patience`.
pub fn wait_within(what: &str, patience: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A scratch directory, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new, empty directory named after `name`.
    pub fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "reflex-e2e-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `rel`, with `{dir}` replaced by this directory; returns the path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
        let text = text.replace("{dir}", &self.0.display().to_string());
        std::fs::write(&path, text).expect("a scratch file");
        path
    }

    /// Writes an executable file (a plugin) at `rel`, `text` as is; returns the path.
    pub fn executable(&self, rel: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
        std::fs::write(&path, text).expect("a scratch file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("an executable mode");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process stopped on drop: SIGTERM, up to 5 s of grace, then SIGKILL; always reaped.
pub struct Proc(pub Child);

impl Proc {
    /// Starts `cmd` with stdin closed and stderr into `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Proc {
        let err = std::fs::File::create(log).expect("a log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("the process starts");
        Proc(child)
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        signal(self.0.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends signal `sig` to process `pid` (one the test started, or one it read from metrics).
/// A pid that names no single process (0, or too large) is ignored.
pub fn signal(pid: u32, sig: i32) {
    let Some(pid) = libc::pid_t::try_from(pid).ok().filter(|&p| p > 0) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether a process exists (and is not a zombie that could still be reaped).
pub fn alive(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state is the field after the parenthesised command name.
    let state = status
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    !state.is_empty() && state != "Z" && state != "X"
}

/// The text of `GET /metrics` at `addr` (`HOST:PORT`), or `None` while nothing answers
/// within `timeout`.
pub fn scrape(addr: &str, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(body.to_string())
}

/// What the Manager published on its watch socket, collected by a thread.
pub struct Watch {
    events: Arc<Mutex<Vec<Event>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// Subscribes to `endpoint` and collects every event.
    pub fn start(endpoint: &str) -> Watch {
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (events, stop, endpoint) = (events.clone(), stop.clone(), endpoint.to_string());
            std::thread::spawn(move || {
                let ctx = zmq::Context::new();
                let sub = ctx.socket(zmq::SUB).expect("a SUB socket");
                sub.set_linger(0).expect("linger");
                sub.set_subscribe(b"").expect("subscribe");
                sub.connect(&endpoint).expect("connect to watch");
                let _ = ready_tx.send(());
                let mut buf = vec![0u8; MAX_ENVELOPE_LEN + 1];
                while !stop.load(Relaxed) {
                    if sub.poll(zmq::POLLIN, 100).unwrap_or(0) == 0 {
                        continue;
                    }
                    let Ok(parts) = sub.recv_multipart(0) else {
                        continue;
                    };
                    let Some(bytes) = parts.last() else { continue };
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    if let Ok(d) = wire::decode(&buf[..n]) {
                        if let Body::Event(e) = d.envelope.body {
                            events.lock().expect("watch lock").push(e);
                        }
                    }
                }
            })
        };
        let _ = ready_rx.recv_timeout(PATIENCE);
        Watch {
            events,
            stop,
            thread: Some(thread),
        }
    }

    /// The events seen so far whose tag starts with `prefix`.
    pub fn seen(&self, prefix: &str) -> Vec<Event> {
        let all = self.events.lock().expect("watch lock");
        all.iter()
            .filter(|e| e.tag.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Waits until an event whose tag starts with `prefix` satisfies `cond`; returns it.
    pub fn wait_for(&self, prefix: &str, mut cond: impl FnMut(&Event) -> bool) -> Event {
        let mut found = None;
        wait_until(&format!("an event under {prefix}"), || {
            found = self.seen(prefix).into_iter().find(|e| cond(e));
            found.is_some()
        });
        found.expect("found above")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running `reflex manager` on free loopback ports, with its watch stream collected.
pub struct Manager {
    /// The process.
    pub proc: Proc,
    /// Its events endpoint.
    pub events: String,
    /// Its Publisher's endpoint.
    pub publish: String,
    /// Its metrics address.
    pub metrics: String,
    /// Its log file.
    pub log: PathBuf,
    /// What it published on watch.
    pub watch: Watch,
}

impl Manager {
    /// Starts a Manager on the rulebook at `rules` in lab mode ([`LAB_FLAGS`], then `extra`),
    /// logging into `dir`; returns once its metrics answer, its Publisher runs and the watch
    /// stream is subscribed.
    pub fn start(dir: &Scratch, rules: &Path, extra: &[&str]) -> Manager {
        Manager::launch(dir, rules, LAB_FLAGS, extra)
    }

    /// Starts a Manager as [`Manager::start`] does but without [`LAB_FLAGS`]: `extra` gives
    /// its `--key` and `--trust`. The watch stream is subscribed but not probed (an
    /// unauthenticated probe would be refused), so wait for events that recur.
    pub fn start_secure(dir: &Scratch, rules: &Path, extra: &[&str]) -> Manager {
        Manager::launch(dir, rules, &[], extra)
    }

    fn launch(dir: &Scratch, rules: &Path, flags: &[&str], extra: &[&str]) -> Manager {
        let (events, publish, watch) = (free_endpoint(), free_endpoint(), free_endpoint());
        let metrics = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join(format!("manager-{}.log", free_port()));
        let mut cmd = Command::new(binary("reflex"));
        cmd.arg("manager")
            .arg("--rules")
            .arg(rules)
            .args([
                "--events",
                &events,
                "--publish",
                &publish,
                "--watch",
                &watch,
            ])
            .args(["--metrics", &metrics])
            .arg("--feed")
            .arg(format!(
                "ipc://{}/feed-{}.ipc",
                dir.path().display(),
                free_port()
            ))
            .args(flags)
            .args(extra)
            .env("RUST_LOG", "info");
        let proc = Proc::spawn(cmd, &log);
        let watch = Watch::start(&watch);
        let mut m = Manager {
            proc,
            events,
            publish,
            metrics,
            log,
            watch,
        };
        wait_until("the manager's metrics and publisher", || {
            if m.proc.exited() {
                panic!("the manager exited: {}", m.log_text());
            }
            m.metric("reflex_publisher_pid").unwrap_or(0.0) > 0.0
        });
        if !flags.is_empty() {
            m.await_watch();
        }
        m
    }

    /// Sends probe events until one comes back on the watch stream, so that nothing the test
    /// sends afterwards is published before the watch subscription is in place.
    fn await_watch(&self) {
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).expect("a PUSH socket");
        push.set_linger(0).expect("linger");
        push.connect(&self.events).expect("connect to events");
        let mut buf = [0u8; MAX_ENVELOPE_LEN];
        let probe = Event::new("/reflex-test/probe", "reflex-test").expect("a probe event");
        let n = wire::encode(&wire::Envelope::new(probe), &mut buf).expect("encode");
        wait_until("the watch stream", || {
            let _ = push.send(&buf[..n], zmq::DONTWAIT);
            std::thread::sleep(Duration::from_millis(200));
            !self.watch.seen("/reflex-test/probe").is_empty()
        });
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the Manager has exited.
    pub fn proc_exited(&mut self) -> bool {
        self.proc.exited()
    }

    /// The text of `/metrics`, or `None` while nothing answers.
    pub fn scrape(&self) -> Option<String> {
        scrape(&self.metrics, Duration::from_secs(10))
    }

    /// One sample, named with its labels exactly as exposed.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        metric_in(&self.scrape()?, sample)
    }
}

/// One sample of a scraped metrics text.
pub fn metric_in(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().ok())?
    })
}

/// The sum of every sample of metric `name`, whatever its labels.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (sample, value) = l.rsplit_once(' ')?;
            let base = sample.split('{').next()?;
            (base == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A running `reflex-agent` with the configuration `yaml` (written to `dir`).
pub struct Agent {
    /// The process.
    pub proc: Proc,
    /// Its log file.
    pub log: PathBuf,
}

impl Agent {
    /// Starts `reflex-agent --id ID --config ...` against `manager`.
    pub fn start(dir: &Scratch, id: &str, manager: &Manager, yaml: &str) -> Agent {
        let config = dir.write(&format!("{id}.yml"), yaml);
        let log = dir.path().join(format!("agent-{id}.log"));
        let mut cmd = Command::new(binary("reflex-agent"));
        cmd.args(["--id", id, "--manager", &manager.events])
            .args(["--publisher", &manager.publish])
            .arg("--config")
            .arg(config)
            .args(LAB_FLAGS)
            .env("RUST_LOG", "info");
        Agent {
            proc: Proc::spawn(cmd, &log),
            log,
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
