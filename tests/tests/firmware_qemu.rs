//! The example firmware (agent-embedded/examples/qemu) running in QEMU (mps2-an386), its UART
//! on a pseudo-terminal: on its own, and joined to a real Manager by the real serial gateway.
//!
//! The test builds the firmware itself (`cargo build --release` in the example, into
//! `target/firmware`). It is skipped, saying why, only when `qemu-system-arm` or the
//! `thumbv7em-none-eabihf` target is not installed.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use reflex_core::frame::EnvelopeDeframer;
use reflex_core::wire::{self, Body};
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

/// Builds the firmware once for all tests of this file; `None` (after saying why) when the
/// tools are missing.
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
    let manager = Manager::start(&dir, &rules, &[]);
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
    // The device's events reach the Manager, stamped with wall-clock time ...
    let temp = manager
        .watch
        .wait_for("/device/sensor/temp/qemu-1", |_| true);
    assert_eq!(temp.source.as_str(), DEVICE, "{}", explain());
    assert!(temp.time > 1_000_000_000_000);
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
}
