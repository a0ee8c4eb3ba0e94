//! Attacks and faults against the real `reflex` binary: what an attacker or a careless operator
//! does must be refused, bounded or survived, each test written as the attack.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reflex_tests::Scratch;
use reflex_tests::standalone::reflex;

const RULES: &str = "
/client/load/*:
  rules:
    - n:
        rule: rules.simple.gt
        threshold: 0
        reactions: [reactions.log.print: {}]
";

fn keys_gen(args: &[&str]) {
    let out = reflex().args(["keys", "gen"]).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs a secure Manager on `dir`'s keys and trust directory until it exits; returns its
/// failure and its stderr (it must refuse before binding anything).
fn start_refused(dir: &Scratch) -> String {
    let book = dir.write("rules.yml", RULES);
    let out = reflex()
        .arg("manager")
        .arg("--rules")
        .arg(&book)
        .args(["--metrics", "off", "--events", "tcp://127.0.0.1:0"])
        .args([
            "--publish",
            "tcp://127.0.0.1:0",
            "--watch",
            "tcp://127.0.0.1:0",
        ])
        .arg("--key")
        .arg(dir.path().join("keys/manager.key"))
        .arg("--trust")
        .arg(dir.path().join("trust"))
        .arg("--feed")
        .arg(format!("ipc://{}/feed.ipc", dir.path().display()))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the Manager started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn trust_files_others_may_write_are_refused_at_start_with_the_chmod_to_run() {
    let dir = Scratch::new("strict-modes");
    let keys = dir.path().join("keys");
    let trust = dir.path().join("trust");
    keys_gen(&["--out", keys.to_str().unwrap(), "--name", "manager"]);
    keys_gen(&["--out", keys.to_str().unwrap(), "--name", "web-1"]);
    std::fs::create_dir_all(&trust).unwrap();
    chmod(&trust, 0o755);
    std::fs::copy(keys.join("web-1.pub"), trust.join("web-1.pub")).unwrap();

    // Anyone may add a key to the trust directory.
    chmod(&trust, 0o777);
    let err = start_refused(&dir);
    assert!(
        err.contains("trust directory") && err.contains(&format!("chmod go-w {}", trust.display())),
        "{err}"
    );
    // Sticky does not help: a file anyone adds is still a key the Manager would trust.
    chmod(&trust, 0o1777);
    assert!(start_refused(&dir).contains("chmod go-w"));
    chmod(&trust, 0o755);

    // Anyone may rewrite an agent's public key.
    let public = trust.join("web-1.pub");
    chmod(&public, 0o666);
    let err = start_refused(&dir);
    assert!(
        err.contains(&format!("chmod go-w {}", public.display())),
        "{err}"
    );
    chmod(&public, 0o644);

    // Anyone may replace the Manager's own key.
    chmod(&keys, 0o777);
    let err = start_refused(&dir);
    assert!(
        err.contains(&format!("chmod go-w {}", keys.display())),
        "{err}"
    );
    chmod(&keys, 0o700);

    // Once fixed, the same keys load and the Manager comes up.
    let book = dir.write("rules.yml", RULES);
    let mut child = reflex()
        .arg("manager")
        .arg("--rules")
        .arg(&book)
        .args(["--metrics", "off", "--events", "tcp://127.0.0.1:0"])
        .args([
            "--publish",
            "tcp://127.0.0.1:0",
            "--watch",
            "tcp://127.0.0.1:0",
        ])
        .arg("--key")
        .arg(keys.join("manager.key"))
        .arg("--trust")
        .arg(&trust)
        .arg("--feed")
        .arg(format!("ipc://{}/feed.ipc", dir.path().display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut seen = String::new();
    use std::io::BufRead;
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("manager ready") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("manager ready"), "{seen}");
}
