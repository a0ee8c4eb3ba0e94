//! The Actor against real sockets: allow-list, argv handling, targets, repeats, expiry.

use std::time::Duration;

use reflex_core::Value;
use reflex_core::wire::Body;
use reflex_tests::bus::{Agent, Bus, WAIT, action, now_ms, run_action, script};

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn an_allowed_command_runs_and_reports() {
    let mut bus = Bus::new();
    let agent = Agent::ready(
        &mut bus,
        "web-1",
        "allow:\n  run:\n    - [touch, \"$DIR/touched-*\"]\n",
    );
    let file = agent.path("touched-1");
    let a = run_action(41, "web-1", &["touch", file.to_str().unwrap()]);
    let r = bus.perform(&a);
    assert_eq!(r.id, 41);
    assert_eq!(r.source.as_str(), "web-1");
    assert_eq!(r.function.as_str(), "reactions.actor.run");
    assert!(r.ok, "{r:?}");
    assert_eq!(r.code, 0);
    assert!(file.exists());
    // Broadcast to `*` works the same way.
    let file = agent.path("touched-2");
    let r = bus.perform(&run_action(42, "*", &["touch", file.to_str().unwrap()]));
    assert!(r.ok, "{r:?}");
    assert!(file.exists());
}

#[test]
fn a_command_not_allowed_is_refused_and_not_run() {
    let mut bus = Bus::new();
    let agent = Agent::ready(&mut bus, "web-2", "allow:\n  run:\n    - [df, -h]\n");
    let file = agent.path("should-not-exist");
    let r = bus.perform(&run_action(1, "web-2", &["touch", file.to_str().unwrap()]));
    assert!(!r.ok);
    assert_eq!(r.code, -1);
    assert!(r.output.contains("not allowed"), "{}", r.output);
    // A wrong argument to an allowed program.
    let r = bus.perform(&run_action(2, "web-2", &["df", "-i"]));
    assert!(!r.ok);
    assert!(r.output.contains("argument 1"), "{}", r.output);
    // An unknown function.
    let r = bus.perform(&action(3, "reactions.exec.run", "web-2"));
    assert!(!r.ok);
    assert!(r.output.contains("unknown function"), "{}", r.output);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!file.exists());
}

#[test]
fn templated_values_stay_single_literal_argv_entries() {
    let mut bus = Bus::new();
    let agent = Agent::ready(
        &mut bus,
        "web-3",
        "allow:\n  run:\n    - [\"$DIR/argv.sh\", \"*\"]\n    - [\"$DIR/argv.sh\", -v, \"*\"]\n    - [\"$DIR/argv.sh\", \"-*\", x]\n",
    );
    let argv_sh = agent.path("argv.sh");
    let out = agent.path("argv.txt");
    script(
        &argv_sh,
        &format!(
            "for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done >> '{}'",
            out.display()
        ),
    );
    let prog = argv_sh.to_str().unwrap();

    let r = bus.perform(&run_action(
        1,
        "web-3",
        &[prog, "; rm -rf / $(touch pwned) `id` | x"],
    ));
    assert!(r.ok, "{r:?}");
    assert_eq!(read(&out), "[; rm -rf / $(touch pwned) `id` | x]\n");

    // A value that looks like a flag is refused where the pattern has none...
    for flag in ["--help", "-rf"] {
        let r = bus.perform(&run_action(2, "web-3", &[prog, flag]));
        assert!(!r.ok);
        assert!(r.output.contains("flag"), "{}", r.output);
    }
    // ... and allowed exactly where the pattern has one.
    let r = bus.perform(&run_action(3, "web-3", &[prog, "-v", "a b"]));
    assert!(r.ok, "{r:?}");
    let r = bus.perform(&run_action(4, "web-3", &[prog, "--force", "x"]));
    assert!(r.ok, "{r:?}");
    let r = bus.perform(&run_action(5, "web-3", &[prog, "-v", "--x"]));
    assert!(!r.ok);
    assert_eq!(
        read(&out),
        "[; rm -rf / $(touch pwned) `id` | x]\n[-v]\n[a b]\n[--force]\n[x]\n"
    );
}

