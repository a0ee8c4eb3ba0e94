//! `reflex demo` as a newcomer runs it: it prints the dashboard's address and a legend, keeps
//! its rulebook with `--keep` (one that `reflex check` accepts), and ends with a summary of
//! the Manager's counters.

use reflex_tests::Scratch;
use reflex_tests::standalone::reflex;

#[test]
fn the_demo_prints_its_dashboard_legend_and_summary_and_keeps_its_rulebook() {
    let dir = Scratch::new("http-demo");
    let keep = dir.path().join("demo");
    let out = reflex()
        .args(["demo", "--duration", "8", "--keep"])
        .arg(&keep)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dashboard = text
        .lines()
        .find_map(|l| l.strip_prefix("reflex demo: dashboard on http://"))
        .expect("the dashboard's address");
    assert!(dashboard.starts_with("127.0.0.1:"), "{dashboard}");
    assert!(text.contains("reflex demo: what to watch for"), "{text}");
    let summary = text
        .lines()
        .find_map(|l| l.strip_prefix("reflex demo: summary: "))
        .expect("a summary");
    let counts: Vec<(&str, u64)> = summary
        .split(", ")
        .map(|part| {
            let (n, what) = part.split_once(' ').expect("COUNT WHAT");
            (what, n.parse().expect("a count"))
        })
        .collect();
    let names: Vec<&str> = counts.iter().map(|(w, _)| *w).collect();
    assert_eq!(
        names,
        ["events", "firings", "actions", "results"],
        "{summary}"
    );
    assert!(counts[0].1 > 0, "events were counted: {summary}");
    assert!(text.contains("kept "), "{text}");
    let check = reflex()
        .arg("check")
        .arg(keep.join("rules"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the kept rulebook checks: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(keep.join("keys/manager.key").exists());
}
