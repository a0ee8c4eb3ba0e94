//! The Manager as it runs: the real `reflex` binary on loopback ports, fed by `reflex send`
//! and by ZeroMQ sockets of the test, checked through files its reactions write, an HTTP
//! listener, the Publisher's socket and `/metrics`.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reflex_core::Value;
use reflex_core::event::MAX_HOPS;
use reflex_core::wire::{self, Action, Body, Envelope, Heartbeat, MAX_ENVELOPE_LEN};
use reflex_tests::Scratch;
use reflex_tests::standalone::{Manager, PATIENCE, reflex, serve_one, wait_until};
use reflex_tests::{alive, signal};

#[test]
fn exec_run_gets_templated_argv_without_a_shell() {
    let m = Manager::start(
        "exec",
        r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        register: register.aggregate.avg
        threshold: 20
        period: 10
        reactions:
          - reactions.exec.run:
              argv: [touch, '{dir}/fired-{{ event.source }}-{{ value }}', '{dir}/$(no shell here)']
"#,
    );
    m.send("/client/load/web-2", &["load_avg=5"], "web-2");
    m.send("/client/load/web-1", &["load_avg=30"], "web-1");
    let fired = m.dir.path().join("fired-web-1-30");
    let no_shell = m.dir.path().join("$(no shell here)");
    // `touch` makes its files one after the other: wait for both.
    wait_until("the exec reaction's files", || {
        fired.exists() && no_shell.exists()
    });
    assert!(no_shell.exists());
    assert!(!m.dir.path().join("fired-web-2-5").exists());
    wait_until("the reaction to be counted", || {
        m.metric(r#"reflex_reactions_total{function="reactions.exec.run",outcome="ok"}"#)
            == Some(1.0)
    });
    assert_eq!(m.metric("reflex_events_received_total"), Some(2.0));
    assert_eq!(
        m.metric(r#"reflex_rules_fired_total{rule="load_avg"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.metric(r#"reflex_rules_evaluated_total{rule="load_avg"}"#),
        Some(2.0)
    );
    assert!(m.metric("reflex_reaction_latency_seconds_count").unwrap() >= 1.0);
}

#[test]
fn http_post_sends_templated_json() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = tx.send(serve_one(&mut stream, "200 OK"));
        }
    });
    let m = Manager::start(
        "http",
        &r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
        reactions:
          - reactions.http.post:
              url: 'http://127.0.0.1:PORT/hook'
              json:
                text: 'load {{ value }} on {{ event.source }}'
                host: originating_host
                value: value
                nested: {register: '{{ register.value }}'}
              headers:
                x-reflex-test: yes-please
    - io_avg:
        rule: rules.simple.gt
        threshold: 20
        reactions:
          - reactions.http.post:
              url: 'http://127.0.0.1:PORT/default'
"#
        .replace("PORT", &port.to_string()),
    );
    m.send("/client/load/web-1", &["load_avg=30"], "web-1");
    let (head, body) = rx.recv_timeout(PATIENCE).expect("the webhook request");
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-reflex-test: yes-please"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "text": "load 30 on web-1", "host": "web-1", "value": 30,
            "nested": {"register": 30.0},
        })
    );

    m.send("/client/load/web-1", &["io_avg=21.5", "note=hi"], "web-1");
    let (head, body) = rx.recv_timeout(PATIENCE).expect("the default-body request");
    assert!(head.starts_with("POST /default "), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["rule"], "io_avg");
    assert_eq!(json["tag"], "/client/load/web-1");
    assert_eq!(json["source"], "web-1");
    assert_eq!(json["value"], 21.5);
    assert_eq!(json["data"]["note"], "hi");
    wait_until("both posts counted as ok", || {
        m.metric(r#"reflex_reactions_total{function="reactions.http.post",outcome="ok"}"#)
            == Some(2.0)
    });
}

#[test]
fn fired_events_reach_other_rules() {
    let m = Manager::start(
        "fire",
        r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
        reactions:
          - reactions.eventer.fire_event:
              tag: '/reconfig/lb'
              data:
                turn_down_the_hose: originating_host
                level: value
/reconfig/lb:
  rules:
    - level:
        rule: rules.simple.ge
        threshold: 0
        reactions:
          - reactions.exec.run:
              argv: [touch, '{dir}/hose-{{ event.data.turn_down_the_hose }}-{{ event.source }}']
"#,
    );
    m.send("/client/load/web-7", &["load_avg=42"], "web-7");
    let file = m.dir.path().join("hose-web-7-web-7");
    wait_until("the second rule's reaction", || file.exists());
    assert!(m.metric("reflex_events_internal_total").unwrap() >= 1.0);
}

