//! The agent on the bus: heartbeats, beacon events, restarts of its peers, signals.

use std::time::{Duration, Instant};

use reflex_core::Value;
use reflex_core::wire::Body;
use reflex_tests::bus::{Agent, Bus, WAIT, run_action};

#[test]
fn heartbeats_arrive_with_increasing_seq() {
    let bus = Bus::new();
    let _agent = Agent::start(&bus, "hb-1", "heartbeat_s: 1\n");
    let mut seqs = Vec::new();
    bus.recv_until(WAIT, |b| {
        if let Body::Heartbeat(h) = b {
            assert_eq!(h.source.as_str(), "hb-1");
            assert!(h.time > 0);
            seqs.push(h.seq);
        }
        (seqs.len() == 3).then_some(())
    })
    .expect("three heartbeats");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn a_load_beacon_reports() {
    let bus = Bus::new();
    let _agent = Agent::start(
        &bus,
        "beacon-1",
        "beacons:\n  - kind: load\n    interval_s: 0.2\n",
    );
    let mut events = Vec::new();
    bus.recv_until(WAIT, |b| {
        if let Body::Event(e) = b {
            events.push(e);
        }
        (events.len() == 2).then_some(())
    })
    .expect("two load events");
    for e in &events {
        assert_eq!(e.tag.as_str(), "/client/load/beacon-1");
        assert_eq!(e.source.as_str(), "beacon-1");
        assert!(e.time > 0);
        for field in ["load_avg", "load5", "load15", "io_avg"] {
            assert!(
                matches!(e.get(field), Some(Value::Float(_))),
                "{field} in {e:?}"
            );
        }
    }
    assert!(events[0].seq < events[1].seq);
}

#[test]
fn the_agent_survives_publisher_and_manager_restarts() {
    let mut bus = Bus::new();
    let agent = Agent::ready(
        &mut bus,
        "re-1",
        "heartbeat_s: 1\nallow:\n  run:\n    - [touch, \"$DIR/*\"]\n",
    );
    let touch = |name: &str| agent.path(name).to_str().unwrap().to_owned();
    assert!(
        bus.perform(&run_action(1, "re-1", &["touch", &touch("a")]))
            .ok
    );

    bus.restart_publisher();
    bus.wait_subscribed(b"re-1\0");
    assert!(
        bus.perform(&run_action(2, "re-1", &["touch", &touch("b")]))
            .ok
    );

    bus.restart_manager();
    // Results and heartbeats find the new Manager.
    bus.recv_until(WAIT, |b| matches!(b, Body::Heartbeat(_)).then_some(()))
        .expect("a heartbeat after the manager restarted");
    assert!(
        bus.perform(&run_action(3, "re-1", &["touch", &touch("c")]))
            .ok
    );
    assert!(agent.path("c").exists());
}

#[test]
fn sigterm_and_sigint_stop_the_agent_cleanly() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut bus = Bus::new();
        let mut agent = Agent::ready(
            &mut bus,
            "sig-1",
            "beacons:\n  - kind: memory\n    interval_s: 60\n",
        );
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(agent.child.id() as libc::pid_t, signal);
        }
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = agent.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the agent did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status:?}");
        assert!(agent.log().contains("stopped"), "{}", agent.log());
    }
}

#[test]
fn a_bad_configuration_is_an_error_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yml");
    std::fs::write(
        &config,
        "id: x\nallow:\n  run:\n    - [df, -h]\n  fire: []\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reflex-agent"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:5:3: allow: unknown field `fire`",
            config.display()
        )),
        "{stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reflex-agent"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent id"));
}
