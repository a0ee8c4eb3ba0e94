//! `reflex check` as a user runs it: the built binary on the shipped examples and on a broken
//! rulebook.

use std::path::PathBuf;
use std::process::Command;

fn reflex() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
}

fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/examples"))
}

#[test]
fn valid_examples_print_one_line() {
    let out = reflex().arg("check").arg(examples()).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("ok: "));
    assert!(
        stdout.ends_with(": 3 files, 3 tag entries, 4 rules, 7 reactions\n"),
        "{stdout}"
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn several_rulebooks_sum_into_one_line() {
    let seed = examples().join("seed/load-simple.yml");
    let out = reflex()
        .arg("check")
        .arg(examples())
        .arg(&seed)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert_eq!(stdout.lines().count(), 1);
    assert!(
        stdout.ends_with(": 4 files, 4 tag entries, 5 rules, 9 reactions\n"),
        "{stdout}"
    );
}

#[test]
fn plugins_flag_replaces_the_default() {
    let seed = examples().join("load.yml");
    let empty = examples().join("no-such-plugins");
    let out = reflex()
        .args(["check", "--plugins"])
        .arg(&empty)
        .arg(&seed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("load.yml:13:13: unknown reaction `reactions.cloud.scale_up`"),
        "{stderr}"
    );
    let out = reflex()
        .args(["check", "--plugins"])
        .arg(&empty)
        .arg("--plugins")
        .arg(examples().join("plugins"))
        .arg(&seed)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn broken_rulebook_exits_1_with_positions() {
    let dir = std::env::temp_dir().join(format!("reflex-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.yml");
    std::fs::write(
        &file,
        "/t/*:\n  rules:\n    - r:\n        rule: rules.simple.gte\n        threshold: 1\n        colour: red\n",
    )
    .unwrap();
    let out = reflex().arg("check").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let shown = file.display();
    assert_eq!(
        stderr,
        format!(
            "{shown}:4:15: unknown rule function `rules.simple.gte`; did you mean \
             `rules.simple.gt`, `rules.simple.ge` or `rules.simple.lt`?\n\
             {shown}:6:9: unknown key `colour` in rule `r`; valid keys: rule, register, \
             threshold, period, field, group_by, fire, cooldown, reactions, chain\n"
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_rulebook_is_a_usage_error() {
    let out = reflex().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
