//! Failover of partitioned Managers on NATS JetStream, against a real `nats-server` started
//! here (skipped when none is on PATH, except under CI, where it must run).
//!
//! Four partitions, a first Manager owning them all and two standbys, a few thousand
//! simulated hosts sending through `reflex ingest`. The first owner is killed with SIGKILL,
//! then the Manager that took the most partitions is frozen (SIGSTOP) for three leases and
//! woken. Then: every event is in a checkpoint (none lost); the registers equal those of one
//! Manager (`--partitions 1`) fed the same batches in each source's order; the actions stored
//! equal that Manager's, none twice; the frozen owner says it is fenced; each takeover came
//! within the stated bound of the former owner's last renewal; and ingest placed every source
//! in the partition the server's `{{partition(4,1)}}` subject mapping gives it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use async_nats::jetstream;
use reflex_core::Event;
use reflex_core::value::Value;
use reflex_core::wire::{Body, MAX_ENVELOPE_LEN};
use reflex_tests::{Proc, Scratch, binary, free_endpoint, free_port, signal, wait_within};

const PARTITIONS: u32 = 4;
const HOSTS: u32 = 2000;
/// Rounds of one event per host; one round every [`ROUND`].
const ROUNDS: u64 = 40;
const ROUND: Duration = Duration::from_millis(500);
const LEASE_MS: u64 = 2000;
/// The takeover bound: from the former owner's last renewal to the new owner's takeover.
const TAKEOVER_BOUND_MS: u64 = 5000;
const PATIENCE: Duration = Duration::from_secs(120);

const BOOK: &str = r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        register: register.aggregate.avg
        threshold: 20
        period: 3600
        reactions:
          - reactions.actor.run:
              target: '{{ event.source }}'
              argv: [uptime]
        chain:
          - AND_NOT: quiet
    - quiet:
        field: load_avg
        rule: rules.simple.lt
        register: register.aggregate.last
        threshold: 3
        period: 60
        reactions:
          - reactions.actor.fire_event:
              target: '{{ event.source }}'
              tag: /quiet
"#;

fn nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The `field=value` of a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[at..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    Some(rest.split(['"', ' ']).next().unwrap_or(""))
}

/// The takeovers a Manager logged: (partition, former owner, gap in ms).
fn takeovers(path: &Path) -> Vec<(u32, String, u64)> {
    log(path)
        .lines()
        .filter(|l| l.contains("took over partition"))
        .filter_map(|l| {
            Some((
                field(l, "partition")?.parse().ok()?,
                field(l, "former")?.to_string(),
                field(l, "gap_ms")?.parse().ok()?,
            ))
        })
        .collect()
}

/// Partitions held now per the takeovers and fences in a Manager's log.
fn held(path: &Path) -> HashSet<u32> {
    let mut held = HashSet::new();
    for l in log(path).lines() {
        let Some(k) = field(l, "partition").and_then(|k| k.parse().ok()) else {
            continue;
        };
        if l.contains("took over partition") {
            held.insert(k);
        } else if l.contains("partition fenced") {
            held.remove(&k);
        }
    }
    held
}

struct Nats {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Nats {
    fn connect(url: &str) -> Nats {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (client, js) = rt.block_on(async {
            let client = async_nats::connect(url).await.expect("connect to nats");
            (client.clone(), jetstream::new(client))
        });
        Nats { rt, client, js }
    }

    /// The last sequence of `stream` (0 when missing).
    fn last_seq(&self, stream: &str) -> u64 {
        self.rt.block_on(async {
            match self.js.get_stream(stream).await {
                Ok(mut s) => s.info().await.map(|i| i.state.last_sequence).unwrap_or(0),
                Err(_) => 0,
            }
        })
    }

    /// Every message of `stream`, in order.
    fn messages(&self, stream: &str) -> Vec<jetstream::message::StreamMessage> {
        let last = self.last_seq(stream);
        self.rt.block_on(async {
            let s = self.js.get_stream(stream).await.unwrap();
            let mut out = Vec::new();
            for seq in 1..=last {
                if let Ok(m) = s.get_raw_message(seq).await {
                    out.push(m);
                }
            }
            out
        })
    }

