//! The example firmware (agent-embedded/examples/qemu) running in QEMU (mps2-an386), its UART
//! on a pseudo-terminal: on its own, and joined to a real Manager by the real serial gateway.
//!
//! The test builds the firmware itself (`cargo build --release` in the example, into
//! `target/firmware`), keyed: `reflex keys gen --mac` makes the device's HMAC key (kept in
//! `target/firmware/device-key`) and `REFLEX_DEVICE_KEY` puts it into the image. The Manager
//! runs with `--key` and `--trust`, not in lab mode. The test is skipped, saying why, only
//! when `qemu-system-arm` or the `thumbv7em-none-eabihf` target is not installed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use reflex_core::auth::{self, KeyFile, MAC_LEN, Verifier};
use reflex_core::frame::{self, EnvelopeDeframer};
use reflex_core::wire::{self, Action, Body, Envelope, MAX_ENVELOPE_LEN};
use reflex_core::{Event, Value};
use reflex_tests::{Manager, PATIENCE, Proc, Scratch, binary, wait_until};

const DEVICE: &str = "qemu-1";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Why the test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let qemu = Command::new("qemu-system-arm").arg("--version").output();
    if !qemu.is_ok_and(|o| o.status.success()) {
        return Some("qemu-system-arm is not installed (apt-get install qemu-system-arm)".into());
    }
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let target = Path::new(&sysroot).join("lib/rustlib/thumbv7em-none-eabihf");
    if !target.exists() {
        return Some(
            "the thumbv7em-none-eabihf target is not installed \
             (rustup target add thumbv7em-none-eabihf)"
                .into(),
        );
    }
    None
}

