//! `reflex completions` and `reflex man` as a packager runs them: the built binary, its
//! output checked by the shell that reads it and against the commands the binary has.

use std::path::PathBuf;
use std::process::Command;

/// Every subcommand a user can type; `publisher` is hidden and must stay out.
const COMMANDS: &[&str] = &[
    "check",
    "manager",
    "send",
    "watch",
    "test",
    "reload",
    "demo",
    "keys",
    "completions",
    "man",
];

fn reflex(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .output()
        .expect("reflex runs");
    assert!(
        out.status.success(),
        "reflex {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reflex-man-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

#[test]
fn bash_completes_subcommands_and_flags_from_the_generated_script() {
    let dir = scratch("bash");
    let script = dir.join("reflex.bash");
    std::fs::write(&script, reflex(&["completions", "bash"])).expect("the script");
    // Complete `reflex ma` and `reflex manager --ru` the way bash's `complete -F` would.
    let probe = format!(
        r#"source {script}
complete_words() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=();
    _reflex reflex "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}";
    printf '%s\n' "${{COMPREPLY[@]}}"; }}
complete_words reflex ma
echo --
complete_words reflex manager --ru
echo --
complete_words reflex ''"#,
        script = script.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parts: Vec<Vec<&str>> = text.split("--\n").map(|p| p.lines().collect()).collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert_eq!(parts[0], ["manager", "man"], "{text}");
    assert_eq!(parts[1], ["--rules"], "{text}");
    for command in COMMANDS {
        assert!(parts[2].contains(command), "{command} missing: {text}");
    }
    assert!(!parts[2].contains(&"publisher"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_shell_gets_a_script_naming_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = reflex(&["completions", shell]);
        for command in COMMANDS {
            assert!(script.contains(command), "{shell}: {command} missing");
        }
    }
}

#[test]
fn man_writes_one_page_per_visible_command() {
    let dir = scratch("pages");
    let listed = reflex(&["man", "--out", dir.to_str().expect("a UTF-8 path")]);
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .expect("the pages")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    pages.sort();
    let mut expected: Vec<String> = COMMANDS.iter().map(|c| format!("reflex-{c}.1")).collect();
    expected.extend(["reflex.1".to_string(), "reflex-keys-gen.1".to_string()]);
    expected.sort();
    assert_eq!(pages, expected);
    assert_eq!(listed.lines().count(), expected.len(), "{listed}");
    let version = env!("CARGO_PKG_VERSION");
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page)).expect("a page");
        let name = page.trim_end_matches(".1");
        assert!(
            text.contains(&format!(".TH {name} 1  \"{name} {version}\"")),
            "{page}: {}",
            text.lines().take(4).collect::<Vec<_>>().join("\n")
        );
    }
    let manager = std::fs::read_to_string(dir.join("reflex-manager.1")).expect("a page");
    for flag in ["rules", "trust", "insecure", "state"] {
        assert!(
            manager.contains(&format!("\\-\\-{flag}")),
            "--{flag} missing"
        );
    }
    // Without --out: reflex(1) alone, the same page.
    let root = std::fs::read_to_string(dir.join("reflex.1")).expect("a page");
    assert_eq!(reflex(&["man"]), root);
    let _ = std::fs::remove_dir_all(dir);
}
