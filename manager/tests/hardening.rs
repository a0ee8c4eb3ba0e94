//! Attacks and faults against the real `reflex` binary: what an attacker or a careless operator
//! does must be refused, bounded or survived, each test written as the attack.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
