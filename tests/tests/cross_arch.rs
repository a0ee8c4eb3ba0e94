//! The static binaries of another architecture (scripts/build-static), run under qemu-user
//! against a native Manager that signs its actions and believes only the agent's key: the
//! emulated `reflex keys gen` makes the agent's key pair, the emulated agent's beacon sends an
//! event, a rule fires, the emulated Actor runs the action and its result comes back.
//!
//! `scripts/cross-e2e` runs it once per architecture with `REFLEX_CROSS_ARCH` set to
//! `aarch64` or `armv7`: the binaries are then read from `target/static/<arch>/` and started
//! with `qemu-aarch64` or `qemu-arm`. Without that variable the test has nothing to run and
//! says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use reflex_core::Value;
use reflex_tests::{Manager, Proc, Scratch, binary, wait_until};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// `qemu-user` running `bin` of `arch` from target/static.
fn emulated(arch: &str, bin: &str) -> Command {
    let qemu = match arch {
        "aarch64" => "qemu-aarch64",
        "armv7" => "qemu-arm",
        other => panic!("REFLEX_CROSS_ARCH={other}: expected aarch64 or armv7"),
    };
    let path = workspace().join("target/static").join(arch).join(bin);
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-static {arch}",
        path.display()
    );
    let mut cmd = Command::new(qemu);
    cmd.arg(path);
    cmd
}

#[test]
fn an_emulated_agent_fires_a_rule_and_runs_the_signed_action() {
    let Ok(arch) = std::env::var("REFLEX_CROSS_ARCH") else {
        eprintln!("skipped: REFLEX_CROSS_ARCH is not set (scripts/cross-e2e sets it)");
        return;
    };
    let id = format!("cross-{arch}");
    let dir = Scratch::new(&id);
    let keys = dir.path().join("keys");
    let out = Command::new(binary("reflex"))
        .args(["keys", "gen", "--name", "manager", "--out"])
        .arg(&keys)
        .output()
        .expect("reflex keys gen runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The agent's key pair, made by the emulated `reflex`.
    let out = emulated(&arch, "reflex")
        .args(["keys", "gen", "--name", &id, "--out"])
        .arg(&keys)
        .output()
        .expect("the emulated reflex runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trust = dir.path().join("trust");
    std::fs::create_dir_all(&trust).expect("the trust directory");
    std::fs::copy(
        keys.join(format!("{id}.pub")),
        trust.join(format!("{id}.pub")),
    )
    .expect("the agent's public key");

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
    let m = Manager::start_secure(
        &dir,
        &rules,
        &[
            "--key",
            keys.join("manager.key").to_str().expect("a UTF-8 path"),
            "--trust",
            trust.to_str().expect("a UTF-8 path"),
        ],
    );
    let config = dir.write(
        "agent.yml",
        &format!(
            "key: {keys}/{id}.key\nmanager_key: {keys}/manager.pub\n\
             allow:\n  run:\n    - [touch, '{{dir}}/ran-on-*']\n\
             beacons:\n  - kind: memory\n    interval_s: 1\n",
            keys = keys.display()
        ),
    );
    let mut cmd = emulated(&arch, "reflex-agent");
    cmd.args([
        "--id",
        &id,
        "--manager",
        &m.events,
        "--publisher",
        &m.publish,
    ])
    .arg("--config")
    .arg(&config)
    .env("RUST_LOG", "info");
    let log = dir.path().join("agent.log");
    let mut agent = Proc::spawn(cmd, &log);
    let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // The emulated beacon's signed event reached the Manager ...
    let tag = format!("/client/mem/{id}");
    wait_until("the emulated agent's event", || {
        assert!(
            !agent.exited(),
            "the emulated agent exited: {}",
            agent_log()
        );
        !m.watch.seen(&tag).is_empty()
    });
    // ... the rule fired and the emulated Actor ran the signed action ...
    let ran = dir.path().join(format!("ran-on-{id}"));
    wait_until("the emulated Actor's command", || ran.exists());
    // ... and its result came back, signed by the agent.
    let result = m.watch.wait_for(&format!("/reflex/result/{id}"), |_| true);
    assert_eq!(result.get("ok"), Some(&Value::Bool(true)), "{result:?}");
    assert_eq!(result.source.as_str(), id, "{result:?}");
    assert_eq!(
        m.metric("reflex_events_dropped_total{reason=\"bad_signature\"}")
            .unwrap_or(0.0),
        0.0,
        "{}",
        m.log_text()
    );
}
