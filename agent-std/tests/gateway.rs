//! The real `reflex-agent gateway` on a pseudo-terminal: the test holds the master side (the
//! device's end of the line) and plays Manager and Publisher with real ZeroMQ sockets.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::pty::openpty;
use nix::sys::termios::{self, SetArg};
use reflex_core::frame::{self, EnvelopeDeframer, FrameStats, MAX_ENVELOPE_FRAME_LEN};
use reflex_core::wire::{self, Action, Body, Envelope};
use reflex_core::{Event, Value};
use reflex_tests::bus::{Bus, WAIT, action, now_ms};

/// A pseudo-terminal: the master for the test, the slave's path for the gateway.
struct Pty {
    master: File,
    /// Kept open so the line stays up whatever the gateway does.
    _slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    fn new() -> Pty {
        let pty = openpty(None, None).unwrap();
        // Not inherited by the gateway: when the test closes the master, the line is gone.
        for fd in [pty.master.as_fd(), pty.slave.as_fd()] {
            use nix::fcntl::{FcntlArg, FdFlag, fcntl};
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
        }
        // Raw from the start: no echo, no line editing of the bytes written before the
        // gateway opens the slave.
        let mut t = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t).unwrap();
        let path = nix::unistd::ttyname(pty.slave.as_fd()).unwrap();
        let master = File::from(pty.master);
        set_nonblocking(&master);
        Pty {
            master,
            _slave: pty.slave,
            path,
        }
    }

    /// Reads what the gateway wrote down the line, for at most `within`, until `done`.
    fn read_until(&mut self, within: Duration, mut done: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline && !done(&got) {
            match self.master.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        got
    }
}

fn set_nonblocking(f: &File) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(f.as_fd(), FcntlArg::F_GETFL).unwrap());
    fcntl(f.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
}