/// Runs `reflex keys gen` with `args`.
fn keys_gen(args: &[&str], out: &Path) {
    let status = Command::new(binary("reflex"))
        .args(["keys", "gen"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("reflex keys gen runs");
    assert!(
        status.status.success(),
        "reflex keys gen {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// The device's key file, made once with `reflex keys gen --mac` and kept, so the firmware is
/// not rebuilt for a new key on every run.
fn device_key_file() -> PathBuf {
    let dir = workspace().join("target/firmware/device-key");
    let path = dir.join(format!("{DEVICE}.mac"));
    if !path.exists() {
        keys_gen(&["--mac", "--name", DEVICE], &dir);
    }
    path
}

/// What the device's tags verify with.
fn device_verifier() -> Verifier {
    let text = std::fs::read_to_string(device_key_file()).expect("the device key");
    KeyFile::parse(&text)
        .and_then(|k| k.verifier())
        .expect("a device key file")
}

/// Builds the firmware once for all tests of this file, with the device key; `None` (after
/// saying why) when the tools are missing.
fn firmware() -> Option<&'static Path> {
    static ELF: OnceLock<Option<PathBuf>> = OnceLock::new();
    ELF.get_or_init(|| {
        if let Some(why) = missing_tools() {
            // CI installs both: there a missing tool is a failure, not a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI cannot run the firmware: {why}"
            );
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let example = workspace().join("agent-embedded/examples/qemu");
        let target_dir = workspace().join("target/firmware");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(&example)
            .args(["build", "--release", "--target-dir"])
            .arg(&target_dir)
            // The example's own .cargo/config.toml decides the target and the linker script.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("REFLEX_DEVICE_KEY", device_key_file())
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "firmware build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(target_dir.join("thumbv7em-none-eabihf/release/reflex-firmware-qemu"))
    })
    .as_deref()
}

/// QEMU running the firmware, UART0 on a new pseudo-terminal.
struct Qemu {
    _proc: Proc,
    pty: PathBuf,
}

impl Qemu {
    fn start(dir: &Scratch, elf: &Path) -> Qemu {
        let log = dir.path().join("qemu.log");
        let mut cmd = Command::new("qemu-system-arm");
        cmd.args([
            "-M",
            "mps2-an386",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "pty",
            // The keyed firmware asks the host for the time of its boot (its boot number).
            "-semihosting-config",
            "enable=on,target=native",
        ])
        .arg("-kernel")
        .arg(elf);
        // QEMU names the pseudo-terminal on stdout; keep both streams in the log.
        let file = File::create(&log).expect("a log file");
        cmd.stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("the log file"))
            .stderr(file);
        let mut proc = Proc(cmd.spawn().expect("QEMU starts"));
        let mut pty = None;
        wait_until("QEMU's pseudo-terminal", || {
            assert!(!proc.exited(), "QEMU exited: {}", read(&log));
            pty = read(&log)
                .split_whitespace()
                .find(|w| w.starts_with("/dev/pts/"))
                .map(PathBuf::from);
            pty.is_some()
        });
        Qemu {
            _proc: proc,
            pty: pty.expect("found above"),
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Opens the device's line directly, raw.
fn open_raw(path: &Path) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .expect("the pseudo-terminal opens");
    // SAFETY: tcgetattr/cfmakeraw/tcsetattr on a descriptor this test owns, into a termios
    // it owns.
    unsafe {
        use std::os::fd::AsRawFd;
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(file.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        t.c_cc[libc::VMIN] = 0;
        t.c_cc[libc::VTIME] = 1;
        assert_eq!(libc::tcsetattr(file.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    file
}

#[test]
fn an_on_device_rule_fires_with_no_host() {
    let Some(elf) = firmware() else { return };
    let dir = Scratch::new("firmware-alone");
    let qemu = Qemu::start(&dir, elf);
    let mut line = open_raw(&qemu.pty);
    let mut deframer = EnvelopeDeframer::new();
    let mut seen: Vec<Event> = Vec::new();
    let mut seqs: Vec<u64> = Vec::new();
    let verifier = device_verifier();
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 1024];
    // The simulated temperature crosses 35 °C within 9 s of boot and every 8 s after; the
    // rulebook in flash sets the LED and the device reports it.
    let fired = loop {
        assert!(
            Instant::now() < deadline,
            "no on-device reaction; saw {seen:#?}"
        );
        let n = line.read(&mut buf).unwrap_or(0);
        let mut found = None;
        for &b in &buf[..n] {
            if let Some(Ok(payload)) = deframer.push(b) {
                if let Ok(d) = wire::decode(payload) {
                    // Everything the keyed device sends carries its key's tag.
                    assert_eq!(d.envelope.auth.len(), MAC_LEN);
                    assert!(auth::verify(&d, payload, &verifier).is_ok());
                    seqs.push(d.envelope.body.seq());
                    if let Body::Event(e) = d.envelope.body {
                        if e.tag.as_str() == "/device/reaction/qemu-1"
                            && e.get("rule") == Some(&Value::str("hot").unwrap())
                        {
                            found = Some(e.clone());
                        }
                        seen.push(e);
                    }
                }
            }
        }
        if let Some(e) = found {
            break e;
        }
    };
    assert_eq!(fired.source.as_str(), DEVICE);
    // Sequence numbers start at the boot's second in the high half and only grow.
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs[0] >> 32 > 1_700_000_000, "{seqs:?}");
    assert_eq!(
        fired.get("function"),
        Some(&Value::str("reactions.device.set_pin").unwrap())
    );
    assert_eq!(fired.get("ok"), Some(&Value::Bool(true)));
    // The beacons ran, and the device stays within its memory bar.
    assert!(
        seen.iter()
            .any(|e| e.tag.as_str() == "/device/uptime/qemu-1")
    );
    assert!(
        seen.iter()
            .any(|e| e.tag.as_str() == "/device/sensor/temp/qemu-1")
    );
    if let Some(m) = seen
        .iter()
        .find(|e| e.tag.as_str() == "/device/memory/qemu-1")
    {
        match m.get("ram_total") {
            Some(Value::Int(bytes)) => assert!(*bytes < 16 * 1024, "{m:?}"),
            other => panic!("ram_total: {other:?}"),
        }
    }
}

#[test]
fn device_events_reach_the_manager_and_its_action_comes_back_down() {
    let Some(elf) = firmware() else { return };
    let dir = Scratch::new("firmware-manager");
    // The Manager's catalog learns the device reaction the way it learns any plugin: an
    // executable at plugins/reactions/device/set_pin beside the rulebook. A reaction with a
    // target is sent to the Publisher, never run here.
    dir.write(
        "plugins/reactions/device/set_pin",
        "#!/bin/sh\necho 'performed by the device' >&2\nexit 2\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let marker = dir.path().join("plugins/reactions/device/set_pin");
        std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let rules = dir.write(
        "rules.yml",
        r#"
/device/sensor/temp/*:
  rules:
    - temp_c:
        rule: rules.simple.gt
        register: register.aggregate.last
        threshold: 33
        reactions:
          - reactions.device.set_pin:
              target: originating_host
              state: on
"#,
    );
    // Not in lab mode: the Manager signs with its own key and believes only the device's key.
    let keys = dir.path().join("keys");
    keys_gen(&["--name", "manager"], &keys);
    let trust = dir.path().join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    // The copy keeps the key file's mode 0600, which the Manager requires of a `.mac` file.
    std::fs::copy(device_key_file(), trust.join(format!("{DEVICE}.mac"))).unwrap();
    let manager = Manager::start_secure(
        &dir,
        &rules,
        &[
            "--key",
            keys.join("manager.key").to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ],
    );
    let qemu = Qemu::start(&dir, elf);
    let gateway_log = dir.path().join("gateway.log");
    let mut cmd = Command::new(binary("reflex-agent"));
    cmd.arg("gateway")
        .arg("--serial")
        .arg(&qemu.pty)
        .args([
            "--manager",
            &manager.events,
            "--publisher",
            &manager.publish,
        ])
        .args(["--id", "gw-qemu", "--stats-interval", "5"])
        .env("RUST_LOG", "info");
    let _gateway = Proc::spawn(cmd, &gateway_log);

    let explain = || {
        format!(
            "--- gateway ---\n{}\n--- manager ---\n{}",
            read(&gateway_log),
            manager.log_text()
        )
    };
    // The device's tagged events pass the Manager's check, forwarded byte for byte (so with
    // the device's own clock, not restamped) ...
    let temp = manager
        .watch
        .wait_for("/device/sensor/temp/qemu-1", |_| true);
    assert_eq!(temp.source.as_str(), DEVICE, "{}", explain());
    assert!(temp.time < 1_000_000_000_000);
    // ... the rule fires and its action goes to the device through the Publisher and the
    // gateway ...
    manager
        .watch
        .wait_for("/reflex/reaction/device/set_pin", |_| true);
    // ... which performs it and answers: the result reaches the Manager.
    let result = manager.watch.wait_for("/reflex/result/qemu-1", |_| true);
    assert_eq!(
        result.get("ok"),
        Some(&Value::Bool(true)),
        "{result:?}\n{}",
        explain()
    );
    assert_eq!(
        result.get("function"),
        Some(&Value::str("reactions.device.set_pin").unwrap())
    );
    // The on-device rules ran meanwhile, reported to the Manager like any event.
    manager.watch.wait_for("/device/reaction/qemu-1", |_| true);
    // Nothing from the device was refused.
    assert_eq!(
        manager
            .metric(r#"reflex_events_dropped_total{reason="bad_signature"}"#)
            .unwrap_or(0.0),
        0.0,
        "{}",
        explain()
    );

    // A forged event in the device's name, as the gateway would forward it, with a wrong
    // tag: dropped and counted.
    let mut forged = Event::new("/device/sensor/temp/qemu-1", DEVICE).unwrap();
    forged.push("temp_c", Value::Float(99.0)).unwrap();
    forged.seq = u64::MAX;
    let mut env = Envelope::new(forged);
    env.set_auth(&[0x5a; MAC_LEN]).unwrap();
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    let n = wire::encode(&env, &mut buf).unwrap();
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1_000).unwrap();
    push.connect(&manager.events).unwrap();
    push.send(&buf[..n], 0).unwrap();
    wait_until("the forged event counted as bad_signature", || {
        manager
            .metric(r#"reflex_events_dropped_total{reason="bad_signature"}"#)
            .unwrap_or(0.0)
            >= 1.0
    });
    assert!(
        manager
            .watch
            .seen("/device/sensor/temp/qemu-1")
            .iter()
            .all(|e| e.get("temp_c") != Some(&Value::Float(99.0)))
    );

    // Forged actions written onto the device's line, one with a wrong tag, one with none:
    // the device refuses both and answers neither, while its real results keep coming.
    let mut line = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&qemu.pty)
        .expect("the device's line");
    for (id, tag) in [(4_242u64, Some([0x5a; MAC_LEN])), (4_243, None)] {
        let mut a = Action::new(id, "reactions.device.set_pin", DEVICE).unwrap();
        a.seq = u64::MAX - id;
        a.push_arg("state", Value::str("off").unwrap()).unwrap();
        let mut env = Envelope::new(a);
        if let Some(tag) = tag {
            env.set_auth(&tag).unwrap();
        }
        let mut framed = [0u8; frame::MAX_ENVELOPE_FRAME_LEN + 1];
        let n = frame::encode_envelope(&env, &mut framed[1..]).unwrap();
        line.write_all(&framed[..n + 1]).unwrap();
    }
    let results_before = manager.watch.seen("/reflex/result/qemu-1").len();
    wait_until("a later result from the device", || {
        manager.watch.seen("/reflex/result/qemu-1").len() > results_before
    });
    let forged_ids = [Value::Int(4_242), Value::Int(4_243)];
    assert!(
        manager
            .watch
            .seen("/reflex/result/qemu-1")
            .iter()
            .all(|e| !e.get("id").is_some_and(|id| forged_ids.contains(id))),
        "a forged action was answered"
    );
}
