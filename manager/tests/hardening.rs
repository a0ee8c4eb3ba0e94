//! Attacks and faults against the real `reflex` binary: what an attacker or a careless operator
//! does must be refused, bounded or survived, each test written as the attack.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reflex_core::auth::{self, Signer, keyfile};
use reflex_core::wire::{Body, MAX_ENVELOPE_LEN};
use reflex_core::{Event, Value};
use reflex_tests::Scratch;
use reflex_tests::standalone::reflex;

const RULES: &str = "
/client/load/*:
  rules:
    - n:
        rule: rules.simple.gt
        threshold: 0
        reactions: [reactions.log.print: {}]
";

fn keys_gen(args: &[&str]) {
    let out = reflex().args(["keys", "gen"]).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs a secure Manager on `dir`'s keys and trust directory until it exits; returns its
/// failure and its stderr (it must refuse before binding anything).
fn start_refused(dir: &Scratch) -> String {
    let book = dir.write("rules.yml", RULES);
    let out = reflex()
        .arg("manager")
        .arg("--rules")
        .arg(&book)
        .args(["--metrics", "off", "--events", "tcp://127.0.0.1:0"])
        .args([
            "--publish",
            "tcp://127.0.0.1:0",
            "--watch",
            "tcp://127.0.0.1:0",
        ])
        .arg("--key")
        .arg(dir.path().join("keys/manager.key"))
        .arg("--trust")
        .arg(dir.path().join("trust"))
        .arg("--feed")
        .arg(format!("ipc://{}/feed.ipc", dir.path().display()))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the Manager started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn trust_files_others_may_write_are_refused_at_start_with_the_chmod_to_run() {
    let dir = Scratch::new("strict-modes");
    let keys = dir.path().join("keys");
    let trust = dir.path().join("trust");
    keys_gen(&["--out", keys.to_str().unwrap(), "--name", "manager"]);
    keys_gen(&["--out", keys.to_str().unwrap(), "--name", "web-1"]);
    std::fs::create_dir_all(&trust).unwrap();
    chmod(&trust, 0o755);
    std::fs::copy(keys.join("web-1.pub"), trust.join("web-1.pub")).unwrap();

    // Anyone may add a key to the trust directory.
    chmod(&trust, 0o777);
    let err = start_refused(&dir);
    assert!(
        err.contains("trust directory") && err.contains(&format!("chmod go-w {}", trust.display())),
        "{err}"
    );
    // Sticky does not help: a file anyone adds is still a key the Manager would trust.
    chmod(&trust, 0o1777);
    assert!(start_refused(&dir).contains("chmod go-w"));
    chmod(&trust, 0o755);

    // Anyone may rewrite an agent's public key.
    let public = trust.join("web-1.pub");
    chmod(&public, 0o666);
    let err = start_refused(&dir);
    assert!(
        err.contains(&format!("chmod go-w {}", public.display())),
        "{err}"
    );
    chmod(&public, 0o644);

    // Anyone may replace the Manager's own key.
    chmod(&keys, 0o777);
    let err = start_refused(&dir);
    assert!(
        err.contains(&format!("chmod go-w {}", keys.display())),
        "{err}"
    );
    chmod(&keys, 0o700);

    // Once fixed, the same keys load and the Manager comes up.
    let book = dir.write("rules.yml", RULES);
    let mut child = reflex()
        .arg("manager")
        .arg("--rules")
        .arg(&book)
        .args(["--metrics", "off", "--events", "tcp://127.0.0.1:0"])
        .args([
            "--publish",
            "tcp://127.0.0.1:0",
            "--watch",
            "tcp://127.0.0.1:0",
        ])
        .arg("--key")
        .arg(keys.join("manager.key"))
        .arg("--trust")
        .arg(&trust)
        .arg("--feed")
        .arg(format!("ipc://{}/feed.ipc", dir.path().display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut seen = String::new();
    use std::io::BufRead;
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("manager ready") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("manager ready"), "{seen}");
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A raw TCP connection to a ZeroMQ endpoint that completes the ZMTP 3.0 NULL handshake as a
/// PUSH socket, then declares one frame of `declared` bytes and sends `sent` bytes of it.
/// Returns the connection, still open on this side.
fn oversized_frame(endpoint: &str, declared: u64, sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let addr = endpoint.strip_prefix("tcp://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut greeting = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 0];
    greeting.extend_from_slice(b"NULL");
    greeting.resize(64, 0);
    let mut ready = vec![5];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&4u32.to_be_bytes());
    ready.extend_from_slice(b"PUSH");
    let mut head = greeting;
    head.extend_from_slice(&[0x04, ready.len() as u8]);
    head.extend_from_slice(&ready);
    // A long message frame: flags 0x02, then its length on 8 bytes.
    head.push(0x02);
    head.extend_from_slice(&declared.to_be_bytes());
    let _ = s.write_all(&head);
    let chunk = vec![0x55u8; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        // A refused connection fails the write: that is the point.
        if s.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n;
    }
    s
}

/// Whether the peer closed `s` (a read ends or fails) within the harness's patience.
fn closed_by_peer(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // The peer's greeting and READY come first.
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn oversized_frames_from_many_connections_do_not_grow_the_manager() {
    use reflex_tests::standalone::{Manager, wait_until};
    let m = Manager::start("oversized", RULES);
    let pid = m.proc.id();
    let before = rss_kib(pid);
    // 32 connections, each declaring a 4 GiB frame and sending 2 MiB of it: 64 MiB that an
    // unbounded socket would hold.
    const CONNECTIONS: usize = 32;
    const SENT: usize = 2 * 1024 * 1024;
    let mut floods: Vec<_> = (0..CONNECTIONS)
        .map(|_| oversized_frame(&m.events, 4 << 30, SENT))
        .collect();
    for (i, s) in floods.iter_mut().enumerate() {
        assert!(
            closed_by_peer(s),
            "connection {i}: the Manager kept reading an oversized frame"
        );
    }
    let after = rss_kib(pid);
    eprintln!(
        "manager RSS: {before} KiB before, {after} KiB after {CONNECTIONS} connections sent \
         {} MiB of oversized frames",
        CONNECTIONS * SENT / (1024 * 1024)
    );
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // And it still serves everyone else.
    m.send("/client/load/web-1", &["n=1"], "web-1");
    wait_until("the event after the flood", || {
        m.metric("reflex_events_received_total").unwrap_or(0.0) >= 1.0
    });
    drop(floods);
}

const FIRING: &str = r#"
/client/load/*:
  rules:
    - n:
        rule: rules.simple.gt
        threshold: 0
        fire: always
        reactions:
          - reactions.exec.run:
              argv: [touch, '{dir}/fired-{{ event.source }}-{{ event.data.n }}']
"#;

fn signed_event(source: &str, n: i64, seq: u64, time: u64, signer: &Signer) -> Vec<u8> {
    let mut e = Event::new(&format!("/client/load/{source}"), source).unwrap();
    e.push("n", Value::Int(n)).unwrap();
    e.seq = seq;
    e.time = time;
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    let len = auth::encode(&Body::Event(e), Some(signer), &mut buf).unwrap();
    buf[..len].to_vec()
}

/// The records of a state file (after its 21-byte header), by their length fields.
fn records_in(path: &Path) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    let (mut at, mut n) = (21, 0);
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
        n += usize::from(at <= bytes.len());
    }
    n
}

#[test]
fn recorded_agent_and_device_events_are_refused_after_a_killed_manager_restarts() {
    use reflex_tests::standalone::{Manager, wait_until};
    let dir = Scratch::new("replay-restart");
    let keys = dir.path().join("keys");
    let trust = dir.path().join("trust");
    let k = keys.to_str().unwrap();
    keys_gen(&["--out", k, "--name", "manager"]);
    keys_gen(&["--out", k, "--name", "web-1"]);
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(keys.join("web-1.pub"), trust.join("web-1.pub")).unwrap();
    keys_gen(&[
        "--out",
        trust.to_str().unwrap(),
        "--mac",
        "--name",
        "node-7",
    ]);
    let state = dir.path().join("state");
    let flags: Vec<String> = vec![
        "--key".into(),
        keys.join("manager.key").display().to_string(),
        "--trust".into(),
        trust.display().to_string(),
        "--state".into(),
        state.display().to_string(),
    ];
    let agent = keyfile::read(keys.join("web-1.key"))
        .unwrap()
        .signer()
        .unwrap();
    let device = keyfile::read(trust.join("node-7.mac"))
        .unwrap()
        .signer()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let base = now * 1000;
    // What an attacker records: one agent event, one device event (time since boot).
    let recorded_agent = signed_event("web-1", 1, base + 1, now, &agent);
    let recorded_device = signed_event("node-7", 2, auth::boot_seq(3) + 1, 1234, &device);

    let m = Manager::start_with(dir, FIRING, &flags);
    let fired =
        |m: &Manager, source: &str, n: i64| m.dir.path().join(format!("fired-{source}-{n}"));
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1000).unwrap();
    push.connect(&m.events).unwrap();
    push.send(&recorded_agent, 0).unwrap();
    push.send(&recorded_device, 0).unwrap();
    wait_until("both events' reactions", || {
        fired(&m, "web-1", 1).exists() && fired(&m, "node-7", 2).exists()
    });
    // Their windows are on disk; then the Manager dies without a word.
    let windows = state.join("replay.windows");
    wait_until("both windows kept", || records_in(&windows) == 2);
    let Manager { mut proc, dir, .. } = m;
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();
    std::fs::remove_file(dir.path().join("fired-web-1-1")).unwrap();
    std::fs::remove_file(dir.path().join("fired-node-7-2")).unwrap();

    let m = Manager::start_with(dir, FIRING, &flags);
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1000).unwrap();
    push.connect(&m.events).unwrap();
    // The replays, then fresh events from both behind them.
    push.send(&recorded_agent, 0).unwrap();
    push.send(&recorded_device, 0).unwrap();
    push.send(signed_event("web-1", 3, base + 3, now, &agent), 0)
        .unwrap();
    push.send(
        signed_event("node-7", 4, auth::boot_seq(3) + 2, 1300, &device),
        0,
    )
    .unwrap();
    wait_until("the fresh events' reactions", || {
        fired(&m, "web-1", 3).exists() && fired(&m, "node-7", 4).exists()
    });
    wait_until("both replays counted", || {
        m.metric("reflex_events_dropped_total{reason=\"replay\"}") == Some(2.0)
    });
    assert!(!fired(&m, "web-1", 1).exists(), "the agent event ran again");
    assert!(
        !fired(&m, "node-7", 2).exists(),
        "the device event ran again"
    );
}

/// `reflex check PATH` run to its end: its failure and its stderr.
fn check_refused(path: &Path) -> String {
    let out = reflex().arg("check").arg(path).output().unwrap();
    assert!(!out.status.success(), "{} was accepted", path.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn rulebook_input_is_bounded_and_only_regular_files_are_read() {
    // A device that never ends: refused before a byte is read.
    let err = check_refused(Path::new("/dev/zero"));
    assert!(
        err.contains("/dev/zero") && err.contains("not a regular file"),
        "{err}"
    );
    // A FIFO nobody writes to: refused, not waited on forever.
    let dir = Scratch::new("bounded-rulebook");
    let fifo = dir.path().join("rules.yml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let err = check_refused(&fifo);
    assert!(err.contains("not a regular file"), "{err}");
    // Inside a rulebook directory it is skipped, never opened.
    check_refused(dir.path());
    std::fs::remove_file(&fifo).unwrap();
    // Larger than the limit: refused with it, not read whole.
    let big = dir.path().join("big.yml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(17 * 1024 * 1024).unwrap();
    let err = check_refused(&big);
    assert!(err.contains("larger than 16777216 bytes"), "{err}");
}

#[test]
fn the_default_feed_socket_is_in_a_private_directory_whatever_the_umask() {
    use std::io::BufRead;
    let dir = Scratch::new("private-feed");
    let book = dir.write("rules.yml", RULES);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // A umask that would leave a socket file open to everyone.
    let mut cmd = reflex();
    cmd.arg("manager")
        .arg("--rules")
        .arg(&book)
        .args(["--metrics", "off", "--events", "tcp://127.0.0.1:0"])
        .args([
            "--publish",
            "tcp://127.0.0.1:0",
            "--watch",
            "tcp://127.0.0.1:0",
        ])
        .arg("--insecure")
        .env("TMPDIR", &tmp)
        .stderr(std::process::Stdio::piped());
    // SAFETY: umask(2) in the child between fork and exec; no memory is touched.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("manager ready") {
        line.clear();
    }
    assert!(line.contains("manager ready"), "{line}");
    let private = tmp.join(format!("reflex-manager-{}", child.id()));
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    assert!(private.join("feed.ipc").exists());
    let _ = child.kill();
    let _ = child.wait();
}

const LEVELS: &str = "
/sensor/*:
  rules:
    - level:
        rule: rules.simple.gt
        register: register.aggregate.last
        threshold: 50
        period: 600
        reactions: [reactions.log.print: {}]
";

#[test]
fn one_damaged_snapshot_record_costs_one_slot_and_a_damaged_header_is_counted() {
    use reflex_tests::standalone::{Manager, wait_until};
    let dir = Scratch::new("snapshot-damage");
    let state = dir.path().join("state");
    let flags: Vec<String> = vec![
        "--insecure".into(),
        "--state".into(),
        state.display().to_string(),
    ];
    let m = Manager::start_with(dir, LEVELS, &flags);
    let sources = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for s in sources {
        m.send(&format!("/sensor/{s}"), &["level=10"], s);
    }
    wait_until("eight register updates logged", || {
        m.metric("reflex_state_records_total") == Some(8.0)
    });
    // A clean stop writes the eight slots into the snapshot.
    let Manager { proc, dir, .. } = m;
    drop(proc);
    let snapshot = state.join("registers.snapshot");
    let good = std::fs::read(&snapshot).unwrap();
    assert_eq!(records_in(&snapshot), 8);

    // One flipped byte inside the first record's payload.
    let mut bad = good.clone();
    bad[21 + 8 + 2] ^= 0x40;
    std::fs::write(&snapshot, &bad).unwrap();
    let m = Manager::start_with(dir, LEVELS, &flags);
    assert_eq!(m.metric("reflex_state_restored_slots"), Some(7.0));
    assert_eq!(
        m.metric("reflex_state_records_skipped_total{reason=\"damaged\"}"),
        Some(1.0)
    );
    assert!(
        m.log_text().contains("state record skipped"),
        "{}",
        m.log_text()
    );
    let Manager { proc, dir, .. } = m;
    drop(proc);

    // A flipped byte in the header's generation: caught by the header's CRC, counted, loud.
    let mut bad = std::fs::read(&snapshot).unwrap();
    bad[10] ^= 0x01;
    std::fs::write(&snapshot, &bad).unwrap();
    let m = Manager::start_with(dir, LEVELS, &flags);
    assert_eq!(
        m.metric("reflex_state_records_skipped_total{reason=\"bad_header\"}"),
        Some(1.0)
    );
    assert!(
        m.log_text().contains("state file skipped"),
        "{}",
        m.log_text()
    );
    let Manager { proc, dir, .. } = m;
    drop(proc);

    // Empty and cut short get one answer: skipped, counted, and the Manager starts.
    let mut dir = dir;
    for cut in [0, 10] {
        std::fs::write(&snapshot, &good[..cut]).unwrap();
        let m = Manager::start_with(dir, LEVELS, &flags);
        assert_eq!(
            m.metric("reflex_state_records_skipped_total{reason=\"bad_header\"}"),
            Some(1.0),
            "cut at {cut}"
        );
        let Manager { proc, dir: d, .. } = m;
        drop(proc);
        dir = d;
    }
}

#[test]
fn a_flood_of_watch_subscriptions_is_bounded_and_watchers_still_see_events() {
    use reflex_tests::Watch;
    use reflex_tests::standalone::{Manager, wait_until};
    let m = Manager::start("watch-bounds", RULES);
    let legit = Watch::start(&m.watch);
    wait_until("the watcher's subscription", || {
        m.metric("reflex_watch_subscriptions") == Some(1.0)
    });
    // 60 000 distinct subscriptions from one connection, no key needed.
    const FLOOD: usize = 60_000;
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_linger(0).unwrap();
    // No send limit here, or ZeroMQ would drop this side's own subscriptions past 1000.
    sub.set_sndhwm(0).unwrap();
    for i in 0..FLOOD {
        sub.set_subscribe(format!("/flood/{i:05}").as_bytes())
            .unwrap();
    }
    sub.connect(&m.watch).unwrap();
    let most = 4096.0;
    wait_until("every flooded subscription taken in or refused", || {
        m.metric("reflex_watch_subscriptions_refused_total") == Some(FLOOD as f64 - (most - 1.0))
    });
    assert_eq!(m.metric("reflex_watch_subscriptions"), Some(most));
    // Events still flow, and the watcher who came first still sees them.
    m.send("/client/load/web-1", &["n=1"], "web-1");
    legit.wait_for("/client/load/web-1", |_| true);
    drop(sub);
}

#[test]
fn the_soft_open_files_limit_is_raised_toward_the_hard_one() {
    use std::io::BufRead;
    let dir = Scratch::new("nofile");
    let book = dir.write("rules.yml", RULES);
    let mut cmd = reflex();
    cmd.arg("manager")
        .arg("--rules")
        .arg(&book)
        .args(["--metrics", "off", "--events", "tcp://127.0.0.1:0"])
        .args([
            "--publish",
            "tcp://127.0.0.1:0",
            "--watch",
            "tcp://127.0.0.1:0",
        ])
        .arg("--feed")
        .arg(format!("ipc://{}/feed.ipc", dir.path().display()))
        .arg("--insecure")
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit(2) in the child between fork and exec, on a local struct.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 4096,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("manager ready") {
        line.clear();
    }
    assert!(line.contains("manager ready"), "{line}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(open_files, ["4096", "4096"], "{limits}");
}
