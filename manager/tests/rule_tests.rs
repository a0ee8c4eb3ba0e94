//! `reflex test` as a user runs it: the built binary on every example rulebook with the tests
//! it ships, on a deliberately wrong expectation, and with `--explain`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/examples"))
}

fn reflex_test(args: &[PathBuf]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reflex"))
        .arg("test")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// Every example rulebook, and the test file that ships with it.
fn example_pairs() -> Vec<(PathBuf, PathBuf)> {
    let mut pairs = Vec::new();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            let name = path.file_name().unwrap().to_owned();
            pairs.push((path, examples().join("tests").join(name)));
        }
    }
    pairs.push((
        examples().join("seed/load-simple.yml"),
        examples().join("tests/load-simple.yml"),
    ));
    pairs.sort();
    pairs
}

#[test]
fn every_example_rulebook_passes_its_tests() {
    let pairs = example_pairs();
    assert_eq!(pairs.len(), 4, "{pairs:?}");
    for (rulebook, tests) in pairs {
        assert!(tests.exists(), "{} ships no tests", rulebook.display());
        let (out, stdout) = reflex_test(&[rulebook.clone(), tests]);
        assert!(out.status.success(), "{}: {stdout}", rulebook.display());
        assert!(stdout.starts_with("ok: "), "{stdout}");
        assert!(stdout.ends_with(", 0 failed\n"), "{stdout}");
    }
}

#[test]
fn a_wrong_expectation_fails_with_its_line() {
    let dir = reflex_tests::Scratch::new("rule-tests-wrong");
    let tests = dir.write(
        "wrong.yml",
        "- case: wrong on purpose\n  events:\n    - at: 0\n      tag: /client/load/web-1\n      source: web-1\n      data: {load_avg: 30, io_avg: 0}\n      expect:\n        - fires: io_avg\n    - at: 1\n      tag: /client/load/web-1\n      source: web-1\n      data: {load_avg: 1, io_avg: 0}\n      expect: nothing\n",
    );
    let (out, stdout) = reflex_test(&[examples().join("load.yml"), tests.clone()]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let file = tests.display().to_string();
    assert!(
        stdout.contains(&format!(
            "{file}:8:11: expected io_avg to fire, got load_avg (web-1)\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{file}:8:9: expected only io_avg to fire, got load_avg (web-1) as well\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("FAILED: 1 cases, 2 events, 3 expectations, 2 failed\n"),
        "{stdout}"
    );
}

#[test]
fn explain_says_why_each_rule_fired_or_not() {
    let (out, stdout) = Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(["test", "--explain"])
        .arg(examples().join("load.yml"))
        .arg(examples().join("tests/load.yml"))
        .output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout).into_owned();
            (o, s)
        })
        .unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "  load_avg: sample load_avg=1.5; register 1.5 > 20 is false; OR io_avg (50 > 20) is true => fired\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("=> not fired: still true since an earlier firing (edge)\n"),
        "{stdout}"
    );
}

#[test]
fn a_broken_test_file_is_refused_with_its_place() {
    let dir = reflex_tests::Scratch::new("rule-tests-broken");
    let tests = dir.write("broken.yml", "- case: x\n  events:\n    - tga: /t\n");
    let (out, stdout) = reflex_test(&[examples().join("load.yml"), tests.clone()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.starts_with(&format!("{}:3:7: unknown key `tga`", tests.display())),
        "{stdout}"
    );
}
