//! The Manager against raw ZeroMQ, measured in one run so that the ratio holds on a noisy
//! machine:
//!
//! 1. raw ZeroMQ PUSH/PULL over loopback TCP, messages of the envelope's size;
//! 2. the real `reflex manager` (release build) with 100 rules loaded (100 tag entries, one
//!    rule each; each event matches one of them), fed the same way; its rate is read from
//!    `/metrics`; and again with all 100 rules matching every event;
//! 3. event-to-local-reaction latency at a steady 10 000 events/s: every event fires a rule
//!    whose `reactions.eventer.fire_event` reaction echoes the send time, and the echo is
//!    timed when it comes back on the watch stream (so the figure includes the trip out).
//!
//! Run: `cargo bench -p reflex-manager --bench throughput` (`REFLEX_BENCH_EVENTS` sets the
//! message count, default 200 000; `REFLEX_BENCH_CASES`, e.g. `raw,one`, runs only some of
//! `raw`, `one`, `all`, `latency`, for profiling; `REFLEX_BENCH_FLAGS` adds Manager flags).
#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reflex_core::wire::{self, Body, Envelope, MAX_ENVELOPE_LEN};
use reflex_core::{Event, Value};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A representative event: a host's load report.
fn event(i: u64, tag: &str) -> Vec<u8> {
    let mut e = Event::new(tag, "web-1").unwrap();
    e.seq = i;
    e.time = 1_700_000_000_000 + i;
    e.push("load_avg", Value::Float(3.25)).unwrap();
    e.push("t", Value::Int(now_us())).unwrap();
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    let n = wire::encode(&Envelope::new(e), &mut buf).unwrap();
    buf[..n].to_vec()
}

/// Raw PUSH/PULL: messages per second through a pair of sockets on loopback TCP.
fn raw_zmq(n: u64, message: &[u8]) -> f64 {
    let port = free_port();
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let msg = message.to_vec();
    let sender = std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(-1).unwrap();
        push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
        for _ in 0..n {
            push.send(&msg, 0).unwrap();
        }
    });
    let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
    let first = pull.recv_into(&mut buf, 0).map(|_| Instant::now()).unwrap();
    for _ in 1..n {
        pull.recv_into(&mut buf, 0).unwrap();
    }
    let secs = first.elapsed().as_secs_f64();
    sender.join().unwrap();
    (n - 1) as f64 / secs
}