    /// The checkpoint header of partition `k` of bucket `bucket`: (seq, events, actions,
    /// digest, slots).
    fn checkpoint(&self, bucket: &str, k: u32) -> Option<[u64; 5]> {
        self.rt.block_on(async {
            let kv = self.js.get_key_value(bucket).await.ok()?;
            let bytes = kv.get(format!("p{k}")).await.ok()??;
            if bytes.len() < 41 || bytes[0] != 1 {
                return None;
            }
            let mut h = [0u64; 5];
            for (i, n) in h.iter_mut().enumerate() {
                *n = u64::from_le_bytes(bytes[1 + 8 * i..9 + 8 * i].try_into().unwrap());
            }
            Some(h)
        })
    }

    /// The partition the server's `{{partition(4,1)}}` mapping (in the test's config) gives
    /// each of `sources`.
    fn server_partitions(&self, sources: &[String]) -> BTreeMap<String, u32> {
        self.rt.block_on(async {
            use futures_util::StreamExt;
            let mut sub = self.client.subscribe("reflex.hashed.>").await.unwrap();
            for s in sources {
                self.client
                    .publish(format!("reflex.in.{s}"), bytes::Bytes::new())
                    .await
                    .unwrap();
            }
            self.client.flush().await.unwrap();
            let mut out = BTreeMap::new();
            while out.len() < sources.len() {
                let m = sub.next().await.unwrap();
                let mut parts = m.subject.split('.').skip(2);
                let k = parts.next().unwrap().parse().unwrap();
                out.insert(parts.next().unwrap().to_string(), k);
            }
            out
        })
    }

