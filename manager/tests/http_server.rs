//! The metrics address as an attacker and a careless operator meet it, against the real
//! `reflex` binary: `/metrics` keeps answering while idle and slow clients hold connections,
//! those clients are cut at their deadline, and `POST /reload` takes only the admin token.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use reflex_tests::Scratch;
use reflex_tests::standalone::{Manager, reflex, scrape, wait_until};

const RULES: &str = r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
"#;

/// One request, its status and body.
fn request(addr: &str, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

#[test]
fn metrics_answer_while_idle_and_slow_clients_hold_connections() {
    let m = Manager::start("http-slowloris", RULES);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&m.metrics).unwrap())
        .collect();
    // A slow client: a request head one byte at a time.
    let slow_addr = m.metrics.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&slow_addr).unwrap();
            for b in b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Padding: "
                .iter()
                .cycle()
            {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    for _ in 0..3 {
        let text = scrape(&m.metrics).expect("/metrics answers beside 100 idle and 1 slow client");
        assert!(text.contains("reflex_events_received_total"));
    }
    // The idle and slow clients are cut at their deadline, and counted.
    wait_until("the idle and slow clients to be cut", || {
        m.metric(r#"reflex_http_refused_total{reason="deadline"}"#)
            .is_some_and(|n| n >= 101.0)
    });
    // Cutting them occupied no worker: /metrics answers at once.
    assert!(scrape(&m.metrics).is_some());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    slow.join().unwrap();
    drop(idle);
}

#[test]
fn past_the_connection_limit_the_oldest_idle_connections_make_room() {
    let m = Manager::start("http-conn-limit", RULES);
    let idle: Vec<TcpStream> = (0..600)
        .map(|_| TcpStream::connect(&m.metrics).unwrap())
        .collect();
    let text = scrape(&m.metrics).expect("/metrics answers beside 600 idle connections");
    assert!(text.contains("reflex_http_refused_total"));
    wait_until("the evictions to be counted", || {
        m.metric(r#"reflex_http_refused_total{reason="connection_limit"}"#)
            .is_some_and(|n| n >= 89.0)
    });
    drop(idle);
}

#[test]
fn oversized_and_malformed_requests_are_refused_and_counted() {
    let m = Manager::start("http-limits", RULES);
    let (status, _) = request(
        &m.metrics,
        "POST /reload HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
    );
    assert_eq!(status, 413);
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(10_000));
    assert_eq!(request(&m.metrics, &long).0, 431);
    assert_eq!(request(&m.metrics, "HELLO\r\n\r\n").0, 400);
    assert_eq!(
        request(&m.metrics, "DELETE /metrics HTTP/1.1\r\n\r\n").0,
        405
    );
    let text = scrape(&m.metrics).unwrap();
    for reason in ["body_too_large", "head_too_large", "malformed"] {
        let sample = format!("reflex_http_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(
            reflex_tests::metric_in(&text, &sample),
            Some(1.0),
            "{reason}"
        );
    }
}

fn token(trust: &Path, name: &str) {
    let out = reflex()
        .args(["keys", "gen", "--token", "--name", name, "--out"])
        .arg(trust)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn reload(m: &Manager, token: Option<&Path>) -> std::process::Output {
    let mut cmd = reflex();
    cmd.args(["reload", "--metrics", &m.metrics]);
    if let Some(t) = token {
        cmd.arg("--token").arg(t);
    }
    cmd.output().unwrap()
}

#[test]
fn reload_takes_only_the_admin_token() {
    let dir = Scratch::new("http-reload");
    let trust = dir.path().join("trust");
    token(&trust, "admin");
    token(&trust, "ci");
    let flags = [
        "--insecure".to_string(),
        "--trust".into(),
        trust.display().to_string(),
    ];
    let m = Manager::start_with(dir, RULES, &flags);

    let anonymous = reload(&m, None);
    assert!(!anonymous.status.success());
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("needs the admin token"),
        "{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );
    let other = reload(&m, Some(&trust.join("ci.token")));
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("only the admin token reloads"));
    assert_eq!(m.metric(r#"reflex_reloads_total{result="ok"}"#), Some(0.0));

    let admin = reload(&m, Some(&trust.join("admin.token")));
    assert!(
        admin.status.success(),
        "{}",
        String::from_utf8_lossy(&admin.stderr)
    );
    assert!(String::from_utf8_lossy(&admin.stdout).starts_with("reloaded:"));
    assert_eq!(m.metric(r#"reflex_reloads_total{result="ok"}"#), Some(1.0));
    assert_eq!(
        m.metric(r#"reflex_http_refused_total{reason="unauthorized"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.metric(r#"reflex_http_refused_total{reason="forbidden"}"#),
        Some(1.0)
    );
}