/// A running gateway, stopped (SIGTERM, then killed) when dropped.
struct Gateway {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start(bus: &Bus, serial: &Path) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gateway.log");
        let child = Command::new(env!("CARGO_BIN_EXE_reflex-agent"))
            .arg("gateway")
            .arg("--serial")
            .arg(serial)
            .args(["--manager", &bus.manager_endpoint])
            .args(["--publisher", &bus.publisher_endpoint])
            .args(["--id", "gw-test", "--stats-interval", "1"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Gateway {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing `text`.
    fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the gateway with SIGTERM and returns its final counters line.
    fn stop(&mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "gateway did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log();
        log.lines()
            .find(|l| l.contains("gateway gw-test stopped:"))
            .unwrap_or_else(|| panic!("no final counters in:\n{log}"))
            .to_owned()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- gateway log ---\n{}", self.log());
        }
    }
}

/// The value of `name=N` in a counters line.
fn counter(line: &str, name: &str) -> u64 {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .parse()
        .unwrap()
}

/// A frame as a device writes it: a leading delimiter, so that noise before it ends there.
fn framed(env: &Envelope) -> Vec<u8> {
    let mut buf = vec![0u8; 1 + MAX_ENVELOPE_FRAME_LEN];
    let n = frame::encode_envelope(env, &mut buf[1..]).unwrap();
    buf.truncate(1 + n);
    buf
}

fn device_event(i: i64) -> Event {
    let mut e = Event::new("/device/sensor/temp/dev-7", "dev-7").unwrap();
    e.time = 1_000 + i as u64; // since boot: the gateway stamps its own clock
    e.seq = i as u64 + 1;
    e.push("temp_c", Value::Float(20.0 + i as f64)).unwrap();
    e.push("n", Value::Int(i)).unwrap();
    e
}

/// A small deterministic generator of noise.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn valid_frames_go_up_noise_is_counted_and_actions_come_down() {
    let mut bus = Bus::new();
    let mut pty = Pty::new();
    let mut gw = Gateway::start(&bus, &pty.path);
    gw.wait_log("open");

    // The line: valid frames among noise, truncated frames and flipped bits.
    let mut noise = Noise(7);
    let mut line = noise.bytes(40);
    let mut sent = Vec::new();
    for i in 0..30 {
        let e = device_event(i);
        let f = framed(&Envelope::new(e.clone()));
        match i % 5 {
            0 => {
                let n = 1 + noise.next() as usize % 64;
                line.extend(noise.bytes(n));
            }
            1 => {
                let mut bad = f.clone();
                let at = noise.next() as usize % (bad.len() - 1);
                bad[at] ^= 1 << (noise.next() % 8);
                line.extend(bad);
            }
            2 => line.extend_from_slice(&f[..f.len() / 2]),
            3 => {
                // Noise holding delimiters of its own.
                let mut n = noise.bytes(20);
                n[5] = 0;
                n[6] = 0;
                line.extend(n);
            }
            _ => {}
        }
        line.extend_from_slice(&f);
        sent.push(e);
    }
    // A heartbeat and a result from the device go up too.
    let mut hb = reflex_core::wire::Heartbeat::new("dev-7").unwrap();
    hb.time = 5;
    line.extend(framed(&Envelope::new(hb.clone())));
    line.extend(noise.bytes(10));
    line.push(0);

    // What a correct reader makes of the same bytes.
    let mut reference = EnvelopeDeframer::new();
    let mut expected = Vec::new();
    let mut undecodable = 0u64;
    for &b in &line {
        if let Some(Ok(payload)) = reference.push(b) {
            match wire::decode(payload) {
                Ok(d) => expected.push(d.envelope.body),
                Err(_) => undecodable += 1,
            }
        }
    }
    let stats: FrameStats = reference.stats();
    // Every valid frame written survives its neighbours.
    let expected_events: Vec<&Event> = expected
        .iter()
        .filter_map(|b| match b {
            Body::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(expected_events, sent.iter().collect::<Vec<_>>());
    assert!(
        stats.crc_errors + stats.cobs_errors + stats.too_short >= 6,
        "{stats:?}"
    );

    // Written in small pieces, as a UART delivers them.
    for chunk in line.chunks(13) {
        pty.master.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }

    let before = Instant::now();
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let body = bus
            .recv_until(WAIT, Some)
            .unwrap_or_else(|| panic!("only {} of {} arrived", got.len(), expected.len()));
        got.push(body);
    }
    let mut got_events = Vec::new();
    for (g, e) in got.iter().zip(&expected) {
        match (g, e) {
            (Body::Event(g), Body::Event(e)) => {
                // Since-boot times are replaced by the gateway's clock.
                assert!(g.time >= now_ms() - before.elapsed().as_millis() as u64 - 60_000);
                let mut g = g.clone();
                g.time = e.time;
                assert_eq!(&g, e);
                got_events.push(g);
            }
            (Body::Heartbeat(g), Body::Heartbeat(e)) => {
                assert!(g.time > e.time);
                assert_eq!((&g.source, g.seq), (&e.source, e.seq));
            }
            (g, e) => assert_eq!(g, e),
        }
    }
    assert_eq!(got_events, sent);
    // Nothing else arrives.
    assert!(bus.recv_until(Duration::from_millis(300), Some).is_none());

    // Actions for the device come down framed; expired ones and others' do not.
    bus.wait_subscribed(b"dev-7\0");
    bus.wait_subscribed(b"*\0");
    let mut expired = action(1, "reactions.device.set_pin", "dev-7");
    expired.expires = 1;
    bus.publish("dev-7", &expired);
    let mut broadcast_actor = action(2, "reactions.actor.run", "*");
    broadcast_actor
        .push_arg("argv", Value::str("true").unwrap())
        .unwrap();
    bus.publish("*", &broadcast_actor);
    let mut set = action(3, "reactions.device.set_pin", "dev-7");
    set.push_arg("state", Value::Bool(true)).unwrap();
    bus.publish("dev-7", &set);
    let all = action(4, "reactions.device.toggle_pin", "*");
    bus.publish("*", &all);

    let down = pty.read_until(WAIT, |bytes| bytes.iter().filter(|&&b| b == 0).count() >= 2);
    let mut deframer = EnvelopeDeframer::new();
    let mut actions: Vec<Action> = Vec::new();
    for b in down {
        if let Some(frame) = deframer.push(b) {
            let payload = frame.expect("the gateway writes intact frames");
            match wire::decode(payload).unwrap().envelope.body {
                Body::Action(a) => actions.push(a),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(actions, [set, all]);

    // Counters are logged while running, every --stats-interval.
    gw.wait_log("gateway gw-test stats: frames_ok=");
    let counters = gw.stop();
    assert_eq!(
        counter(&counters, "frames_ok"),
        u64::from(stats.frames_ok),
        "{counters}"
    );
    assert_eq!(
        counter(&counters, "crc_errors"),
        u64::from(stats.crc_errors)
    );
    assert_eq!(
        counter(&counters, "cobs_errors"),
        u64::from(stats.cobs_errors)
    );
    assert_eq!(counter(&counters, "too_short"), u64::from(stats.too_short));
    assert_eq!(counter(&counters, "too_long"), u64::from(stats.too_long));
    assert_eq!(counter(&counters, "decode_errors"), undecodable);
    assert_eq!(counter(&counters, "forwarded"), expected.len() as u64);
    assert_eq!(counter(&counters, "actions_down"), 2);
    assert_eq!(counter(&counters, "actions_expired"), 1);
    assert_eq!(counter(&counters, "actions_skipped"), 1);
}

#[test]
fn the_line_going_away_and_coming_back() {
    let mut bus = Bus::new();
    let dir = tempfile::tempdir().unwrap();
    // A stable name for a line whose device node changes, as a udev rule or an emulator's
    // symlink gives.
    let link = dir.path().join("device");
    let first = Pty::new();
    std::os::unix::fs::symlink(&first.path, &link).unwrap();
    let mut gw = Gateway::start(&bus, &link);
    gw.wait_log("open");

    let mut one = device_event(1);
    one.time = now_ms();
    let mut master = first.master.try_clone().unwrap();
    master
        .write_all(&framed(&Envelope::new(one.clone())))
        .unwrap();
    assert_eq!(bus.recv_until(WAIT, Some), Some(Body::Event(one)));

    // The device goes away: master and slave closed, the node disappears.
    drop(master);
    drop(first);
    gw.wait_log("lost");
    std::fs::remove_file(&link).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // It comes back on another node.
    let mut second = Pty::new();
    std::os::unix::fs::symlink(&second.path, &link).unwrap();
    let deadline = Instant::now() + WAIT;
    while counter_opens(&gw) < 2 {
        assert!(Instant::now() < deadline, "not reopened:\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut two = device_event(2);
    two.time = now_ms();
    second
        .master
        .write_all(&framed(&Envelope::new(two.clone())))
        .unwrap();
    assert_eq!(bus.recv_until(WAIT, Some), Some(Body::Event(two)));

    // Actions reach the new line.
    bus.wait_subscribed(b"dev-7\0");
    let mut set = action(9, "reactions.device.set_pin", "dev-7");
    set.push_arg("state", Value::Bool(false)).unwrap();
    bus.publish("dev-7", &set);
    let down = second.read_until(WAIT, |b| b.contains(&0));
    let mut deframer = EnvelopeDeframer::new();
    let got: Vec<Body> = down
        .iter()
        .filter_map(|&b| {
            deframer
                .push(b)
                .map(|f| wire::decode(f.unwrap()).unwrap().envelope.body)
        })
        .collect();
    assert_eq!(got, [Body::Action(set)]);
    let counters = gw.stop();
    assert_eq!(counter(&counters, "opens"), 2, "{counters}");
}

/// How many times the gateway has logged opening the line.
fn counter_opens(gw: &Gateway) -> usize {
    gw.log()
        .lines()
        .filter(|l| l.contains("serial line") && l.ends_with(" open"))
        .count()
}
