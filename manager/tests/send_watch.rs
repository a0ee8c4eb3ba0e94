//! `reflex send`, `reflex watch` (text and `--json`) and `reflex replay` as a user runs them.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reflex_tests::standalone::{Manager, PATIENCE, reflex, send};
use reflex_tests::{Proc, free_port, signal};

const RULES: &str = r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
        fire: always
        reactions:
          - reactions.log.print:
              message: 'load {{ value }} on {{ event.source }}'
"#;

/// Starts `reflex watch` with `args`; its lines arrive on the returned channel.
fn watch(args: &[&str]) -> (Proc, mpsc::Receiver<String>) {
    let mut child = reflex()
        .arg("watch")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Proc(child), rx)
}

/// Sends the event every half second until the lines `rx` has yielded satisfy `want`;
/// returns every line seen until then. (A new subscriber misses what is published before
/// its subscription is up, so one send can show its reaction without its event.)
fn send_until(
    m: &Manager,
    rx: &mpsc::Receiver<String>,
    want: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        m.send(
            "/client/load/web-1",
            &["load_avg=30", "note=two words"],
            "web-1",
        );
        let until = Instant::now() + Duration::from_millis(500);
        while let Ok(line) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            lines.push(line);
            if want(&lines) {
                return lines;
            }
        }
    }
    panic!("watch never printed the expected line; got {lines:#?}");
}

#[test]
fn watch_prints_events_and_reactions() {
    let m = Manager::start("watch", RULES);
    let (_all, all) = watch(&["--from", &m.watch]);
    let (_reactions, only) = watch(&["--from", &m.watch, "--tag", "/reflex/reaction/*"]);
    let lines = send_until(&m, &all, |ls| {
        ls.iter().any(|l| l.contains("REACTION"))
            && ls.iter().any(|l| l.contains("/client/load/web-1"))
    });
    let event = lines
        .iter()
        .find(|l| l.contains("/client/load/web-1"))
        .expect("an event line");
    assert!(
        event.ends_with("  /client/load/web-1  web-1  load_avg=30 note=\"two words\""),
        "{event}"
    );
    let time = &event[..12];
    assert!(
        time.as_bytes()[2] == b':' && time.as_bytes()[8] == b'.',
        "{event}"
    );
    let reaction = lines.iter().find(|l| l.contains("REACTION")).unwrap();
    assert!(
        reaction.contains("REACTION reactions.log.print  web-1  rule=load_avg ok code=0"),
        "{reaction}"
    );
    assert!(
        reaction.contains("output=\"load 30 on web-1\""),
        "{reaction}"
    );

    let filtered = send_until(&m, &only, |ls| ls.iter().any(|l| l.contains("REACTION")));
    assert!(
        filtered.iter().all(|l| l.contains("REACTION")),
        "{filtered:#?}"
    );
}

#[test]
fn send_refuses_bad_events() {
    let to = format!("tcp://127.0.0.1:{}", free_port());
    let flags = ["--to", to.as_str(), "--source", "h"];
    let bad_tag = send("no-slash", &[], &flags);
    assert_eq!(bad_tag.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_tag.stderr).contains("tag"));

    let fields: Vec<String> = (0..9).map(|i| format!("f{i}={i}")).collect();
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    let too_many = send("/t", &fields, &flags);
    assert_eq!(too_many.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&too_many.stderr).contains("more than 8 fields"));

    let long = format!("s={}", "x".repeat(65));
    let too_long = send("/t", &[long.as_str()], &flags);
    assert_eq!(too_long.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&too_long.stderr).contains("longer than 64 bytes"));

    let not_a_field = send("/t", &["novalue"], &flags);
    assert_eq!(not_a_field.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_a_field.stderr).contains("KEY=VALUE"));
}

#[test]
fn send_without_a_manager_fails_within_its_timeout() {
    let to = format!("tcp://127.0.0.1:{}", free_port());
    let start = Instant::now();
    let out = send("/t", &["x=1"], &["--to", &to]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn a_json_recording_replays_through_the_rulebook() {
    let m = Manager::start("replay", RULES);
    let (_watch, rx) = watch(&["--from", &m.watch, "--json"]);
    let kind_seen = |lines: &[String], kind: &str| lines.iter().any(|l| json(l)["kind"] == kind);
    let lines = send_until(&m, &rx, |ls| {
        kind_seen(ls, "event") && kind_seen(ls, "reaction")
    });
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| json(l))
        .filter(|j| j["kind"] == "event")
        .collect();
    for e in &events {
        assert_eq!(e["tag"], "/client/load/web-1");
        assert_eq!(e["source"], "web-1");
        assert_eq!(e["hops"], 0);
        assert_eq!(e["data"]["load_avg"], 30);
        assert!(e["time"].as_u64().unwrap() > 0);
    }
    let reaction = lines
        .iter()
        .map(|l| json(l))
        .find(|j| j["kind"] == "reaction")
        .unwrap();
    assert_eq!(reaction["tag"], "/reflex/reaction/log/print");
    assert_eq!(reaction["data"]["rule"], "load_avg");
    assert_eq!(reaction["hops"], 1);

    let recording = m.dir.write("recording.jsonl", &(lines.join("\n") + "\n"));
    let out = reflex()
        .arg("replay")
        .arg(m.dir.path().join("rules.yml"))
        .arg(&recording)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each recorded event fires the rule once; the reaction reports match no entry.
    let fired: Vec<&str> = stdout.lines().filter(|l| l.contains("  FIRE ")).collect();
    assert_eq!(fired.len(), events.len(), "{stdout}");
    for line in &fired {
        assert!(
            line.ends_with(
                "  FIRE load_avg (web-1)  reactions.log.print message=\"load 30 on web-1\""
            ),
            "{line}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "replayed {} events: {} firings, 0 lines refused",
            lines.len(),
            events.len()
        )),
        "{stdout}"
    );

    // A line that is not an event is reported at its line and fails the replay.
    let broken = m
        .dir
        .write("broken.jsonl", &format!("{}\n{{\"tag\": 5}}\n", lines[0]));
    let out = reflex()
        .arg("replay")
        .arg(m.dir.path().join("rules.yml"))
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.jsonl:2:1: no `tag` string"),
        "{stderr}"
    );
}

#[test]
fn watch_says_once_that_it_waits_for_a_manager() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut child = reflex()
        .args(["watch", "--from", &endpoint])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut byte = [0u8; 1];
        // Byte by byte, so the first line is seen while the process still runs.
        while let Ok(1) = err.read(&mut byte) {
            text.push(byte[0] as char);
            if byte[0] == b'\n' {
                let _ = tx.send(Some(text.clone()));
            }
        }
        let _ = tx.send(None);
    });
    let notice = format!("reflex watch: waiting for a Manager at {endpoint}\n");
    let first = rx
        .recv_timeout(PATIENCE)
        .unwrap()
        .expect("a line on stderr");
    assert_eq!(first, notice);
    // Stopped, it has said nothing more: the notice came once.
    signal(proc.id(), libc::SIGTERM);
    let mut last = first;
    while let Ok(Some(text)) = rx.recv_timeout(PATIENCE) {
        last = text;
    }
    assert_eq!(last, notice);
}
