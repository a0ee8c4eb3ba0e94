//! Keys and authentication against the real `reflex` binary: `reflex keys gen`, the Manager's
//! refusal to run unauthenticated, its allow-list of senders, and a templated command argument
//! travelling from a rule through a signed action to an Actor as one literal argv entry.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reflex_core::auth::{self, MacKey, Signer, keyfile};
use reflex_core::wire::{Body, MAX_ENVELOPE_LEN};
use reflex_core::{Event, Value};
use reflex_tests::Scratch;
use reflex_tests::standalone::{Manager, reflex, send, wait_until};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// `reflex keys gen ARGS...`, asserting success.
fn keys_gen(args: &[&str]) {
    let out = reflex().args(["keys", "gen"]).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "reflex keys gen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Keys under `dir/keys` for the Manager and `agents`, and `dir/trust` holding the agents'
/// public keys and the HMAC keys of `devices`.
fn setup_keys(dir: &Path, agents: &[&str], devices: &[&str]) -> (PathBuf, PathBuf) {
    let keys = dir.join("keys");
    let trust = dir.join("trust");
    let k = keys.to_str().unwrap();
    keys_gen(&["--out", k, "--name", "manager"]);
    for a in agents {
        keys_gen(&["--out", k, "--name", a]);
        std::fs::create_dir_all(&trust).unwrap();
        std::fs::copy(
            keys.join(format!("{a}.pub")),
            trust.join(format!("{a}.pub")),
        )
        .unwrap();
    }
    for d in devices {
        keys_gen(&["--out", trust.to_str().unwrap(), "--mac", "--name", d]);
    }
    (keys, trust)
}

fn secure_flags(keys: &Path, trust: &Path) -> Vec<String> {
    vec![
        "--key".into(),
        keys.join("manager.key").display().to_string(),
        "--trust".into(),
        trust.display().to_string(),
    ]
}

fn signer(path: &Path) -> Signer {
    keyfile::read(path).unwrap().signer().unwrap()
}

fn envelope(e: &Event, signer: Option<&Signer>) -> Vec<u8> {
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    let n = auth::encode(&Body::Event(e.clone()), signer, &mut buf).unwrap();
    buf[..n].to_vec()
}

fn event(source: &str, n: i64, seq: u64, time: u64) -> Event {
    let mut e = Event::new(&format!("/client/load/{source}"), source).unwrap();
    e.push("n", Value::Int(n)).unwrap();
    e.seq = seq;
    e.time = time;
    e
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn keys_gen_writes_secret_files_with_mode_0600() {
    let dir = Scratch::new("keys-gen");
    let out = dir.path().join("k");
    keys_gen(&["--out", out.to_str().unwrap(), "--name", "web-1"]);
    let (secret, public) = (out.join("web-1.key"), out.join("web-1.pub"));
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(mode(&out), 0o700);
    let text = std::fs::read_to_string(&secret).unwrap();
    assert!(text.starts_with("reflex-ed25519-secret "), "{text}");
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("reflex-ed25519-public ")
    );
    keys_gen(&["--out", out.to_str().unwrap(), "--mac", "--name", "node-7"]);
    let mac = out.join("node-7.mac");
    assert_eq!(mode(&mac), 0o600);
    assert!(
        std::fs::read_to_string(&mac)
            .unwrap()
            .starts_with("reflex-hmac-sha256 ")
    );
    // Never overwritten; --mac needs a name.
    let again = reflex()
        .args([
            "keys",
            "gen",
            "--out",
            out.to_str().unwrap(),
            "--name",
            "web-1",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), text);
    let nameless = reflex()
        .args(["keys", "gen", "--mac", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!nameless.status.success());
}

const RULES: &str = r#"
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

#[test]
fn without_keys_the_manager_runs_only_when_insecure_and_says_so() {
    let dir = Scratch::new("insecure");
    let book = dir.path().join("rules.yml");
    std::fs::write(&book, RULES).unwrap();
    let out = reflex()
        .arg("manager")
        .arg("--rules")
        .arg(&book)
        .args(["--metrics", "off", "--events", "tcp://127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to start without --key and --trust") && err.contains("--insecure"),
        "{err}"
    );

    let m = Manager::start_in(dir, RULES);
    assert_eq!(m.metric("reflex_insecure"), Some(1.0));
    assert!(m.log_text().contains("INSECURE"), "{}", m.log_text());
    // Anything goes: an unsigned event from anyone is processed.
    m.send("/client/load/lab", &["n=1"], "lab");
    let fired = m.dir.path().join("fired-lab-1");
    wait_until("the unsigned event's reaction", || fired.exists());
}

#[test]
fn only_allow_listed_authenticated_fresh_messages_are_processed() {
    let dir = Scratch::new("trust");
    let (keys, trust) = setup_keys(dir.path(), &["web-1", "stranger"], &["node-7"]);
    // The stranger has keys, but is not allow-listed.
    std::fs::remove_file(trust.join("stranger.pub")).unwrap();
    let m = Manager::start_with(dir, RULES, &secure_flags(&keys, &trust));
    assert_eq!(m.metric("reflex_insecure"), Some(0.0));
    let fired = |source: &str, n: i64| m.dir.path().join(format!("fired-{source}-{n}"));
    let drops = |reason: &str| {
        m.metric(&format!(
            "reflex_events_dropped_total{{reason=\"{reason}\"}}"
        ))
        .unwrap_or(-1.0)
    };
    let web1_key = keys.join("web-1.key");

    // `reflex send --key`: signed, allow-listed, processed.
    let out = send(
        "/client/load/web-1",
        &["n=1"],
        &[
            "--source",
            "web-1",
            "--to",
            &m.events,
            "--key",
            web1_key.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the signed event's reaction", || fired("web-1", 1).exists());
    // Unsigned, twice: dropped, counted twice, logged once.
    for _ in 0..2 {
        m.send("/client/load/web-1", &["n=2"], "web-1");
    }
    wait_until("two unauthenticated drops", || {
        drops("unauthenticated") == 2.0
    });

    // The rest from one socket, in order, with a probe at the end.
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1000).unwrap();
    push.connect(&m.events).unwrap();
    let web1 = signer(&web1_key);
    let stranger = signer(&keys.join("stranger.key"));
    let now = now_ms();
    let base = now * 1000;
    // Claiming to be web-1 with another key; a stranger with its own key.
    push.send(
        envelope(&event("web-1", 3, base + 3, now), Some(&stranger)),
        0,
    )
    .unwrap();
    push.send(
        envelope(&event("stranger", 4, base + 4, now), Some(&stranger)),
        0,
    )
    .unwrap();
    // Signed, then altered: n=5 becomes n=6.
    let mut altered = envelope(&event("web-1", 5, base + 5, now), Some(&web1));
    let at = altered.windows(2).position(|w| w == [b'n', 0]).unwrap() + 2;
    assert_eq!(altered[at], 10, "zigzag of 5");
    altered[at] = 12;
    push.send(&altered, 0).unwrap();
    // Accepted once, then the same bytes again: a replay.
    let once = envelope(&event("web-1", 7, base + 7, now), Some(&web1));
    push.send(&once, 0).unwrap();
    push.send(&once, 0).unwrap();
    // Ten minutes old: stale.
    let old = now - 10 * 60 * 1000;
    push.send(envelope(&event("web-1", 8, base + 8, old), Some(&web1)), 0)
        .unwrap();
    // A device: MAC'd with its key through the core helper (time since boot is fine), then
    // a wrong MAC.
    let device = keyfile::read(trust.join("node-7.mac")).unwrap();
    let device = Signer::Mac(MacKey::from_bytes(device.bytes));
    let seq = auth::boot_seq(1) + 1;
    push.send(envelope(&event("node-7", 9, seq, 1234), Some(&device)), 0)
        .unwrap();
    let wrong = Signer::Mac(MacKey::from_bytes([0; 32]));
    push.send(
        envelope(&event("node-7", 10, seq + 1, 1235), Some(&wrong)),
        0,
    )
    .unwrap();
    // The probe.
    push.send(
        envelope(&event("web-1", 11, base + 11, now), Some(&web1)),
        0,
    )
    .unwrap();

    wait_until("the probe's reaction", || fired("web-1", 11).exists());
    assert!(fired("web-1", 7).exists());
    assert!(fired("node-7", 9).exists(), "the device's event");
    for (source, n) in [("web-1", 2), ("web-1", 3), ("stranger", 4), ("web-1", 5)] {
        assert!(!fired(source, n).exists(), "{source} {n}");
    }
    for (source, n) in [("web-1", 6), ("web-1", 8), ("node-7", 10)] {
        assert!(!fired(source, n).exists(), "{source} {n}");
    }
    assert_eq!(drops("unauthenticated"), 2.0);
    assert_eq!(
        drops("bad_signature"),
        3.0,
        "a stranger's key, an altered event, a wrong MAC"
    );
    assert_eq!(drops("unknown_source"), 1.0);
    assert_eq!(drops("replay"), 1.0);
    assert_eq!(drops("stale"), 1.0);
    let log = m.log_text();
    let refusals = |reason: &str| {
        log.lines()
            .filter(|l| {
                l.contains("dropping a message") && l.contains(&format!("reason=\"{reason}\""))
            })
            .count()
    };
    assert_eq!(refusals("unauthenticated"), 1, "logged once: {log}");
    assert_eq!(refusals("bad_signature"), 2, "once per source: {log}");
}

#[test]
fn a_templated_argument_stays_one_literal_argv_entry_end_to_end() {
    let dir = Scratch::new("argv");
    let (keys, trust) = setup_keys(dir.path(), &["web-1", "actor-1"], &[]);
    let argv_sh = dir.executable(
        "argv.sh",
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done >> '{}/argv.txt'\n",
            dir.path().display()
        ),
    );
    let victim = dir.path().join("v");
    std::fs::write(&victim, "still here").unwrap();
    let rules = format!(
        r#"
/client/input/*:
  rules:
    - n:
        rule: rules.simple.gt
        threshold: 0
        fire: always
        reactions:
          - reactions.actor.run:
              target: actor-1
              argv: ['{}', '{{{{ event.data.arg }}}}']
"#,
        argv_sh.display()
    );
    let m = Manager::start_with(dir, &rules, &secure_flags(&keys, &trust));

    // The Actor, in this process, on the Manager's sockets, with its keys.
    let yaml = format!(
        "id: actor-1\nmanager: {}\npublisher: {}\nheartbeat_s: 1\nkey: {}\nmanager_key: {}\n\
         allow:\n  run:\n    - ['{sh}', '*']\n    - ['{sh}', '-*']\n",
        m.events,
        m.publish,
        keys.join("actor-1.key").display(),
        keys.join("manager.pub").display(),
        sh = argv_sh.display(),
    );
    let config = reflex_agent::AgentConfig::from_yaml_str(&yaml, "agent.yml").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let actor = {
        let stop = stop.clone();
        std::thread::spawn(move || reflex_agent::run(config, stop))
    };
    wait_until("the Actor's signed heartbeat", || {
        m.metric("reflex_known_actors") == Some(1.0)
    });

    let hostile = format!("; rm -rf {}", victim.display());
    let key = keys.join("web-1.key");
    for (n, arg) in [(1, hostile.as_str()), (2, "--flag")] {
        let field = format!("arg={arg}");
        let out = send(
            "/client/input/web-1",
            &[&field, &format!("n={n}")],
            &[
                "--source",
                "web-1",
                "--to",
                &m.events,
                "--key",
                key.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_until("the Actor's signed result", || {
            m.metric("reflex_results_received_total") == Some(n as f64)
        });
    }
    let recorded = std::fs::read_to_string(m.dir.path().join("argv.txt")).unwrap();
    assert_eq!(recorded, format!("[{hostile}]\n[--flag]\n"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "still here");
    for reason in [
        "unauthenticated",
        "bad_signature",
        "unknown_source",
        "replay",
        "stale",
    ] {
        assert_eq!(
            m.metric(&format!(
                "reflex_events_dropped_total{{reason=\"{reason}\"}}"
            )),
            Some(0.0),
            "{reason}: {}",
            m.log_text()
        );
    }
    stop.store(true, Ordering::Relaxed);
    actor.join().unwrap().unwrap();
}
