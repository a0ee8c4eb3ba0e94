//! Partitioned Managers on one NATS JetStream server: events/s end to end (sent to `reflex
//! ingest` → partition streams → `reflex manager --nats` → checkpoints covering every event)
//! against partitions 1, 2, 4, 8 and batch sizes, and the takeover time after a SIGKILL of
//! the owner. Release builds of the real binaries; `nats-server` must be on PATH.
//!
//! Run: `cargo bench -p reflex-manager --features nats --bench nats` (`REFLEX_BENCH_EVENTS`
//! sets the events per case, default 100 000; `REFLEX_BENCH_PARTITIONS`, e.g. `1,4`, and
//! `REFLEX_BENCH_BATCHES`, e.g. `32,256`, choose the cases).
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use reflex_core::Event;
use reflex_core::value::Value;
use reflex_core::wire::{Body, MAX_ENVELOPE_LEN};
use reflex_tests::{Proc, Scratch, binary, free_endpoint, free_port, signal};

const BOOK: &str = r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        register: register.aggregate.avg
        threshold: 1000
        period: 60
        reactions:
          - reactions.actor.run:
              target: '{{ event.source }}'
              argv: [uptime]
"#;

fn list(var: &str, default: &[u32]) -> Vec<u32> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Events counted in the checkpoints of `bucket`'s `n` partitions.
fn checkpointed(
    rt: &tokio::runtime::Runtime,
    js: &jetstream::Context,
    bucket: &str,
    n: u32,
) -> u64 {
    rt.block_on(async {
        let Ok(kv) = js.get_key_value(bucket).await else {
            return 0;
        };
        let mut sum = 0;
        for k in 0..n {
            if let Ok(Some(b)) = kv.get(format!("p{k}")).await {
                if b.len() >= 41 {
                    sum += u64::from_le_bytes(b[9..17].try_into().unwrap());
                }
            }
        }
        sum
    })
}

fn wait_for(what: &str, patience: Duration, mut cond: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if cond() {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out waiting for {what}");
}

fn main() {
    if !Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("nats-server is not on PATH; nothing measured");
        return;
    }
    let events: u64 = std::env::var("REFLEX_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = Scratch::new("nats-bench");
    let conf = dir.write("nats.conf", "max_payload: 8MB\n");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut cmd = Command::new("nats-server");
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path().join("js"))
        .arg("-c")
        .arg(&conf);
    let _server = Proc::spawn(cmd, &dir.path().join("nats.log"));
    wait_for("nats-server", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let rules = dir.write("book.yml", BOOK);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let js = rt.block_on(async { jetstream::new(async_nats::connect(&url).await.unwrap()) });
    let reflex = binary("reflex");
    let ctx = zmq::Context::new();
    let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
    let mut case = 0;

    println!("events/s end to end, {events} events from 10 000 sources, one server:");
    println!(
        "{:>10} {:>6} {:>12} {:>10}",
        "partitions", "batch", "events/s", "seconds"
    );
    for partitions in list("REFLEX_BENCH_PARTITIONS", &[1, 2, 4, 8]) {
        for batch in list("REFLEX_BENCH_BATCHES", &[32, 256]) {
            case += 1;
            let prefix = format!("bench{case}");
            let parts = partitions.to_string();
            let endpoint = free_endpoint();
            let mut ingest = Command::new(&reflex);
            ingest
                .args([
                    "ingest",
                    "--nats",
                    &url,
                    "--partitions",
                    &parts,
                    "--insecure",
                ])
                .args([
                    "--events",
                    &endpoint,
                    "--batch",
                    &batch.to_string(),
                    "--prefix",
                    &prefix,
                ]);
            let ingest_log = dir.path().join(format!("{prefix}-ingest.log"));
            let ingest = Proc::spawn(ingest, &ingest_log);
            let mut manager = Command::new(&reflex);
            manager
                .args([
                    "manager",
                    "--nats",
                    &url,
                    "--partitions",
                    &parts,
                    "--insecure",
                ])
                .arg("--rules")
                .arg(&rules)
                .args(["--prefix", &prefix]);
            let manager_log = dir.path().join(format!("{prefix}-manager.log"));
            let manager = Proc::spawn(manager, &manager_log);
            wait_for("ingest and manager", Duration::from_secs(30), || {
                log(&ingest_log).contains("ingest ready")
                    && log(&manager_log).matches("took over partition").count()
                        == partitions as usize
            });
            let push = ctx.socket(zmq::PUSH).unwrap();
            push.set_sndhwm(1_000_000).unwrap();
            push.connect(&endpoint).unwrap();
            let start = Instant::now();
            for i in 0..events {
                let name = format!("host-{}", i % 10_000);
                let mut e = Event::new("/client/load/x", &name).unwrap();
                e.seq = i / 10_000 + 1;
                e.push("load_avg", Value::Float((i % 50) as f64)).unwrap();
                let n = reflex_core::auth::encode(&Body::Event(e), None, &mut buf).unwrap();
                push.send(&buf[..n], 0).unwrap();
            }
            let bucket = format!("{prefix}_checkpoint");
            let end = wait_for("every event checkpointed", Duration::from_secs(600), || {
                checkpointed(&rt, &js, &bucket, partitions) >= events
            });
            let secs = end.duration_since(start).as_secs_f64();
            println!(
                "{partitions:>10} {batch:>6} {:>12.0} {secs:>10.2}",
                events as f64 / secs
            );
            drop(push);
            drop(manager);
            drop(ingest);
        }
    }

    println!("takeover after SIGKILL of the owner (4 partitions, lease 2000 ms):");
    let prefix = "benchtakeover";
    let start_manager = |name: &str| {
        let mut m = Command::new(&reflex);
        m.args(["manager", "--nats", &url, "--partitions", "4", "--insecure"])
            .arg("--rules")
            .arg(&rules)
            .args(["--prefix", prefix]);
        let path = dir.path().join(format!("{prefix}-{name}.log"));
        (Proc::spawn(m, &path), path)
    };
    for round in 0..3 {
        let (a, a_log) = start_manager(&format!("a{round}"));
        wait_for("the owner", Duration::from_secs(30), || {
            log(&a_log).matches("took over partition").count() == 4
        });
        let (b, b_log) = start_manager(&format!("b{round}"));
        wait_for("the standby", Duration::from_secs(30), || {
            log(&b_log).contains("partitioned manager ready")
        });
        std::thread::sleep(Duration::from_millis(500));
        let killed = Instant::now();
        signal(a.id(), libc::SIGKILL);
        let done = wait_for("the takeover", Duration::from_secs(30), || {
            log(&b_log).matches("took over partition").count() == 4
        });
        let gaps: Vec<u64> = log(&b_log)
            .lines()
            .filter(|l| l.contains("took over partition"))
            .filter_map(|l| l.split("gap_ms=").nth(1)?.trim().parse().ok())
            .collect();
        println!(
            "  round {round}: all 4 partitions taken {:.2} s after the kill; since the last renewal: {gaps:?} ms",
            done.duration_since(killed).as_secs_f64()
        );
        drop(a);
        drop(b);
    }
}