#[test]
fn actions_for_other_agents_are_neither_received_nor_run() {
    let mut bus = Bus::new();
    let agent = Agent::ready(
        &mut bus,
        "web-4",
        "allow:\n  run:\n    - [touch, \"$DIR/*\"]\n",
    );
    // The agent subscribed to its own id and to `*`, and to nothing else.
    let mut subs = bus.subscriptions.clone();
    subs.sort();
    subs.dedup();
    assert_eq!(subs, [b"\x01*\0".to_vec(), b"\x01web-4\0".to_vec()]);

    let other = agent.path("other");
    let prefix = agent.path("prefix");
    let mismatched = agent.path("mismatched");
    // Another id, and an id that merely starts with ours: filtered by the socket.
    bus.publish(
        "web-5",
        &run_action(1, "web-5", &["touch", other.to_str().unwrap()]),
    );
    bus.publish(
        "web-40",
        &run_action(2, "web-40", &["touch", prefix.to_str().unwrap()]),
    );
    // Our topic but another target: received, checked, not run, not answered.
    bus.publish(
        "web-4",
        &run_action(3, "web-5", &["touch", mismatched.to_str().unwrap()]),
    );
    // A probe behind them: once its result is back, the others have been dealt with.
    let probe = agent.path("probe");
    let mut seen = Vec::new();
    bus.publish(
        "web-4",
        &run_action(4, "web-4", &["touch", probe.to_str().unwrap()]),
    );
    bus.recv_until(WAIT, |b| match b {
        Body::Result(r) => {
            seen.push(r.id);
            (r.id == 4).then_some(())
        }
        _ => None,
    })
    .expect("probe result");
    assert_eq!(seen, [4]);
    assert!(probe.exists());
    assert!(!other.exists() && !prefix.exists() && !mismatched.exists());
    let log = agent.log();
    assert!(log.contains("ignoring action 3"), "{log}");
    assert!(
        !log.contains("action 1 ") && !log.contains("action 2 "),
        "{log}"
    );
}

#[test]
fn a_repeated_action_runs_once_and_gets_the_same_result() {
    let mut bus = Bus::new();
    let agent = Agent::ready(
        &mut bus,
        "web-6",
        "allow:\n  run:\n    - [\"$DIR/count.sh\"]\n",
    );
    let count_sh = agent.path("count.sh");
    let out = agent.path("runs.txt");
    script(
        &count_sh,
        &format!("echo run >> '{}'; echo hello; exit 3", out.display()),
    );
    let a = run_action(77, "web-6", &[count_sh.to_str().unwrap()]);
    let first = bus.perform(&a);
    assert_eq!(
        (first.ok, first.code, first.output.as_str()),
        (false, 3, "hello\n")
    );
    for _ in 0..3 {
        let again = bus.perform(&a);
        assert_eq!(
            (again.id, again.ok, again.code, again.output.as_str()),
            (77, false, 3, "hello\n")
        );
    }
    assert_eq!(read(&out), "run\n");
    // The same id issued at another time is another action (the Manager restarted).
    let mut b = a.clone();
    b.time += 1;
    let r = bus.perform(&b);
    assert_eq!(r.code, 3);
    assert_eq!(read(&out), "run\nrun\n");
}

#[test]
fn an_expired_action_is_refused() {
    let mut bus = Bus::new();
    let agent = Agent::ready(
        &mut bus,
        "web-7",
        "allow:\n  run:\n    - [touch, \"$DIR/*\"]\n",
    );
    let file = agent.path("late");
    let mut a = run_action(5, "web-7", &["touch", file.to_str().unwrap()]);
    a.time = now_ms() - 120_000;
    a.expires = now_ms() - 60_000;
    let r = bus.perform(&a);
    assert!(!r.ok);
    assert_eq!(r.code, -1);
    assert_eq!(r.output.as_str(), "expired");
    assert!(!file.exists());
}

#[test]
fn a_command_over_its_timeout_is_killed() {
    let mut bus = Bus::new();
    let _agent = Agent::ready(&mut bus, "web-8", "allow:\n  run:\n    - [sleep, \"*\"]\n");
    let mut a = run_action(6, "web-8", &["sleep", "60"]);
    a.push_arg("timeout", Value::Float(0.3)).unwrap();
    let r = bus.perform(&a);
    assert!(!r.ok);
    assert_eq!(r.code, 124);
    assert!(r.output.starts_with("timed out"), "{}", r.output);
}

