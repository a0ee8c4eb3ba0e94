//! Reliability across crashes and changes, with the real binaries: a Manager killed with
//! SIGKILL and restarted on the same `--state` keeps its registers; rulebook reloads (bad and
//! good); an Actor killed and restarted gets the actions sent while it was down, once; an
//! action unanswered when the Manager is killed is sent by the next run, or reported expired.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reflex_tests::standalone::{self, reflex, scrape, wait_until};
use reflex_tests::{Proc, Scratch, free_port, metric_in};
use reflex_tests::{alive, signal};

/// Whether `--help` of a command mentions `--insecure` (lab mode, needed to run unsigned).
fn has_insecure(mut cmd: Command) -> bool {
    cmd.arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--insecure"))
        .unwrap_or(false)
}

/// A Manager on fixed ports and a fixed `--state`, which can be killed and started again.
struct Node {
    /// First, so it is stopped before the directory is removed.
    proc: Option<Proc>,
    dir: Scratch,
    rules: PathBuf,
    state: PathBuf,
    events: String,
    publish: String,
    watch: String,
    metrics: String,
    /// Log files of each start, in order.
    logs: Vec<PathBuf>,
    /// More arguments of every start.
    extra: Vec<String>,
}

impl Node {
    fn new(name: &str, rules: &str) -> Node {
        let dir = Scratch::new(name);
        let book = dir.path().join("rules.yml");
        let node = Node {
            rules: book,
            state: dir.path().join("state"),
            events: format!("tcp://127.0.0.1:{}", free_port()),
            publish: format!("tcp://127.0.0.1:{}", free_port()),
            watch: format!("tcp://127.0.0.1:{}", free_port()),
            metrics: format!("127.0.0.1:{}", free_port()),
            logs: Vec::new(),
            extra: Vec::new(),
            proc: None,
            dir,
        };
        node.write_rules(rules);
        node
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the rulebook, `{dir}` replaced by the scratch directory.
    fn write_rules(&self, rules: &str) {
        let text = rules.replace("{dir}", &self.path().display().to_string());
        std::fs::write(&self.rules, text).unwrap();
    }

    /// Starts the Manager; returns once its metrics answer and its Publisher runs.
    fn start(&mut self) {
        let log = self.path().join(format!("manager-{}.log", self.logs.len()));
        let mut cmd = reflex();
        cmd.arg("manager").arg("--rules").arg(&self.rules);
        cmd.arg("--state").arg(&self.state);
        cmd.args(["--events", &self.events, "--publish", &self.publish]);
        cmd.args(["--watch", &self.watch, "--metrics", &self.metrics]);
        cmd.args(["--workers", "2"]);
        cmd.args(&self.extra);
        cmd.arg("--feed")
            .arg(format!("ipc://{}/feed.ipc", self.path().display()));
        if has_insecure({
            let mut c = reflex();
            c.arg("manager");
            c
        }) {
            cmd.arg("--insecure");
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.logs.push(log);
        self.proc = Some(Proc(child));
        wait_until("the manager's metrics and publisher", || {
            if let Some(Ok(Some(status))) = self.proc.as_mut().map(|p| p.0.try_wait()) {
                panic!("manager exited with {status}: {}", self.log());
            }
            self.metric("reflex_publisher_pid").unwrap_or(0.0) > 0.0
        });
    }

    /// SIGKILL, and waits until the Manager and its Publisher are gone.
    fn kill(&mut self) {
        let publisher = self.metric("reflex_publisher_pid").unwrap_or(0.0) as u32;
        let mut p = self.proc.take().expect("a running manager");
        signal(p.id(), libc::SIGKILL);
        let _ = p.0.wait();
        if publisher != 0 {
            wait_until("the orphaned publisher to stop", || !alive(publisher));
        }
    }

    fn pid(&self) -> u32 {
        self.proc.as_ref().expect("a running manager").id()
    }

    /// The log of the current (last) start.
    fn log(&self) -> String {
        self.logs
            .last()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .unwrap_or_default()
    }

    fn metric(&self, sample: &str) -> Option<f64> {
        metric_in(&scrape(&self.metrics)?, sample)
    }

    fn wait_metric(&self, sample: &str, at_least: f64) {
        wait_until(&format!("{sample} >= {at_least}"), || {
            self.metric(sample).unwrap_or(-1.0) >= at_least
        });
    }

    fn send(&self, tag: &str, fields: &[&str], source: &str) {
        let out = standalone::send(tag, fields, &["--source", source, "--to", &self.events]);
        assert!(
            out.status.success(),
            "reflex send failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Lines of a file in the scratch directory (empty when it does not exist).
    fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until `name` has `n` lines, then a little longer to see that no more come.
    fn expect_lines(&self, name: &str, n: usize) -> Vec<String> {
        wait_until(&format!("{n} lines in {name}"), || {
            self.lines(name).len() >= n
        });
        std::thread::sleep(Duration::from_millis(700));
        let lines = self.lines(name);
        assert_eq!(lines.len(), n, "{name}: {lines:?}\n{}", self.log());
        lines
    }
}

/// `count` fires when four `temp` samples are in its 10-minute window; `level` is an edge
/// rule on the last value.
const STATEFUL: &str = r#"
/sensor/*:
  rules:
    - temp:
        rule: rules.simple.ge
        register: register.aggregate.count
        threshold: 4
        period: 600
        reactions:
          - reactions.exec.run:
              argv: [sh, -c, 'echo "$1" >> {dir}/temp.txt', sh, '{{ register.value }}']
    - level:
        rule: rules.simple.gt
        register: register.aggregate.last
        threshold: 50
        period: 600
        reactions:
          - reactions.exec.run:
              argv: [sh, -c, 'echo "$1" >> {dir}/level.txt', sh, '{{ value }}']
"#;

#[test]
fn a_killed_manager_restarts_with_its_registers() {
    let mut node = Node::new("restart", STATEFUL);
    node.start();
    node.send("/sensor/a", &["temp=1"], "a");
    node.send("/sensor/a", &["temp=2"], "a");
    node.send("/sensor/a", &["level=80"], "a");
    assert_eq!(node.expect_lines("level.txt", 1), ["80"]);
    assert!(node.lines("temp.txt").is_empty());
    // Three updates, logged and synced: then the crash.
    node.wait_metric("reflex_state_records_total", 3.0);
    node.kill();

    node.start();
    assert!(node.log().contains("registers restored"), "{}", node.log());
    node.wait_metric("reflex_state_restored_slots", 2.0);
    // Still high: the edge rule was armed before the crash and stays quiet.
    node.send("/sensor/a", &["level=90"], "a");
    // Two samples before the crash and two after make four.
    node.send("/sensor/a", &["temp=3"], "a");
    assert!(node.lines("temp.txt").is_empty());
    node.send("/sensor/a", &["temp=4"], "a");
    assert_eq!(node.expect_lines("temp.txt", 1), ["4"]);
    assert_eq!(node.lines("level.txt"), ["80"]);
    // The edge rule still works: low re-arms, high fires.
    node.send("/sensor/a", &["level=10"], "a");
    node.send("/sensor/a", &["level=95"], "a");
    assert_eq!(node.expect_lines("level.txt", 2), ["80", "95"]);

    // A second crash right after more updates (six since the restart), then a clean stop
    // and start: still there.
    node.send("/sensor/b", &["temp=1"], "b");
    node.wait_metric("reflex_state_records_total", 6.0);
    node.kill();
    node.start();
    node.wait_metric("reflex_state_restored_slots", 3.0);
    let pid = node.pid();
    signal(pid, libc::SIGTERM);
    let mut p = node.proc.take().unwrap();
    let status = p.0.wait().unwrap();
    assert!(status.success(), "{status}");
    node.start();
    node.wait_metric("reflex_state_restored_slots", 3.0);
    assert_eq!(node.metric("reflex_state_torn_records_total"), Some(0.0));
}

#[test]
fn a_torn_log_record_is_skipped_at_start() {
    let mut node = Node::new("torn", STATEFUL);
    node.start();
    node.send("/sensor/a", &["temp=1"], "a");
    node.wait_metric("reflex_state_records_total", 1.0);
    node.kill();
    // A write cut short by the crash: half a record at the end of the newest log.
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&node.state)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("registers.log."))
        .collect();
    logs.sort_by_key(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse::<u64>().ok())
    });
    let newest = logs.last().expect("a state log");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(newest)
        .unwrap();
    std::io::Write::write_all(&mut f, &[40, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    node.start();
    node.wait_metric("reflex_state_torn_records_total", 1.0);
    node.wait_metric("reflex_state_restored_slots", 1.0);
    node.wait_metric(
        "reflex_state_records_skipped_total{reason=\"damaged\"}",
        1.0,
    );
    assert!(
        node.log().contains("state record skipped"),
        "{}",
        node.log()
    );
    // The register survived the torn tail: three more samples make four.
    for v in ["temp=2", "temp=3", "temp=4"] {
        node.send("/sensor/a", &[v], "a");
    }
    assert_eq!(node.expect_lines("temp.txt", 1), ["4"]);
}

const BROKEN: &str = r#"
/sensor/*:
  rules:
    - temp:
        rule: rules.simple.ge
        register: register.aggregate.count
        threshold: 4
        periood: 600
"#;

/// `temp` unchanged, `level` gone, `pressure` new.
const EDITED: &str = r#"
/sensor/*:
  rules:
    - pressure:
        rule: rules.simple.gt
        register: register.aggregate.last
        threshold: 10
        reactions:
          - reactions.exec.run:
              argv: [sh, -c, 'echo "$1" >> {dir}/pressure.txt', sh, '{{ value }}']
    - temp:
        rule: rules.simple.ge
        register: register.aggregate.count
        threshold: 4
        period: 600
        reactions:
          - reactions.exec.run:
              argv: [sh, -c, 'echo "$1" >> {dir}/temp.txt', sh, '{{ register.value }}']
"#;

fn reload(flags: &[&str]) -> std::process::Output {
    reflex().arg("reload").args(flags).output().unwrap()
}

#[test]
fn reloads_refuse_bad_rulebooks_and_keep_registers() {
    let mut node = Node::new("reload", STATEFUL);
    node.start();
    node.send("/sensor/a", &["temp=1"], "a");
    node.send("/sensor/a", &["temp=2"], "a");

    // A broken rulebook: refused with its position, counted; the old one keeps running.
    node.write_rules(BROKEN);
    let out = reload(&["--metrics", &node.metrics]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("rules.yml:8:9: unknown key `periood`"),
        "{stderr}"
    );
    assert!(node.log().contains("rules.yml:8:9: unknown key `periood`"));
    assert_eq!(
        node.metric("reflex_reloads_total{result=\"error\"}"),
        Some(1.0)
    );
    // The same by signal, through the pid file of --state.
    let state = node.state.display().to_string();
    let out = reload(&["--state", &state]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.wait_metric("reflex_reloads_total{result=\"error\"}", 2.0);
    assert!(
        node.log()
            .contains("rulebook reload failed; the running rulebook is kept")
    );
    node.send("/sensor/a", &["level=80"], "a");
    assert_eq!(node.expect_lines("level.txt", 1), ["80"]);

    // A good edit: the new rule fires, the unchanged one kept its two samples.
    node.write_rules(EDITED);
    let out = reload(&["--metrics", &node.metrics]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("reloaded: 1 file, 1 tag entry, 2 rules"),
        "{stdout}"
    );
    assert_eq!(
        node.metric("reflex_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
    node.send("/sensor/a", &["pressure=20"], "a");
    assert_eq!(node.expect_lines("pressure.txt", 1), ["20"]);
    node.send("/sensor/a", &["temp=3"], "a");
    node.send("/sensor/a", &["temp=4"], "a");
    assert_eq!(node.expect_lines("temp.txt", 1), ["4"]);
    // The removed rule no longer fires.
    node.send("/sensor/a", &["level=10"], "a");
    node.send("/sensor/a", &["level=99"], "a");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(node.lines("level.txt"), ["80"]);

    // SIGHUP with --pid reloads too (the same rulebook again), and does not stop the Manager.
    let pid = node.pid().to_string();
    let out = reload(&["--pid", &pid]);
    assert!(out.status.success());
    node.wait_metric("reflex_reloads_total{result=\"ok\"}", 2.0);
    assert!(alive(node.pid()));
    // After a crash the edited rulebook's registers come back by name.
    node.wait_metric("reflex_state_snapshots_total", 2.0);
    let written = node.metric("reflex_state_records_total").unwrap();
    node.send("/sensor/b", &["temp=1"], "b");
    node.wait_metric("reflex_state_records_total", written + 1.0);
    node.kill();
    node.start();
    node.wait_metric("reflex_state_restored_slots", 3.0);
}

/// Every `/job/*` event with `n` has Actor `worker-1` run the script that appends `n` to
/// `runs.txt`.
const REMOTE: &str = r#"
/job/*:
  rules:
    - n:
        rule: rules.simple.ge
        register: register.aggregate.last
        threshold: 0
        fire: always
        reactions:
          - reactions.actor.run:
              target: worker-1
              argv: ['{dir}/append.sh', '{{ value }}']
"#;

/// Writes `append.sh` and the configuration of Actor `worker-1`, allowed to run it; returns
/// the configuration's path.
fn worker_config(node: &Node) -> PathBuf {
    let script = node.dir.executable(
        "append.sh",
        "#!/bin/sh\necho \"$1\" >> \"$(dirname \"$0\")/runs.txt\"\n",
    );
    let config = node.path().join("agent.yml");
    std::fs::write(
        &config,
        format!(
            "id: worker-1\nheartbeat_s: 1\nallow:\n  run:\n    - ['{}', '*']\n",
            script.display()
        ),
    )
    .unwrap();
    config
}

/// Starts Actor `worker-1` (configuration `config`) against `node`, logging to `agent-N.log`.
fn start_agent(node: &Node, config: &Path, n: usize) -> Proc {
    let mut cmd = Command::new(reflex_tests::binary("reflex-agent"));
    cmd.args(["--manager", &node.events, "--publisher", &node.publish]);
    cmd.arg("--config").arg(config);
    if has_insecure(Command::new(reflex_tests::binary("reflex-agent"))) {
        cmd.arg("--insecure");
    }
    let log = node.path().join(format!("agent-{n}.log"));
    Proc(
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn an_actor_restarted_gets_what_was_sent_while_it_was_down_once() {
    let mut node = Node::new("actor", REMOTE);
    let config = worker_config(&node);
    node.start();

    let start_agent = |n: usize| start_agent(&node, &config, n);
    let agent = start_agent(0);
    node.wait_metric("reflex_known_actors", 1.0);
    // The first action runs and is answered before the crash.
    node.send("/job/x", &["n=1"], "x");
    node.wait_metric("reflex_results_received_total", 1.0);
    assert_eq!(node.lines("runs.txt"), ["1"]);

    signal(agent.id(), libc::SIGKILL);
    drop(agent);
    // Sent while the Actor is down: the Manager keeps them and retries.
    node.send("/job/x", &["n=2"], "x");
    node.send("/job/x", &["n=3"], "x");
    node.wait_metric("reflex_actions_sent_total", 3.0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(node.lines("runs.txt"), ["1"]);

    let _agent = start_agent(1);
    wait_until("both actions to run after the restart", || {
        node.lines("runs.txt").len() >= 3
    });
    // Every result is in and no retry is pending; then past one more retry period, nothing
    // has run twice.
    wait_until("the results of the retried actions", || {
        node.metric("reflex_queue_depth{queue=\"actions_unacked\"}") == Some(0.0)
    });
    let settle = Instant::now() + Duration::from_secs(6);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut runs = node.lines("runs.txt");
    runs.sort();
    assert_eq!(runs, ["1", "2", "3"], "{}", node.log());
}

#[test]
fn an_action_unanswered_when_the_manager_is_killed_runs_after_its_restart_once() {
    let mut node = Node::new("journal", REMOTE);
    let config = worker_config(&node);
    node.start();
    // No Actor yet: the action waits for its result.
    node.send("/job/x", &["n=7"], "x");
    node.wait_metric("reflex_actions_sent_total", 1.0);
    assert_eq!(
        node.metric("reflex_queue_depth{queue=\"actions_unacked\"}"),
        Some(1.0)
    );
    node.kill();

    node.start();
    wait_until("the restarted manager to be ready", || {
        node.log().contains("manager ready")
    });
    assert!(
        node.log().contains("unanswered actions of the last run"),
        "{}",
        node.log()
    );
    wait_until("the journalled action to wait for its result", || {
        node.metric("reflex_queue_depth{queue=\"actions_unacked\"}") == Some(1.0)
    });
    let _agent = start_agent(&node, &config, 0);
    node.wait_metric("reflex_action_outcomes_total{outcome=\"ran\"}", 1.0);
    wait_until("the journalled action's result", || {
        node.metric("reflex_queue_depth{queue=\"actions_unacked\"}") == Some(0.0)
    });
    assert_eq!(node.expect_lines("runs.txt", 1), ["7"]);

    // Answered, it is closed in the journal: a further restart sends nothing again.
    node.kill();
    node.start();
    wait_until("the restarted manager to be ready", || {
        node.log().contains("manager ready")
    });
    assert!(
        !node.log().contains("unanswered actions of the last run"),
        "{}",
        node.log()
    );
    assert_eq!(node.expect_lines("runs.txt", 1), ["7"]);
}

#[test]
fn an_action_that_expires_while_the_manager_is_down_is_reported_expired() {
    let mut node = Node::new("journal-expiry", REMOTE);
    node.extra = vec!["--action-ttl".into(), "1".into()];
    node.start();
    node.send("/job/x", &["n=8"], "x");
    node.wait_metric("reflex_actions_sent_total", 1.0);
    let sent = Instant::now();
    node.kill();
    // Past its lifetime before the next run starts.
    std::thread::sleep(Duration::from_secs(1).saturating_sub(sent.elapsed()));
    node.start();
    node.wait_metric("reflex_action_outcomes_total{outcome=\"expired\"}", 1.0);
    wait_until("the expiry warning", || {
        let log = node.log();
        log.contains("action expired unacknowledged") && log.contains("worker-1")
    });
    assert_eq!(
        node.metric("reflex_queue_depth{queue=\"actions_unacked\"}"),
        Some(0.0)
    );
}