struct Manager {
    child: Child,
    events: String,
    watch: String,
    metrics: String,
    _dir: Dir,
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Manager {
    fn start(name: &str, rulebook: &str) -> Manager {
        let dir = std::env::temp_dir().join(format!("reflex-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = dir.join("rules.yml");
        std::fs::write(&rules, rulebook).unwrap();
        let events = format!("tcp://127.0.0.1:{}", free_port());
        let watch = format!("tcp://127.0.0.1:{}", free_port());
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reflex"));
        cmd.arg("manager")
            .arg("--rules")
            .arg(&rules)
            .args([
                "--events",
                &events,
                "--watch",
                &watch,
                "--metrics",
                &metrics,
            ])
            .args(["--publish", &format!("tcp://127.0.0.1:{}", free_port())])
            .arg("--feed")
            .arg(format!("ipc://{}/feed.ipc", dir.display()))
            .args(["--queue", "100000"])
            .args(bench_flags())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = cmd.spawn().unwrap();
        let m = Manager {
            child,
            events,
            watch,
            metrics,
            _dir: Dir(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while m.metric("reflex_events_decoded_total").is_none() {
            assert!(Instant::now() < deadline, "the manager did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let mut s = TcpStream::connect(&self.metrics).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name).then(|| v.parse().ok())?
        })
    }
}

/// Flags the bench Manager needs beyond its endpoints (none in a lab without keys).
fn bench_flags() -> Vec<String> {
    std::env::var("REFLEX_BENCH_FLAGS")
        .map(|f| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// The Manager's rate: events evaluated per second, sender blocking as in the raw case.
fn manager_rate(m: &Manager, n: u64, tag: &str) -> f64 {
    let messages: Vec<Vec<u8>> = (0..1000).map(|i| event(i, tag)).collect();
    let base = m.metric("reflex_events_decoded_total").unwrap();
    let endpoint = m.events.clone();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(-1).unwrap();
        push.connect(&endpoint).unwrap();
        for i in 0..n {
            push.send(&messages[(i % 1000) as usize], 0).unwrap();
        }
    });
    let target = base + n as f64;
    while m.metric("reflex_events_decoded_total").unwrap_or(0.0) < target {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    sender.join().unwrap();
    n as f64 / secs
}

/// Event-to-local-reaction latency at `rate` events/s for `secs` seconds: (p50, p99, seen).
fn latency(m: &Manager, rate: u64, secs: u64) -> (f64, f64, usize) {
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_subscribe(b"/bench/echo").unwrap();
    sub.set_rcvhwm(0).unwrap();
    sub.connect(&m.watch).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(-1).unwrap();
    push.connect(&m.events).unwrap();
    // Let the subscription settle.
    std::thread::sleep(Duration::from_millis(500));
    let total = rate * secs;
    let receiver = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(total as usize);
        let deadline = Instant::now() + Duration::from_secs(secs + 10);
        let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
        while (lat.len() as u64) < total && Instant::now() < deadline {
            if sub.poll(zmq::POLLIN, 100).unwrap_or(0) == 0 {
                continue;
            }
            let parts = sub.recv_multipart(0).unwrap();
            let bytes = parts.last().unwrap();
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            if let Ok(d) = wire::decode(&buf[..n]) {
                if let Body::Event(e) = d.envelope.body {
                    if let Some(Value::Int(t)) = e.get("t") {
                        lat.push((now_us() - t) as f64 / 1000.0);
                    }
                }
            }
        }
        lat
    });
    let start = Instant::now();
    let per_ms = rate / 1000;
    for ms in 0..secs * 1000 {
        // Sleep, not spin: on a small machine a spinning sender would starve the Manager.
        let due = start + Duration::from_millis(ms);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        for i in 0..per_ms {
            push.send(event(ms * per_ms + i, "/lat/web-1"), 0).unwrap();
        }
    }
    let mut lat = receiver.join().unwrap();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (pct(0.50), pct(0.99), lat.len())
}

/// 100 tag entries `/bench/<i>/*`, one rule each, thresholds the events never cross.
fn hundred_rules() -> String {
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!(
            "/bench/{i}/*:\n  rules:\n    - r{i}:\n        rule: rules.simple.gt\n        field: load_avg\n        register: register.aggregate.avg\n        threshold: {}\n        period: 10\n        reactions:\n          - reactions.log.print:\n              message: high\n",
            100 + i
        ));
    }
    text
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let n: u64 = std::env::var("REFLEX_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let cases =
        std::env::var("REFLEX_BENCH_CASES").unwrap_or_else(|_| "raw,one,all,latency".into());
    let run = |case: &str| cases.split(',').any(|c| c.trim() == case);
    let sample = event(0, "/bench/7/web-1");
    println!("message size: {} bytes, {n} messages per run", sample.len());

    let raw = if run("raw") {
        let raw = raw_zmq(n, &sample);
        println!("raw ZeroMQ PUSH/PULL:                 {raw:>10.0} msg/s");
        raw
    } else {
        f64::NAN
    };

    if run("one") {
        let m = Manager::start("one", &hundred_rules());
        let one = manager_rate(&m, n, "/bench/7/web-1");
        drop(m);
        println!(
            "manager, 100 rules loaded, 1 matching: {one:>10.0} events/s  ({:.2} of raw)",
            one / raw
        );
    }

    if run("all") {
        let mut text = String::from("/bench/*:\n  rules:\n");
        for i in 0..100 {
            text.push_str(&format!(
                "    - r{i}:\n        rule: rules.simple.gt\n        field: load_avg\n        register: register.aggregate.avg\n        threshold: {}\n        period: 10\n",
                100 + i
            ));
        }
        let m = Manager::start("all", &text);
        let all = manager_rate(&m, n / 4, "/bench/7/web-1");
        drop(m);
        println!(
            "manager, 100 rules loaded, all match:  {all:>10.0} events/s  ({:.2} of raw)",
            all / raw
        );
    }

    if !run("latency") {
        return;
    }
    let m = Manager::start(
        "latency",
        "/lat/*:\n  rules:\n    - load_avg:\n        rule: rules.simple.gt\n        threshold: 0\n        fire: always\n        reactions:\n          - reactions.eventer.fire_event:\n              tag: /bench/echo\n              data:\n                t: '{{ event.data.t }}'\n",
    );
    let (p50, p99, seen) = latency(&m, 10_000, 3);
    drop(m);
    println!(
        "event -> local reaction (fire_event, seen on watch) at 10 000 events/s: p50 {p50:.3} ms, p99 {p99:.3} ms ({seen} samples)"
    );
}