#[test]
fn fire_event_sends_an_allowed_event() {
    let mut bus = Bus::new();
    let _agent = Agent::ready(&mut bus, "web-9", "allow:\n  fire_event: [\"/ops/*\"]\n");
    let mut a = action(8, "reactions.actor.fire_event", "web-9");
    a.push_arg("tag", Value::str("/ops/reconfigured").unwrap())
        .unwrap();
    a.push_arg("data.pool", Value::str("blue").unwrap())
        .unwrap();
    a.push_arg("data.weight", Value::Int(3)).unwrap();
    bus.publish("web-9", &a);
    let mut event = None;
    let mut result = None;
    bus.recv_until(WAIT, |b| {
        match b {
            Body::Event(e) if e.tag == "/ops/reconfigured" => event = Some(e),
            Body::Result(r) if r.id == 8 => result = Some(r),
            _ => {}
        }
        (event.is_some() && result.is_some()).then_some(())
    })
    .expect("event and result");
    let (e, r) = (event.unwrap(), result.unwrap());
    assert!(r.ok, "{r:?}");
    assert_eq!(e.source.as_str(), "web-9");
    assert_eq!(e.get("pool"), Some(&Value::str("blue").unwrap()));
    assert_eq!(e.get("weight"), Some(&Value::Int(3)));

    let mut a = action(9, "reactions.actor.fire_event", "web-9");
    a.push_arg("tag", Value::str("/client/load/web-9").unwrap())
        .unwrap();
    let r = bus.perform(&a);
    assert!(!r.ok);
    assert!(r.output.contains("allow.fire_event"), "{}", r.output);
}

#[test]
fn plugins_get_their_arguments_as_json() {
    let mut bus = Bus::new();
    let agent = Agent::ready(
        &mut bus,
        "web-10",
        "plugins: $DIR/plugins\nallow:\n  plugins: [echo_args]\n",
    );
    let dir = agent.path("plugins/reactions/actor");
    std::fs::create_dir_all(&dir).unwrap();
    script(&dir.join("echo_args"), "cat; echo done >&2");
    script(&dir.join("not_listed"), "exit 0");
    let mut a = action(10, "reactions.actor.echo_args", "web-10");
    a.push_arg("path", Value::str("/a").unwrap()).unwrap();
    a.push_arg("path", Value::str("/b").unwrap()).unwrap();
    a.push_arg("keep", Value::Int(2)).unwrap();
    let r = bus.perform(&a);
    assert!(r.ok, "{r:?}");
    let (json, rest) = r.output.split_once('\n').unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["args"]["path"], serde_json::json!(["/a", "/b"]));
    assert_eq!(v["args"]["keep"], 2);
    assert_eq!(v["action"]["id"], 10);
    assert_eq!(v["action"]["function"], "reactions.actor.echo_args");
    assert_eq!(rest, "done\n");

    let r = bus.perform(&action(11, "reactions.actor.not_listed", "web-10"));
    assert!(!r.ok);
    assert!(r.output.contains("allow.plugins"), "{}", r.output);
    let r = bus.perform(&action(12, "reactions.actor.x.y", "web-10"));
    assert!(!r.ok, "{r:?}");
}

#[test]
fn bad_bytes_are_dropped_and_the_actor_goes_on() {
    let mut bus = Bus::new();
    let agent = Agent::ready(&mut bus, "web-11", "allow:\n  run:\n    - [\"true\"]\n");
    bus.publish_raw(&[b"web-11\0", b"\x01\xff\xff\xff garbage"]);
    bus.publish_raw(&[b"web-11\0", b"\x09"]);
    bus.publish_raw(&[b"web-11\0"]);
    bus.publish_raw(&[b"web-11\0", b"", b"x"]);
    bus.publish_raw(&[b"web-11\0", &vec![1u8; 1_000]]);
    let r = bus.perform(&run_action(1, "web-11", &["true"]));
    assert!(r.ok, "{r:?}");
    let log = agent.log();
    assert!(log.contains("unsupported envelope version 9"), "{log}");
    assert!(log.contains("1 frames"), "{log}");
}
