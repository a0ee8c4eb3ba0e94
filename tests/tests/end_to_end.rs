//! The whole system over real ZeroMQ sockets: a real Manager (with its Publisher), real
//! Actors with real beacons, and `reflex send`.

use std::process::Command;

use reflex_core::Value;
use reflex_tests::{Agent, Manager, Scratch, binary, wait_until};

/// `reflex send TAG FIELDS... --source SOURCE` to the Manager (unsigned: these Managers run
/// in lab mode); asserts success.
fn send(m: &Manager, tag: &str, fields: &[&str], source: &str) {
    let out = Command::new(binary("reflex"))
        .arg("send")
        .arg(tag)
        .args(fields)
        .args(["--source", source, "--to", &m.events])
        .output()
        .expect("reflex send runs");
    assert!(
        out.status.success(),
        "reflex send: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_beacon_makes_a_rule_fire_and_an_actor_run_a_command_whose_result_returns() {
    let dir = Scratch::new("beacon");
    let rules = dir.write(
        "rules.yml",
        r#"
/client/mem/*:
  rules:
    - used_pct:
        rule: rules.simple.ge
        threshold: 0
        register: register.aggregate.last
        reactions:
          - reactions.actor.run:
              target: originating_host
              argv: [touch, '{dir}/ran-on-{{ event.source }}']
"#,
    );
    let m = Manager::start(&dir, &rules, &[]);
    let agent = Agent::start(
        &dir,
        "host-a",
        &m,
        "allow:\n  run:\n    - [touch, '{dir}/ran-on-*']\nbeacons:\n  - kind: memory\n    interval_s: 1\n",
    );
    // The beacon's event reached the Manager ...
    m.watch
        .wait_for("/client/mem/host-a", |e| e.get("used_pct").is_some());
    // ... the rule fired and the Actor ran the command ...
    let ran = dir.path().join("ran-on-host-a");
    wait_until("the Actor's command", || ran.exists());
    // ... and its result came back to the Manager as an event.
    let result = m.watch.wait_for("/reflex/result/host-a", |_| true);
    assert_eq!(result.get("ok"), Some(&Value::Bool(true)), "{result:?}");
    assert_eq!(
        result.get("function"),
        Some(&Value::str("reactions.actor.run").unwrap())
    );
    assert!(!agent.log_text().contains("panicked"));
}

#[test]
fn a_chained_or_rule_fires_from_either_side() {
    let dir = Scratch::new("chain");
    let rules = dir.write(
        "rules.yml",
        r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        register: register.aggregate.avg
        threshold: 20
        period: 60
        reactions:
          - reactions.log.print:
              message: 'load or io high on {{ event.source }}'
        chain:
          - OR: io_avg
    - io_avg:
        rule: rules.simple.gt
        register: register.aggregate.avg
        threshold: 20
        period: 60
"#,
    );
    let m = Manager::start(&dir, &rules, &[]);
    let fired_for = |source: &str| {
        m.watch
            .seen("/reflex/reaction/log/print")
            .iter()
            .any(|e| e.source == source && e.get("rule") == Some(&Value::str("load_avg").unwrap()))
    };
    // Its own side: load high.
    send(&m, "/client/load/web-1", &["load_avg=50"], "web-1");
    wait_until("load_avg firing on its own side", || fired_for("web-1"));
    // The other side: io high, then a calm load event evaluates load_avg OR io_avg.
    send(&m, "/client/load/web-2", &["io_avg=50"], "web-2");
    send(&m, "/client/load/web-2", &["load_avg=1"], "web-2");
    wait_until("load_avg firing through its chain", || fired_for("web-2"));
    // Neither side: nothing.
    send(&m, "/client/load/web-3", &["io_avg=1"], "web-3");
    send(&m, "/client/load/web-3", &["load_avg=1"], "web-3");
    // A later event proves both web-3 events were evaluated before we look.
    send(&m, "/client/load/web-4", &["load_avg=99"], "web-4");
    wait_until("the marker event", || fired_for("web-4"));
    assert!(!fired_for("web-3"));
}

#[test]
fn an_action_targeted_at_one_actor_is_not_run_by_another() {
    let dir = Scratch::new("target");
    let rules = dir.write(
        "rules.yml",
        r#"
/ops/poke:
  rules:
    - poke:
        rule: rules.simple.eq
        threshold: 1
        fire: always
        reactions:
          - reactions.actor.run:
              target: actor-a
              argv: [touch, '{dir}/poked']
"#,
    );
    let m = Manager::start(&dir, &rules, &[]);
    let allow = "heartbeat_s: 1\nallow:\n  run:\n    - [touch, '{dir}/poked']\n";
    let a = Agent::start(&dir, "actor-a", &m, allow);
    let b = Agent::start(&dir, "actor-b", &m, allow);
    wait_until("both actors known", || {
        m.metric("reflex_known_actors") == Some(2.0)
    });
    send(&m, "/ops/poke", &["poke=1"], "operator");
    let result = m.watch.wait_for("/reflex/result/", |_| true);
    assert_eq!(result.source, "actor-a");
    assert!(dir.path().join("poked").exists());
    // A second, later action to actor-a: once its result is back, actor-b has had every
    // chance to see the first one.
    send(&m, "/ops/poke", &["poke=1"], "operator");
    wait_until("the second result", || {
        m.watch.seen("/reflex/result/").len() >= 2
    });
    // actor-b's socket never even received it: it reports what it received when it stops.
    let b_log = b.log.clone();
    drop(b);
    let log = std::fs::read_to_string(b_log).unwrap_or_default();
    assert!(log.contains("received 0,"), "actor-b: {log}");
    drop(a);
}
