//! Every action ends in one reported outcome, and loops through Actors stop: the real Manager,
//! Publisher and Actors over real sockets, each test written as the fault it guards against.

use std::net::TcpListener;
use std::process::Command;

use reflex_core::Value;
use reflex_core::event::MAX_HOPS;
use reflex_tests::{Agent, Manager, Proc, Scratch, binary, free_endpoint, free_port, wait_until};

/// `reflex send TAG FIELDS... --source SOURCE` to the Manager; asserts success.
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

/// Waits until the Manager's metric `sample` reaches `at_least`; returns its value then.
fn metric_at_least(m: &Manager, sample: &str, at_least: f64) -> f64 {
    let mut value = 0.0;
    wait_until(&format!("{sample} >= {at_least}"), || {
        value = m.metric(sample).unwrap_or(0.0);
        value >= at_least
    });
    value
}

const LOOP_DROPS: &str = r#"reflex_events_dropped_total{reason="loop"}"#;

#[test]
fn a_loop_through_an_actors_fire_event_stops_at_the_hop_limit() {
    let dir = Scratch::new("actor-loop");
    let rules = dir.write(
        "rules.yml",
        r#"
/loop/*:
  rules:
    - n:
        rule: rules.simple.ge
        threshold: 0
        fire: always
        reactions:
          - reactions.actor.fire_event:
              target: looper
              tag: /loop/again
              data: {n: value}
"#,
    );
    let m = Manager::start(&dir, &rules, &[]);
    let agent = Agent::start(&dir, "looper", &m, "allow:\n  fire_event: ['/loop/*']\n");
    send(&m, "/loop/start", &["n=1"], "tester");
    metric_at_least(&m, LOOP_DROPS, 1.0);
    // The event of hop 0 and the Actor's events of hops 1 to MAX_HOPS each made one action;
    // the one that would have been hop MAX_HOPS + 1 was refused, and nothing follows it.
    assert_eq!(
        m.metric("reflex_actions_sent_total"),
        Some(f64::from(MAX_HOPS))
    );
    let last = m.watch.wait_for("/loop/again", |e| {
        e.hops == MAX_HOPS && e.source == "looper"
    });
    assert_eq!(last.get("n"), Some(&Value::Int(1)));
    wait_until("the loop warning", || {
        let log = m.log_text();
        log.contains("reaction loop stopped at the hop limit") && log.contains("/loop/again")
    });
    assert_eq!(m.metric(LOOP_DROPS), Some(1.0));
    assert!(!agent.log_text().contains("panicked"));
}

#[test]
fn a_loop_through_results_stops_at_the_hop_limit() {
    let dir = Scratch::new("result-loop");
    let rules = dir.write(
        "rules.yml",
        r#"
/start/*:
  rules:
    - go:
        rule: rules.simple.ge
        threshold: 0
        reactions:
          - reactions.actor.run:
              target: runner
              argv: ['true']
/reflex/result/*:
  rules:
    - code:
        rule: rules.simple.ge
        threshold: 0
        fire: always
        reactions:
          - reactions.actor.run:
              target: '{{ event.source }}'
              argv: ['true']
"#,
    );
    let m = Manager::start(&dir, &rules, &[]);
    let _agent = Agent::start(&dir, "runner", &m, "allow:\n  run:\n    - ['true']\n");
    send(&m, "/start/x", &["go=1"], "tester");
    metric_at_least(&m, LOOP_DROPS, 1.0);
    // Hop 1 from the start event, then one more per result: MAX_HOPS commands ran.
    assert_eq!(
        m.metric("reflex_actions_sent_total"),
        Some(f64::from(MAX_HOPS))
    );
    let last = m
        .watch
        .wait_for("/reflex/result/runner", |e| e.hops == MAX_HOPS);
    assert_eq!(last.get("ok"), Some(&Value::Bool(true)));
    assert_eq!(
        m.metric(r#"reflex_action_outcomes_total{outcome="ran"}"#),
        Some(f64::from(MAX_HOPS))
    );
    assert_eq!(m.metric(LOOP_DROPS), Some(1.0));
}

#[test]
fn an_unanswered_action_produces_its_expiry_event() {
    let dir = Scratch::new("expiry");
    let rules = dir.write(
        "rules.yml",
        r#"
/client/x/*:
  rules:
    - v:
        rule: rules.simple.ge
        threshold: 0
        reactions:
          - reactions.actor.run:
              target: ghost
              argv: [uptime]
"#,
    );
    let m = Manager::start(&dir, &rules, &["--action-ttl", "1"]);
    send(&m, "/client/x/web-1", &["v=1"], "web-1");
    // Its report says it was queued, not that it ran ...
    let report = m.watch.wait_for("/reflex/reaction/actor/run", |_| true);
    let Some(Value::Str(output)) = report.get("output") else {
        panic!("a report without output: {report:?}")
    };
    assert!(output.starts_with("queued: action "), "{output}");
    let Some(Value::Int(id)) = report.get("action_id") else {
        panic!("a report without action_id: {report:?}")
    };
    // ... and nobody answers: it expires, with an event, a counter and a warning.
    let expired = m.watch.wait_for("/reflex/expired/ghost", |_| true);
    assert_eq!(expired.get("id"), Some(&Value::Int(*id)));
    assert_eq!(expired.get("rule"), Some(&Value::str("v").unwrap()));
    assert_eq!(
        expired.get("function"),
        Some(&Value::str("reactions.actor.run").unwrap())
    );
    assert_eq!(
        m.metric(r#"reflex_action_outcomes_total{outcome="expired"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.metric(r#"reflex_reactions_dropped_total{reason="action_expired"}"#),
        Some(1.0)
    );
    wait_until("the expiry warning", || {
        let log = m.log_text();
        log.contains("action expired unacknowledged") && log.contains("ghost")
    });
}

#[test]
fn ten_actions_at_once_all_run_once_though_the_actor_is_busy() {
    let dir = Scratch::new("busy");
    // Every command waits for the gate, so the Actor's eight workers are all taken when the
    // ninth and tenth actions arrive.
    dir.executable(
        "gated",
        "#!/bin/sh\nd=$(dirname \"$0\")\nwhile [ ! -e \"$d/gate\" ]; do sleep 0.05; done\n\
         echo x >> \"$d/ran-$1\"\n",
    );
    let reactions: String = (0..10)
        .map(|i| {
            format!(
                "          - reactions.actor.run:\n              target: worker\n              \
                 timeout: 120\n              argv: ['{{dir}}/gated', '{i}']\n"
            )
        })
        .collect();
    let rules = dir.write(
        "rules.yml",
        &format!(
            "/batch/*:\n  rules:\n    - n:\n        rule: rules.simple.ge\n        threshold: 0\n        \
             reactions:\n{reactions}"
        ),
    );
    let m = Manager::start(&dir, &rules, &[]);
    let agent = Agent::start(
        &dir,
        "worker",
        &m,
        "allow:\n  run:\n    - ['{dir}/gated', '*']\n",
    );
    send(&m, "/batch/go", &["n=1"], "tester");
    metric_at_least(&m, "reflex_actions_busy_total", 2.0);
    std::fs::write(dir.path().join("gate"), "").expect("open the gate");
    metric_at_least(&m, r#"reflex_action_outcomes_total{outcome="ran"}"#, 10.0);
    for i in 0..10 {
        let ran = std::fs::read_to_string(dir.path().join(format!("ran-{i}")))
            .unwrap_or_else(|e| panic!("action {i} did not run: {e}"));
        assert_eq!(ran, "x\n", "action {i} ran {} times", ran.lines().count());
    }
    assert_eq!(
        m.metric(r#"reflex_action_outcomes_total{outcome="refused"}"#),
        Some(0.0)
    );
    assert!(!agent.log_text().contains("panicked"));
}

#[test]
fn events_under_reflex_from_outside_are_refused() {
    let dir = Scratch::new("reserved");
    let rules = dir.write(
        "rules.yml",
        r#"
/reflex/result/*:
  rules:
    - code:
        rule: rules.simple.ge
        threshold: 0
        reactions:
          - reactions.log.print:
              message: 'result {{ value }} from {{ event.source }}'
"#,
    );
    let m = Manager::start(&dir, &rules, &[]);
    // web-1 poses as a failed result from db-1.
    send(&m, "/reflex/result/db-1", &["code=1", "ok=false"], "web-1");
    metric_at_least(
        &m,
        r#"reflex_events_dropped_total{reason="reserved_tag"}"#,
        1.0,
    );
    assert_eq!(
        m.metric(r#"reflex_rules_fired_total{rule="code"}"#),
        Some(0.0)
    );
    assert!(m.watch.seen("/reflex/result/").is_empty());
}

#[test]
fn send_to_a_closed_port_exits_1() {
    let to = free_endpoint();
    let out = Command::new(binary("reflex"))
        .args(["send", "/client/load/web-1", "load_avg=3"])
        .args(["--to", &to, "--timeout", "0.5"])
        .output()
        .expect("reflex send runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Manager took the event"), "{err}");
}

#[test]
fn send_refuses_a_field_given_twice() {
    let out = Command::new(binary("reflex"))
        .args(["send", "/t", "x=1", "x=2", "--to", &free_endpoint()])
        .output()
        .expect("reflex send runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("field `x` is given more than once"), "{err}");
}

#[test]
fn the_manager_exits_1_when_the_publish_port_is_taken() {
    let dir = Scratch::new("publish-taken");
    let rules = dir.write("rules.yml", "/x:\n  rules:\n    - v:\n        rule: rules.simple.ge\n        threshold: 0\n        reactions:\n          - reactions.log.print: {message: hi}\n");
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port to take");
    let port = taken.local_addr().expect("its address").port();
    let mut cmd = Command::new(binary("reflex"));
    cmd.arg("manager")
        .arg("--rules")
        .arg(&rules)
        .args(["--events", &free_endpoint(), "--watch", &free_endpoint()])
        .args(["--publish", &format!("tcp://127.0.0.1:{port}")])
        .args(["--metrics", &format!("127.0.0.1:{}", free_port())])
        .arg("--feed")
        .arg(format!("ipc://{}/feed.ipc", dir.path().display()))
        .arg("--insecure");
    let log = dir.path().join("manager.log");
    let mut proc = Proc::spawn(cmd, &log);
    wait_until("the manager to exit", || proc.exited());
    let status = proc.0.wait().expect("its status");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("the publisher did not start"), "{text}");
    assert!(!text.contains("manager ready"), "{text}");
    drop(taken);
}