    fn publish(&self, subject: &str, id: &str, payload: bytes::Bytes) {
        self.rt.block_on(async {
            let msg = jetstream::message::PublishMessage::build()
                .payload(payload)
                .message_id(id);
            self.js
                .send_publish(subject.to_string(), msg)
                .await
                .unwrap()
                .await
                .unwrap();
        })
    }
}

/// The events of `(host, round)`: a load that crosses the threshold up and down.
fn event(host: u32, round: u64) -> Event {
    let name = format!("host-{host}");
    let mut e = Event::new(&format!("/client/load/{name}"), &name).unwrap();
    e.seq = round + 1;
    e.time = reflex_tests::bus::now_ms();
    let v = ((u64::from(host) * 7 + round * 13) % 40) as f64;
    e.push("load_avg", Value::Float(v)).unwrap();
    e
}

/// What an action does, without the numbers derived from its partition's sequence.
fn action_key(bytes: &[u8]) -> String {
    let d = reflex_core::wire::decode(bytes).expect("a stored action decodes");
    let Body::Action(a) = d.envelope.body else {
        panic!("not an action in the actions stream")
    };
    format!("{} {} {} {:?}", a.function, a.target, a.time, a.args)
}

/// The stored actions of a deployment: each action's key, counted; how many were stored; and
/// how many repeat the (partition subject, action id) of another — the id their message id is
/// made of.
fn actions(nats: &Nats, stream: &str) -> (BTreeMap<String, u32>, usize, usize) {
    let mut keys = BTreeMap::new();
    let mut ids = HashSet::new();
    let mut repeats = 0;
    let msgs = nats.messages(stream);
    for m in &msgs {
        *keys.entry(action_key(&m.payload)).or_insert(0) += 1;
        let d = reflex_core::wire::decode(&m.payload).expect("a stored action decodes");
        let id = (m.subject.to_string(), d.envelope.body.seq());
        if !ids.insert(id) {
            repeats += 1;
        }
    }
    (keys, msgs.len(), repeats)
}

fn manager(dir: &Scratch, url: &str, rules: &Path, name: &str, extra: &[&str]) -> (Proc, PathBuf) {
    let log = dir.path().join(format!("{name}.log"));
    let mut cmd = Command::new(binary("reflex"));
    cmd.args(["manager", "--nats", url, "--rules"])
        .arg(rules)
        .args(["--insecure", "--lease-ms", &LEASE_MS.to_string()])
        .args(extra)
        .env("RUST_LOG", "info");
    (Proc::spawn(cmd, &log), log)
}

#[test]
fn failover_loses_no_event_and_doubles_no_action() {
    let Some(server) = nats_server() else {
        assert!(
            std::env::var("CI").is_err(),
            "nats-server is not installed, and CI must run this test"
        );
        eprintln!("skipped: no nats-server on PATH");
        return;
    };
    let dir = Scratch::new("nats-failover");
    let conf = dir.write(
        "nats.conf",
        "max_payload: 8MB\nmappings = { \"reflex.in.*\": \"reflex.hashed.{{partition(4,1)}}.{{wildcard(1)}}\" }\n",
    );
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut cmd = Command::new(server);
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path().join("js"))
        .arg("-c")
        .arg(&conf);
    let _server = Proc::spawn(cmd, &dir.path().join("nats.log"));
    wait_within("nats-server to listen", PATIENCE, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let rules = dir.write("book.yml", BOOK);
    let parts = PARTITIONS.to_string();

    let events = free_endpoint();
    let ingest_log = dir.path().join("ingest.log");
    let mut cmd = Command::new(binary("reflex"));
    cmd.args([
        "ingest",
        "--nats",
        &url,
        "--partitions",
        &parts,
        "--insecure",
    ])
    .args(["--events", &events, "--batch", "64"]);
    let mut ingest = Proc::spawn(cmd, &ingest_log);
    wait_within("ingest to be ready", PATIENCE, || {
        log(&ingest_log).contains("ingest ready")
    });

    let (a, a_log) = manager(&dir, &url, &rules, "a", &["--partitions", &parts]);
    wait_within("the first Manager to own every partition", PATIENCE, || {
        held(&a_log).len() == PARTITIONS as usize
    });
    let (b, b_log) = manager(&dir, &url, &rules, "b", &["--partitions", &parts]);
    let (c, c_log) = manager(&dir, &url, &rules, "c", &["--partitions", &parts]);
    for l in [&b_log, &c_log] {
        wait_within("a standby to be ready", PATIENCE, || {
            log(l).contains("partitioned manager ready")
        });
    }

    // The load: every host sends one event a round; blocking sends, so none is lost here.
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let load = {
        let (sent, done, events) = (sent.clone(), done.clone(), events.clone());
        std::thread::spawn(move || {
            let ctx = zmq::Context::new();
            let push = ctx.socket(zmq::PUSH).unwrap();
            push.set_sndhwm(100_000).unwrap();
            push.connect(&events).unwrap();
            let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
            for round in 0..ROUNDS {
                let start = std::time::Instant::now();
                for host in 0..HOSTS {
                    let body = Body::Event(event(host, round));
                    let n = reflex_core::auth::encode(&body, None, &mut buf).unwrap();
                    push.send(&buf[..n], 0).unwrap();
                    sent.fetch_add(1, SeqCst);
                }
                std::thread::sleep(ROUND.saturating_sub(start.elapsed()));
            }
            push.set_linger(10_000).unwrap();
            drop(push);
            done.store(true, SeqCst);
        })
    };

    // Kill the owner of everything once events flow.
    wait_within("events to flow", PATIENCE, || {
        sent.load(SeqCst) > u64::from(HOSTS) * 6
    });
    let a_owner = format!("manager-{}-", a.id());
    signal(a.id(), libc::SIGKILL);
    wait_within("the standbys to take every partition", PATIENCE, || {
        held(&b_log).len() + held(&c_log).len() == PARTITIONS as usize
    });
    drop(a);

    // Freeze the Manager holding the most partitions for three leases, then wake it.
    let (frozen, frozen_log, other_log) = if held(&b_log).len() >= held(&c_log).len() {
        (b, b_log, c_log)
    } else {
        (c, c_log, b_log)
    };
    let frozen_owner = format!("manager-{}-", frozen.id());
    signal(frozen.id(), libc::SIGSTOP);
    wait_within(
        "the other standby to take every partition",
        PATIENCE,
        || held(&other_log).len() == PARTITIONS as usize,
    );
    std::thread::sleep(Duration::from_millis(3 * LEASE_MS));
    signal(frozen.id(), libc::SIGCONT);
    wait_within("the frozen owner to say it is fenced", PATIENCE, || {
        log(&frozen_log).contains("partition fenced")
    });
    load.join().unwrap();
    assert!(done.load(SeqCst));
    let sent = sent.load(SeqCst);
    assert_eq!(sent, u64::from(HOSTS) * ROUNDS);

    // Every event ingested reaches a stream, and every stream a checkpoint.
    let nats = Nats::connect(&url);
    let checkpoints = |bucket: &str, n: u32| -> Vec<Option<[u64; 5]>> {
        (0..n).map(|k| nats.checkpoint(bucket, k)).collect()
    };
    let covered = |bucket: &str, prefix: &str, n: u32| {
        let cps = checkpoints(bucket, n);
        let events: u64 = cps.iter().flatten().map(|h| h[1]).sum();
        events == sent
            && (0..n).all(|k| {
                cps[k as usize].is_some_and(|h| h[0] == nats.last_seq(&format!("{prefix}_EV_P{k}")))
            })
    };
    wait_within("every event to be in a checkpoint", PATIENCE, || {
        covered("reflex_checkpoint", "REFLEX", PARTITIONS)
    });

    // One Manager fed the same batches, partition after partition: each source's events in
    // their order.
    let (reference, reference_log) = manager(
        &dir,
        &url,
        &rules,
        "reference",
        &["--partitions", "1", "--prefix", "single"],
    );
    wait_within(
        "the reference Manager to own its partition",
        PATIENCE,
        || held(&reference_log).len() == 1,
    );
    let mut placed = BTreeMap::new();
    for k in 0..PARTITIONS {
        for m in nats.messages(&format!("REFLEX_EV_P{k}")) {
            let (_, events): (u64, Vec<Event>) =
                postcard::from_bytes(&m.payload[1..]).expect("a batch decodes");
            for e in events {
                placed.insert(e.source.to_string(), k);
            }
            nats.publish("single.p.0", &format!("copy:{k}:{}", m.sequence), m.payload);
        }
    }
    // Ingest put every source where the server's own partition mapping puts it.
    assert_eq!(placed.len(), HOSTS as usize);
    let sources: Vec<String> = placed.keys().cloned().collect();
    assert_eq!(
        nats.server_partitions(&sources),
        placed,
        "partitions differ from the server's mapping"
    );
    wait_within("the reference to evaluate every event", PATIENCE, || {
        covered("single_checkpoint", "SINGLE", 1)
    });
    drop(reference);

    let split = checkpoints("reflex_checkpoint", PARTITIONS);
    let single = checkpoints("single_checkpoint", 1)[0].unwrap();
    let digest = split
        .iter()
        .flatten()
        .fold(0u64, |d, h| d.wrapping_add(h[3]));
    let slots: u64 = split.iter().flatten().map(|h| h[4]).sum();
    let acted: u64 = split.iter().flatten().map(|h| h[2]).sum();
    assert_eq!(slots, single[4], "register slots differ from one Manager's");
    assert_eq!(slots, u64::from(HOSTS) * 2);
    assert_eq!(digest, single[3], "registers differ from one Manager's");

    let (split_actions, stored, repeats) = actions(&nats, "REFLEX_ACT");
    let (single_actions, single_stored, single_repeats) = actions(&nats, "SINGLE_ACT");
    assert!(stored > 0, "no action fired");
    assert_eq!(
        (repeats, single_repeats),
        (0, 0),
        "a message id was stored twice"
    );
    assert_eq!(
        stored as u64, acted,
        "stored actions differ from those counted"
    );
    assert_eq!(stored, single_stored);
    assert!(
        split_actions.values().all(|n| *n == 1),
        "an action was stored twice"
    );
    assert_eq!(
        split_actions, single_actions,
        "actions differ from one Manager's"
    );

    // Takeovers came within the bound of the former owner's last renewal.
    let mut seen = 0;
    for l in [&frozen_log, &other_log] {
        for (k, former, gap) in takeovers(l) {
            if former.starts_with(&a_owner) || former.starts_with(&frozen_owner) {
                seen += 1;
                assert!(
                    gap < TAKEOVER_BOUND_MS,
                    "partition {k} taken {gap} ms after {former} last renewed it"
                );
            }
        }
    }
    assert!(
        seen >= PARTITIONS as usize,
        "takeovers missing from the logs"
    );
    assert!(!ingest.exited());
}
