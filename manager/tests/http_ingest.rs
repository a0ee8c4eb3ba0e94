//! Events over HTTP against the real `reflex` binary (`--http`): a JSON event with a source's
//! bearer token fires a rule; missing and wrong tokens, spoofed sources, reserved tags, bad
//! JSON and oversized bodies are refused with JSON errors and counted; and an alert posted to
//! the real Prometheus Alertmanager reaches the Manager through its webhook and fires a rule.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reflex_tests::standalone::{Manager, reflex, wait_until};
use reflex_tests::{Proc, Scratch, free_port, metric_in};

/// One HTTP request; its status and body.
fn request(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
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

/// `reflex keys gen --token --name NAME --out DIR`; returns the token.
fn token(dir: &Path, name: &str) -> String {
    let out = reflex()
        .args(["keys", "gen", "--token", "--name", name, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join(format!("{name}.token")))
        .unwrap()
        .trim()
        .to_string()
}

/// A Manager in lab mode for the bus, with `trust` for its HTTP tokens and `--http` on a free
/// port; returns it and its ingest address.
fn manager(dir: Scratch, rules: &str, trust: &Path) -> (Manager, String) {
    let http = format!("127.0.0.1:{}", free_port());
    let flags = [
        "--insecure".to_string(),
        "--trust".into(),
        trust.display().to_string(),
        "--http".into(),
        http.clone(),
    ];
    (Manager::start_with(dir, rules, &flags), http)
}

const BUILDS: &str = r#"
/ci/build/*:
  rules:
    - build_failed:
        rule: rules.simple.gt
        field: failed
        threshold: 0
        reactions:
          - reactions.exec.run:
              argv: [touch, '{dir}/failed-{{ event.source }}-{{ event.data.branch }}']
"#;

#[test]
fn a_json_event_with_a_token_fires_a_rule_and_bad_ones_are_refused() {
    let dir = Scratch::new("http-ingest");
    let trust = dir.path().join("trust");
    let ci = token(&trust, "ci");
    let admin = token(&trust, "admin");
    let (m, http) = manager(dir, BUILDS, &trust);
    let bearer = format!("Authorization: Bearer {ci}");
    let json = "Content-Type: application/json";

    let (status, body) = request(
        &http,
        "POST",
        "/events",
        &[&bearer, json],
        r#"{"tag": "/ci/build/web", "data": {"failed": 1, "branch": "main"}}"#,
    );
    assert_eq!((status, body.trim()), (202, r#"{"accepted":1}"#));
    let fired = m.dir.path().join("failed-ci-main");
    wait_until("the rule fired by the HTTP event", || fired.exists());

    let refusals: &[(&[&str], &str, u16, &str, &str)] = &[
        (
            &[json],
            r#"{"tag": "/ci/build/web"}"#,
            401,
            "Bearer",
            "unauthorized",
        ),
        (
            &[
                "Authorization: Bearer 0000000000000000000000000000000000000000",
                json,
            ],
            r#"{"tag": "/ci/build/web"}"#,
            401,
            "unknown token",
            "unauthorized",
        ),
        (
            &[&bearer, json],
            r#"{"tag": "/ci/build/web", "source": "db-1"}"#,
            403,
            "not the token's holder",
            "forbidden",
        ),
        (
            &[&bearer, json],
            r#"{"tag": "/reflex/result/db-1", "data": {"ok": false}}"#,
            403,
            "belong to the Manager",
            "reserved_tag",
        ),
        (
            &[&bearer, json],
            r#"{"tag": "/ci/build/web""#,
            422,
            "not JSON",
            "invalid",
        ),
        (
            &[&bearer, json],
            r#"{"tag": "/ci/build/web", "data": {"failed": [1]}}"#,
            422,
            "data `failed`",
            "invalid",
        ),
        (
            &[&bearer, "Content-Type: text/plain"],
            "{}",
            415,
            "application/json",
            "invalid",
        ),
    ];
    for (headers, body, want, says, _) in refusals {
        let (status, answer) = request(&http, "POST", "/events", headers, body);
        assert_eq!(status, *want, "{body}: {answer}");
        let error: serde_json::Value = serde_json::from_str(&answer).expect("a JSON error");
        assert!(error["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let admin_bearer = format!("Authorization: Bearer {admin}");
    let (status, _) = request(
        &http,
        "POST",
        "/events",
        &[&admin_bearer, json],
        r#"{"tag": "/a"}"#,
    );
    assert_eq!(status, 403, "the admin token sends no events");
    let big = format!(
        r#"{{"tag": "/ci/build/web", "pad": "{}"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(
        request(&http, "POST", "/events", &[&bearer, json], &big).0,
        413
    );

    let text = m.scrape().unwrap();
    let count = |reason: &str| {
        metric_in(
            &text,
            &format!("reflex_http_refused_total{{reason=\"{reason}\"}}"),
        )
        .unwrap()
    };
    assert_eq!(count("unauthorized"), 2.0);
    assert_eq!(count("forbidden"), 2.0);
    assert_eq!(count("reserved_tag"), 1.0);
    assert_eq!(count("invalid"), 3.0);
    assert_eq!(count("body_too_large"), 1.0);
    assert_eq!(metric_in(&text, "reflex_http_events_total"), Some(1.0));
    assert_eq!(
        reflex_tests::metric_sum(&text, "reflex_rules_fired_total"),
        1.0
    );
}

#[test]
fn http_needs_a_trust_directory() {
    let dir = Scratch::new("http-no-trust");
    let book = dir.write("rules.yml", BUILDS);
    let out = reflex()
        .args(["manager", "--insecure", "--metrics", "off", "--rules"])
        .arg(book)
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--events", &reflex_tests::free_endpoint()])
        .args(["--watch", &reflex_tests::free_endpoint()])
        .args(["--publish", &reflex_tests::free_endpoint()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--http needs --trust DIR"));
}

/// The Alertmanager binary, when installed (Debian's `prometheus-alertmanager`).
fn alertmanager() -> Option<PathBuf> {
    ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

const ALERTS: &str = r#"
/alertmanager/HighLoad/*:
  rules:
    - high_load_alert:
        rule: rules.simple.gt
        field: firing
        threshold: 0
        reactions:
          - reactions.exec.run:
              argv: [touch, '{dir}/alert-{{ event.source }}-{{ event.data.severity }}-{{ event.data.job }}']
"#;

#[test]
fn an_alert_posted_to_alertmanager_fires_a_rule() {
    let Some(binary) = alertmanager() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus-alertmanager is missing; CI installs it"
        );
        eprintln!(
            "skipped: prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
        );
        return;
    };
    let dir = Scratch::new("http-alertmanager");
    let trust = dir.path().join("trust");
    token(&trust, "alertmanager");
    let am_dir = dir.path().join("am");
    std::fs::create_dir_all(am_dir.join("data")).unwrap();
    let token_file = trust.join("alertmanager.token");
    let (m, http) = manager(dir, ALERTS, &trust);
    let config = am_dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: reflex\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: reflex\n    webhook_configs:\n      - url: http://{http}/alertmanager\n        \
             send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            \
             credentials_file: {}\n",
            token_file.display()
        ),
    )
    .unwrap();
    let am_addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", am_dir.join("data").display()))
        .arg(format!("--web.listen-address={am_addr}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null());
    let log = am_dir.join("alertmanager.log");
    let _am = Proc::spawn(cmd, &log);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("Alertmanager to be ready", || {
        TcpStream::connect(&am_addr).is_ok()
            && request(&am_addr, "GET", "/-/ready", &[], "").0 == 200
    });
    let alert = r#"[{"labels": {"alertname": "HighLoad", "instance": "web-1:9100", "severity": "critical", "job": "node"},
                    "annotations": {"summary": "load is high"}}]"#;
    let (status, body) = request(
        &am_addr,
        "POST",
        "/api/v2/alerts",
        &["Content-Type: application/json"],
        alert,
    );
    assert_eq!(status, 200, "Alertmanager took the alert: {body}");
    let fired = m.dir.path().join("alert-alertmanager-critical-node");
    wait_until("the alert to fire the rule through the webhook", || {
        if fired.exists() {
            return true;
        }
        let refused = m.metric(r#"reflex_http_refused_total{reason="unauthorized"}"#);
        assert_ne!(refused, Some(1.0), "webhook refused: {}", log_text());
        false
    });
    assert!(m.metric("reflex_http_events_total").unwrap() >= 1.0);
}