#[test]
fn reaction_loops_stop_at_the_hop_limit_and_are_counted() {
    let m = Manager::start(
        "loop",
        r#"
/loop/*:
  rules:
    - n:
        rule: rules.simple.ge
        threshold: 0
        fire: always
        reactions:
          - reactions.eventer.fire_event:
              tag: '{{ event.tag }}'
              data: {n: value}
"#,
    );
    m.send("/loop/a", &["n=1"], "h");
    wait_until("a loop drop on /metrics", || {
        m.metric(r#"reflex_events_dropped_total{reason="loop"}"#)
            .unwrap_or(0.0)
            >= 1.0
    });
    // Hops 0 to MAX_HOPS each fired once; the event of hop MAX_HOPS + 1 was refused.
    let fired = m
        .metric(r#"reflex_reactions_total{function="reactions.eventer.fire_event",outcome="ok"}"#)
        .unwrap();
    assert_eq!(fired, f64::from(MAX_HOPS) + 1.0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        m.metric(r#"reflex_reactions_total{function="reactions.eventer.fire_event",outcome="ok"}"#),
        Some(fired),
        "the loop goes on"
    );
    // The log names the loop's rule and the tag it fires.
    let stopped = "reaction loop stopped at the hop limit";
    wait_until("the loop's log line", || m.log_text().contains(stopped));
    let log = m.log_text();
    let line = log.lines().find(|l| l.contains(stopped)).unwrap();
    assert!(line.contains("rule=n"), "{line}");
    assert!(line.contains("tag=/loop/a"), "{line}");
}

#[test]
fn plugins_get_args_and_event_as_json() {
    let dir = Scratch::new("plugin");
    dir.executable(
        "plugins/reactions/test/record",
        "#!/bin/sh\ncat > \"$(dirname \"$0\")/input.json\"\necho recorded\nexit 3\n",
    );
    let m = Manager::start_in(
        dir,
        r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
        reactions:
          - reactions.test.record:
              machine_id: originating_host
              sizes: [1, two]
"#,
    );
    m.send("/client/load/web-1", &["load_avg=31.5"], "web-1");
    let input = m.dir.path().join("plugins/reactions/test/input.json");
    wait_until("the plugin's failure to be counted", || {
        m.metric(r#"reflex_reactions_total{function="reactions.test.record",outcome="error"}"#)
            == Some(1.0)
    });
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(input).unwrap()).unwrap();
    assert_eq!(
        json["args"],
        serde_json::json!({"machine_id": "web-1", "sizes": [1, "two"]})
    );
    assert_eq!(json["event"]["tag"], "/client/load/web-1");
    assert_eq!(json["event"]["source"], "web-1");
    assert_eq!(json["event"]["data"]["load_avg"], 31.5);
    assert_eq!(json["rule"], "load_avg");
    assert_eq!(json["register"], 31.5);
}

#[test]
fn invalid_rulebooks_stop_the_manager_with_positions() {
    let dir = Scratch::new("invalid");
    let book = dir.path().join("bad.yml");
    std::fs::write(
        &book,
        "/a/*:\n  rules:\n    - x:\n        rule: rules.simple.gtt\n        threshold: 1\n",
    )
    .unwrap();
    let out = reflex()
        .arg("manager")
        .arg("--rules")
        .arg(&book)
        .args(["--metrics", "off"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yml:4:"), "{err}");
    assert!(err.contains("rules.simple.gt"), "{err}");
}

/// A SUB socket on the Publisher, subscribed to `topics`.
struct Subscriber {
    _ctx: zmq::Context,
    sub: zmq::Socket,
}

impl Subscriber {
    fn new(endpoint: &str, topics: &[&str]) -> Subscriber {
        let ctx = zmq::Context::new();
        let sub = ctx.socket(zmq::SUB).unwrap();
        sub.set_linger(0).unwrap();
        sub.set_reconnect_ivl(50).unwrap();
        for t in topics {
            let mut topic = t.as_bytes().to_vec();
            topic.push(0);
            sub.set_subscribe(&topic).unwrap();
        }
        sub.connect(endpoint).unwrap();
        Subscriber { _ctx: ctx, sub }
    }

    /// The next action whose id is not in `seen`, with its topic.
    fn next_action(&self, seen: &[u64]) -> (String, Action) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let mut items = [self.sub.as_poll_item(zmq::POLLIN)];
            if zmq::poll(&mut items, 100).unwrap() == 0 {
                continue;
            }
            let frames = self.sub.recv_multipart(0).unwrap();
            assert_eq!(frames.len(), 2, "two frames: topic, envelope");
            let topic = String::from_utf8(frames[0].clone()).unwrap();
            let Body::Action(a) = wire::decode(&frames[1]).unwrap().envelope.body else {
                panic!("not an action");
            };
            if !seen.contains(&a.id) {
                return (topic, a);
            }
        }
        panic!("no action within {PATIENCE:?}");
    }
}

const REMOTE: &str = r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
        fire: always
        reactions:
          - reactions.actor.run:
              target: test-actor
              argv: [systemctl, restart, '{{ event.source }}']
"#;

#[test]
fn actions_reach_the_publisher_and_survive_its_crash() {
    let m = Manager::start("publisher", REMOTE);
    let sub = Subscriber::new(&m.publish, &["test-actor"]);
    m.send("/client/load/web-1", &["load_avg=30"], "web-1");
    let (topic, first) = sub.next_action(&[]);
    assert_eq!(topic, "test-actor\0");
    assert_eq!(first.target.as_str(), "test-actor");
    assert_eq!(first.function.as_str(), "reactions.actor.run");
    assert_eq!(first.source.as_str(), "manager");
    assert!(first.expires > first.time);
    let argv: Vec<String> = first.args_named("argv").map(|v| v.to_string()).collect();
    assert_eq!(argv, ["systemctl", "restart", "web-1"]);

    let old = m.metric("reflex_publisher_pid").unwrap() as u32;
    signal(old, libc::SIGKILL);
    // Sent while the Publisher is down or restarting: queued, then delivered.
    m.send("/client/load/web-2", &["load_avg=31"], "web-2");
    wait_until("the publisher's restart", || {
        let pid = m.metric("reflex_publisher_pid").unwrap_or(0.0) as u32;
        m.metric("reflex_publisher_restarts_total").unwrap_or(0.0) >= 1.0 && pid != 0 && pid != old
    });
    let (_, second) = sub.next_action(&[first.id]);
    assert_eq!(
        second.args_named("argv").nth(2),
        Some(&Value::str("web-2").unwrap())
    );
    assert!(second.id > first.id);
    assert!(m.log_text().contains("publisher exited; restarting"));

    // Stopping the Manager stops its Publisher: nothing is left behind.
    let publisher = m.metric("reflex_publisher_pid").unwrap() as u32;
    drop(m);
    wait_until("the publisher to stop with the manager", || {
        !alive(publisher)
    });
}

#[test]
fn glob_targets_expand_to_known_actors() {
    let m = Manager::start(
        "glob",
        &REMOTE.replace("target: test-actor", "target: 'web-*'"),
    );
    let sub = Subscriber::new(&m.publish, &["web-1", "web-2", "db-1", "*"]);
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1000).unwrap();
    push.connect(&m.events).unwrap();
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    for id in ["web-1", "web-2", "db-1"] {
        let n = wire::encode(&Envelope::new(Heartbeat::new(id).unwrap()), &mut buf).unwrap();
        push.send(&buf[..n], 0).unwrap();
    }
    wait_until("three known actors", || {
        m.metric("reflex_known_actors") == Some(3.0)
    });
    m.send("/client/load/web-1", &["load_avg=30"], "web-1");
    let (t1, a1) = sub.next_action(&[]);
    let (t2, a2) = sub.next_action(&[]);
    let mut got = [(t1, a1.target.to_string()), (t2, a2.target.to_string())];
    got.sort();
    assert_eq!(
        got,
        [
            ("web-1\0".to_string(), "web-1".to_string()),
            ("web-2\0".to_string(), "web-2".to_string())
        ]
    );
    assert_eq!(a1.id, a2.id, "one action, one copy per actor");
    assert_eq!(m.metric("reflex_actions_sent_total"), Some(2.0));
}

#[test]
fn results_become_events_and_stop_retries() {
    let rules = format!(
        "{REMOTE}
/reflex/result/*:
  rules:
    - code:
        rule: rules.simple.eq
        threshold: 0
        reactions:
          - reactions.exec.run:
              argv: [touch, '{{dir}}/result-{{{{ event.source }}}}-{{{{ event.data.output }}}}']
"
    );
    let m = Manager::start("result", &rules);
    let sub = Subscriber::new(&m.publish, &["test-actor"]);
    m.send("/client/load/web-1", &["load_avg=30"], "web-1");
    let (_, action) = sub.next_action(&[]);
    wait_until("the action to wait for its result", || {
        m.metric(r#"reflex_queue_depth{queue="actions_unacked"}"#) == Some(1.0)
    });

    let mut result =
        wire::ActionResult::new(action.id, "reactions.actor.run", "test-actor", true, 0).unwrap();
    result.set_output("restarted");
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1000).unwrap();
    push.connect(&m.events).unwrap();
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    let n = wire::encode(&Envelope::new(result), &mut buf).unwrap();
    push.send(&buf[..n], 0).unwrap();

    let file = m.dir.path().join("result-test-actor-restarted");
    wait_until("the rule on the result event", || file.exists());
    wait_until("the action to be acknowledged", || {
        m.metric(r#"reflex_queue_depth{queue="actions_unacked"}"#) == Some(0.0)
    });
    assert_eq!(m.metric("reflex_results_received_total"), Some(1.0));
}
