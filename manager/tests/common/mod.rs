//! Helpers for the cross-process tests: free ports, scratch directories, and a running
//! Manager that is stopped (with its Publisher) when the test ends, however it ends.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any wait in these tests may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `reflex` binary.
pub fn reflex() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after [`PATIENCE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "reflex-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes an executable file (a plugin) at `rel`.
    pub fn executable(&self, rel: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process stopped on drop: SIGTERM, then SIGKILL if it lingers.
pub struct Proc(pub Child);

impl Proc {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

/// SIGTERM, up to 5 s of grace, then SIGKILL; always reaped.
pub fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started; no memory is involved.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Whether a process exists (and is not a zombie we could still reap).
pub fn alive(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state is the field after the parenthesised command name.
    let state = status
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    !state.is_empty() && state != "Z" && state != "X"
}

/// A running `reflex manager` on free loopback ports.
pub struct Manager {
    pub proc: Proc,
    pub events: String,
    pub publish: String,
    pub watch: String,
    pub metrics: String,
    pub log: PathBuf,
    pub dir: Scratch,
}

impl Manager {
    /// Writes `rules` (YAML; `{dir}` replaced by the scratch directory) to a rulebook and
    /// starts a Manager on it; returns once its metrics answer and its Publisher runs.
    pub fn start(name: &str, rules: &str) -> Manager {
        Manager::start_in(Scratch::new(name), rules)
    }

    /// As [`Manager::start`], in a prepared scratch directory (with plugins, say). The Manager
    /// runs `--insecure`: these tests are about what it does, not about authentication.
    pub fn start_in(dir: Scratch, rules: &str) -> Manager {
        Manager::start_with(dir, rules, &["--insecure".into()])
    }

    /// As [`Manager::start_in`], with `flags` (keys, say) instead of `--insecure`.
    pub fn start_with(dir: Scratch, rules: &str, flags: &[String]) -> Manager {
        let rules = rules.replace("{dir}", &dir.path().display().to_string());
        let book = dir.path().join("rules.yml");
        std::fs::write(&book, rules).unwrap();
        let log = dir.path().join("manager.log");
        let port = |_| format!("tcp://127.0.0.1:{}", free_port());
        let (events, publish, watch) = (port(0), port(1), port(2));
        let metrics = format!("127.0.0.1:{}", free_port());
        let child = reflex()
            .arg("manager")
            .arg("--rules")
            .arg(&book)
            .args([
                "--events",
                &events,
                "--publish",
                &publish,
                "--watch",
                &watch,
            ])
            .args(["--metrics", &metrics, "--workers", "2"])
            .arg("--feed")
            .arg(format!("ipc://{}/feed.ipc", dir.path().display()))
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut m = Manager {
            proc: Proc(child),
            events,
            publish,
            watch,
            metrics,
            log,
            dir,
        };
        wait_until("the manager's metrics and publisher", || {
            if let Ok(Some(status)) = m.proc.0.try_wait() {
                panic!("manager exited with {status}: {}", m.log_text());
            }
            m.metric("reflex_publisher_pid").unwrap_or(0.0) > 0.0
        });
        m
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The text of `/metrics`, or `None` while nothing answers.
    pub fn scrape(&self) -> Option<String> {
        let mut s = TcpStream::connect(&self.metrics).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        Some(body.to_string())
    }

    /// The value of one sample, named with its labels exactly as exposed.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.scrape()?;
        text.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok())?
        })
    }

    /// `reflex send TAG FIELDS... --source SOURCE` to this Manager; asserts success.
    pub fn send(&self, tag: &str, fields: &[&str], source: &str) {
        let out = send(tag, fields, &["--source", source, "--to", &self.events]);
        assert!(
            out.status.success(),
            "reflex send failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `reflex send` with extra flags.
pub fn send(tag: &str, fields: &[&str], flags: &[&str]) -> Output {
    reflex()
        .arg("send")
        .arg(tag)
        .args(fields)
        .args(flags)
        .output()
        .unwrap()
}

/// Reads one HTTP request from `stream` and answers `status`; returns the body.
pub fn serve_one(stream: &mut TcpStream, status: &str) -> (String, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the request head");
        data.extend_from_slice(&chunk[..n]);
        if let Some(p) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + len {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the request body");
        data.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..head_end + len]).to_string();
    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    stream.write_all(answer.as_bytes()).unwrap();
    (head, body)
}
