//! The Actor's authentication against real sockets: the test plays the Publisher with its own
//! socket and signs actions with a test Manager key; the real `reflex-agent` must perform only
//! authentic, fresh actions, each at most once, and sign what it sends.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use reflex_core::auth::{self, KeyFile, KeyKind, SecretKey, Signer, Verifier};
use reflex_core::wire::{self, Action, Body, MAX_ENVELOPE_LEN};
use reflex_tests::bus::{Agent, Bus, WAIT, now_ms, run_action, script};

/// The test's Manager key.
fn manager_key() -> SecretKey {
    SecretKey::from_seed([0x11; 32])
}

/// The agent's own key.
fn agent_key() -> SecretKey {
    SecretKey::from_seed([0x22; 32])
}

fn write_key(path: &Path, kind: KeyKind, bytes: [u8; 32], mode: u32) {
    std::fs::write(path, KeyFile { kind, bytes }.to_string()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes the Manager's public key and the agent's secret key into the agent's directory.
fn keys(dir: &Path) {
    write_key(
        &dir.join("manager.pub"),
        KeyKind::Ed25519Public,
        manager_key().public().to_bytes(),
        0o644,
    );
    write_key(
        &dir.join("agent.key"),
        KeyKind::Ed25519Secret,
        agent_key().seed(),
        0o600,
    );
}

const SECURE: &[&str] = &[
    "--key",
    "$DIR/agent.key",
    "--manager-key",
    "$DIR/manager.pub",
];

/// A secure agent, subscribed.
fn secure_agent(bus: &mut Bus, id: &str, yaml: &str) -> Agent {
    let agent = Agent::start_with(bus, id, yaml, SECURE, keys);
    bus.wait_subscribed(format!("{id}\0").as_bytes());
    bus.wait_subscribed(b"*\0");
    agent
}

/// `action` with its seq set to its id, encoded and tagged by `signer`.
fn envelope(action: &Action, signer: Option<&Signer>) -> Vec<u8> {
    let mut a = action.clone();
    a.seq = a.id;
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    let n = auth::encode(&Body::Action(a), signer, &mut buf).unwrap();
    buf[..n].to_vec()
}

fn signed(action: &Action) -> Vec<u8> {
    envelope(action, Some(&Signer::Ed25519(manager_key())))
}

fn publish(bus: &Bus, target: &str, bytes: &[u8]) {
    bus.publish_raw(&[format!("{target}\0").as_bytes(), bytes]);
}

/// Stops the agent with SIGTERM and returns its log, which ends with its counters.
fn stop(mut agent: Agent) -> String {
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe {
        libc::kill(agent.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + WAIT;
    while agent.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.log()
}

#[test]
fn only_actions_signed_by_the_manager_run_and_what_the_agent_sends_is_signed() {
    let mut bus = Bus::new();
    let agent = secure_agent(
        &mut bus,
        "sec-1",
        "allow:\n  run:\n    - [touch, \"$DIR/*\"]\n",
    );
    let file = |name: &str| agent.path(name).to_str().unwrap().to_owned();

    // Unsigned.
    publish(
        &bus,
        "sec-1",
        &envelope(&run_action(1, "sec-1", &["touch", &file("a")]), None),
    );
    // Signed with another key.
    let stranger = Signer::Ed25519(SecretKey::from_seed([0x33; 32]));
    publish(
        &bus,
        "sec-1",
        &envelope(
            &run_action(2, "sec-1", &["touch", &file("b")]),
            Some(&stranger),
        ),
    );
    // Signed, then one byte of an argument changed: `.../c` becomes `.../d`.
    let mut tampered = signed(&run_action(3, "sec-1", &["touch", &file("c")]));
    let at = tampered
        .windows(2)
        .rposition(|w| w == b"/c")
        .expect("the argument in the envelope")
        + 1;
    tampered[at] = b'd';
    assert!(wire::decode(&tampered).is_ok(), "still a valid envelope");
    publish(&bus, "sec-1", &tampered);
    // A genuine one behind them: once its result is back, the others were dealt with.
    publish(
        &bus,
        "sec-1",
        &signed(&run_action(4, "sec-1", &["touch", &file("e")])),
    );

    let agent_public = Verifier::Ed25519(agent_key().public());
    let mut results = Vec::new();
    let mut heartbeat_verified = false;
    let deadline = Instant::now() + WAIT;
    while !(results.contains(&4) && heartbeat_verified) {
        assert!(Instant::now() < deadline, "results {results:?}");
        if bus.pull.poll(zmq::POLLIN, 100).unwrap() == 0 {
            continue;
        }
        let bytes = bus.pull.recv_bytes(0).unwrap();
        let d = wire::decode(&bytes).unwrap();
        // Everything the agent sends is signed with its key.
        auth::verify(&d, &bytes, &agent_public).expect("signed by the agent's key");
        match d.envelope.body {
            Body::Result(r) => {
                assert!(r.ok, "{r:?}");
                results.push(r.id);
            }
            Body::Heartbeat(_) => heartbeat_verified = true,
            _ => {}
        }
    }
    assert_eq!(results, [4], "no result for unauthentic actions");
    assert!(agent.path("e").exists());
    for name in ["a", "b", "c", "d"] {
        assert!(!agent.path(name).exists(), "{name} was touched");
    }
    let log = stop(agent);
    assert!(log.contains("unauthenticated 1, bad signature 2"), "{log}");
    assert!(log.contains("dropping unsigned actions"), "{log}");
    assert_eq!(
        log.matches("does not verify with the Manager's key")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn retries_get_the_cached_result_and_replays_never_run() {
    let mut bus = Bus::new();
    let agent = secure_agent(
        &mut bus,
        "sec-2",
        "allow:\n  run:\n    - [\"$DIR/count.sh\"]\n",
    );
    let count_sh = agent.path("count.sh");
    let runs = agent.path("runs.txt");
    script(
        &count_sh,
        &format!("echo run >> '{}'; echo hello", runs.display()),
    );
    let read = || std::fs::read_to_string(&runs).unwrap_or_default();

    // Valid for 3 s.
    let mut a = run_action(10, "sec-2", &[count_sh.to_str().unwrap()]);
    a.expires = a.time + 3_000;
    let bytes = signed(&a);
    publish(&bus, "sec-2", &bytes);
    let first = bus.result(10);
    assert_eq!((first.ok, first.output.as_str()), (true, "hello\n"));
    // A genuine retry (the same bytes, before expiry): the same result, not run again.
    publish(&bus, "sec-2", &bytes);
    let again = bus.result(10);
    assert_eq!(
        (again.ok, again.code, again.output.as_str()),
        (true, 0, "hello\n")
    );
    assert_eq!(read(), "run\n");

    // The same bytes once the action has expired: a replay, dropped without an answer.
    while now_ms() < a.expires + 100 {
        std::thread::sleep(Duration::from_millis(50));
    }
    publish(&bus, "sec-2", &bytes);
    // An action that expired before it ever arrived: refused, and said so.
    let mut late = run_action(11, "sec-2", &[count_sh.to_str().unwrap()]);
    late.time = now_ms() - 120_000;
    late.expires = now_ms() - 60_000;
    publish(&bus, "sec-2", &signed(&late));
    let r = bus.result(11);
    assert_eq!((r.ok, r.code, r.output.as_str()), (false, -1, "expired"));
    // A signed action without an expiry: refused.
    let mut forever = run_action(12, "sec-2", &[count_sh.to_str().unwrap()]);
    forever.expires = 0;
    publish(&bus, "sec-2", &signed(&forever));
    let r = bus.result(12);
    assert!(!r.ok && r.output.contains("no expiry"), "{r:?}");
    // A probe: the replay came before it, and got no result.
    let probe = run_action(13, "sec-2", &[count_sh.to_str().unwrap()]);
    publish(&bus, "sec-2", &signed(&probe));
    assert!(bus.result(13).ok);
    assert!(bus.try_result(10, Duration::from_millis(300)).is_none());
    assert_eq!(read(), "run\nrun\n", "the replay did not run");

    let log = stop(agent);
    assert!(log.contains("replayed 1,"), "{log}");
    assert!(
        log.contains("action 10 (seq 10) replayed: dropped"),
        "{log}"
    );
    assert!(log.contains("duplicates 1,"), "{log}");
}

#[test]
fn an_agent_needs_its_keys_or_insecure() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_reflex-agent"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--id", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no `manager_key`") && err.contains("--insecure"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let key = dir.path().join("agent.key");
    let public = dir.path().join("manager.pub");
    let (key, public) = (key.to_str().unwrap(), public.to_str().unwrap());
    // A secret key other users may read is refused.
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = run(&["--id", "x", "--key", key, "--manager-key", public]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    // Keys swapped: each file is the wrong kind for its place.
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&["--id", "x", "--key", public, "--manager-key", key]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be an Ed25519 secret key"), "{err}");
    // Insecure with the Manager's key makes no sense.
    let out = run(&["--id", "x", "--insecure", "--manager-key", public]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exclude each other"));
}

/// Waits for the agent to exit by itself; returns whether it failed, and its log.
fn exit_of(mut agent: Agent) -> (bool, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            return (!status.success(), agent.log());
        }
        assert!(Instant::now() < deadline, "the agent kept running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_manager_key_others_may_rewrite_is_refused_at_start_with_the_chmod_to_run() {
    let bus = Bus::new();
    // The Manager's public key, rewritable by anyone: any local user could swap in their own.
    let agent = Agent::start_with(&bus, "strict-1", "", SECURE, |dir| {
        keys(dir);
        std::fs::set_permissions(
            dir.join("manager.pub"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
    });
    let (failed, log) = exit_of(agent);
    assert!(failed, "{log}");
    assert!(
        log.contains("manager.pub") && log.contains("chmod go-w"),
        "{log}"
    );
    // The file is fine, but its directory lets anyone replace it.
    let agent = Agent::start_with(&bus, "strict-2", "", SECURE, |dir| {
        keys(dir);
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    });
    let (failed, log) = exit_of(agent);
    assert!(failed, "{log}");
    assert!(log.contains("chmod go-w"), "{log}");
}

#[test]
fn a_captured_action_replayed_after_the_actor_restarts_is_refused() {
    let mut bus = Bus::new();
    // The state directory outlives both runs of the Actor; what it runs lands there too.
    let kept = reflex_tests::Scratch::new("actor-floor");
    let state = kept.path().join("state");
    let out = kept.path().display().to_string();
    let yaml = format!("allow:\n  run:\n    - [touch, \"{out}/*\"]\n");
    let flags: Vec<&str> = SECURE
        .iter()
        .copied()
        .chain(["--state-dir", state.to_str().unwrap()])
        .collect();
    let start = |bus: &mut Bus| {
        bus.subscriptions.clear();
        let agent = Agent::start_with(bus, "floor-1", &yaml, &flags, keys);
        bus.wait_subscribed(b"floor-1\0");
        bus.wait_subscribed(b"*\0");
        agent
    };
    let ran = |n: u64| kept.path().join(format!("ran-{n}"));
    let first = start(&mut bus);
    // The attacker records the signed action on the wire as it runs.
    let captured = signed(&run_action(
        1,
        "floor-1",
        &["touch", ran(1).to_str().unwrap()],
    ));
    publish(&bus, "floor-1", &captured);
    assert!(bus.result(1).ok);
    assert!(ran(1).exists());
    std::fs::remove_file(ran(1)).unwrap();
    drop(first);

    // Restarted, well within the action's minute of validity: the copy is a replay.
    let second = start(&mut bus);
    publish(&bus, "floor-1", &captured);
    publish(
        &bus,
        "floor-1",
        &signed(&run_action(
            2,
            "floor-1",
            &["touch", ran(2).to_str().unwrap()],
        )),
    );
    assert!(bus.result(2).ok);
    assert!(ran(2).exists());
    assert!(!ran(1).exists(), "the captured action ran again");
    let log = stop(second);
    assert!(log.contains("replayed 1,"), "{log}");
}
