//! A Manager on its own, for the Manager's cross-process tests: started on a rulebook given
//! as text, in a scratch directory of its own, and stopped (with its Publisher) when the test
//! ends, however it ends; `reflex` and `reflex send`; and a one-shot HTTP server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{Proc, Scratch, free_port, metric_in};

/// How long any wait in these tests may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How long a `/metrics` answer may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The `reflex` binary.
pub fn reflex() -> Command {
    Command::new(crate::binary("reflex"))
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after [`PATIENCE`].
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    crate::wait_within(what, PATIENCE, cond);
}

/// The text of `/metrics` at `addr`, or `None` while nothing answers.
pub fn scrape(addr: &str) -> Option<String> {
    crate::scrape(addr, SCRAPE_TIMEOUT)
}

/// A running `reflex manager` on free loopback ports.
pub struct Manager {
    /// The process.
    pub proc: Proc,
    /// Its events endpoint.
    pub events: String,
    /// Its Publisher's endpoint.
    pub publish: String,
    /// Its watch endpoint.
    pub watch: String,
    /// Its metrics address.
    pub metrics: String,
    /// Its log file.
    pub log: PathBuf,
    /// Its scratch directory, which holds its rulebook.
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
        let book = dir.write("rules.yml", rules);
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

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The text of `/metrics`, or `None` while nothing answers.
    pub fn scrape(&self) -> Option<String> {
        scrape(&self.metrics)
    }

    /// The value of one sample, named with its labels exactly as exposed.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        metric_in(&self.scrape()?, sample)
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
