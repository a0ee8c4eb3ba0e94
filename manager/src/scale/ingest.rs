//! `reflex ingest`: the stateless edge of a partitioned deployment. It binds the events
//! socket agents, gateways and `reflex send` already use, decodes, authenticates and checks the
//! freshness of every message exactly as a Manager does (`crate::trust`), turns action results
//! into `/reflex/result/<actor>` events, and publishes what passes in batches to the stream of
//! its source's partition, each batch with the message id `<ingest id>:<partition>:<batch
//! number>` so a retried publish is stored once.
//!
//! Each partition has one publishing task on the NATS thread that sends one batch at a time
//! and retries it until the server stores it: a source's events reach its stream in the order
//! ingest received them. When those queues are full the loop stops reading, the events
//! socket's queue fills, and senders drop and count — never silently, never unbounded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use reflex_core::Event;
use reflex_core::event::MAX_HOPS;
use reflex_core::wire::{self, Body, MAX_ENVELOPE_LEN};

use crate::Error;
use crate::metrics::DropReason;
use crate::trust::Trust;
use reflex_core::host::clock;
use reflex_core::host::socket::SocketSpec;

use super::batch::{Batch, MAX_BATCH};
use super::bridge::Bridge;
use super::names::Names;
use super::{partition, streams};

/// Batches waiting per partition for their publishing task.
const QUEUE_PER_PARTITION: usize = 64;

/// How to run `reflex ingest`.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The NATS server.
    pub url: String,
    /// Partitions of the deployment.
    pub partitions: u32,
    /// Stream and bucket names.
    pub names: Names,
    /// Where events arrive (PULL, bound).
    pub events: String,
    /// Most events in one batch.
    pub batch: usize,
    /// Longest an event waits for its batch to fill.
    pub linger: Duration,
    /// The allow-list directory.
    pub trust: Option<PathBuf>,
    /// Accept unauthenticated events from sources without a key.
    pub insecure: bool,
    /// This ingest's id, the start of its message ids.
    pub id: String,
    /// The events socket's queue.
    pub queue: usize,
}

/// Runs `reflex ingest` until `shutdown` is set.
pub fn run(config: &IngestConfig, shutdown: &AtomicBool) -> Result<(), Error> {
    let mut trust = match &config.trust {
        Some(dir) => Trust::load(dir, config.insecure)?,
        None if config.insecure => Trust::new(true),
        None => {
            return Err(Error::Scale(super::ScaleError::Unsupported(
                "reflex ingest needs --trust DIR (or --insecure, lab only)".into(),
            )));
        }
    };
    let bridge = Bridge::connect(&config.url)?;
    let js = bridge.js.clone();
    let names = config.names.clone();
    let n = config.partitions;
    bridge.call(async move { streams::ensure(&js, &names, n).await.map(|_| ()) })??;
    // A fresh run id, so that batch numbers restarting at 0 are not taken for repeats.
    let run = format!("{}-{:016x}", config.id, random_u64());
    let mut queues = Vec::new();
    let mut tasks = Vec::new();
    for k in 0..n {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Vec<u8>)>(QUEUE_PER_PARTITION);
        let js = bridge.js.clone();
        let subject = config.names.events_subject(k);
        let run = run.clone();
        tasks.push(bridge.spawn_joinable(async move {
            while let Some((number, bytes)) = rx.recv().await {
                let id = format!("{run}:{k}:{number}");
                let payload = bytes::Bytes::from(bytes);
                loop {
                    let sent = js
                        .send_publish(
                            subject.clone(),
                            PublishMessage::build().payload(payload.clone()).message_id(id.as_str()),
                        )
                        .await;
                    let stored = match sent {
                        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match stored {
                        Ok(()) => break,
                        Err(why) => {
                            tracing::warn!(partition = k, batch = number, %why, "publish failed; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        }));
        queues.push(tx);
    }

    let ctx = zmq::Context::new();
    let hwm = i32::try_from(config.queue.max(1)).unwrap_or(i32::MAX);
    let events = SocketSpec::new(zmq::PULL, "events")
        .hwm(hwm)
        .bind(&ctx, &config.events)?;
    tracing::info!(
        events = %config.events,
        nats = %config.url,
        partitions = n,
        batch = config.batch,
        id = %run,
        "ingest ready"
    );
    let batch_max = config.batch.clamp(1, MAX_BATCH);
    let mut pending: Vec<Vec<Event>> = (0..n).map(|_| Vec::new()).collect();
    let mut oldest: Vec<Option<Instant>> = vec![None; n as usize];
    let mut numbers = vec![0u64; n as usize];
    let mut buf = vec![0u8; MAX_ENVELOPE_LEN + 1];
    let mut counts = Counts::default();
    let mut last_log = Instant::now();
    let mut flush = |k: usize, pending: &mut Vec<Vec<Event>>, oldest: &mut Vec<Option<Instant>>| {
        let events = std::mem::take(&mut pending[k]);
        oldest[k] = None;
        if events.is_empty() {
            return true;
        }
        let bytes = Batch {
            time: clock::now_ms(),
            events,
        }
        .encode();
        let number = numbers[k];
        numbers[k] += 1;
        queues[k].blocking_send((number, bytes)).is_ok()
    };
    while !shutdown.load(Relaxed) {
        let wait = oldest
            .iter()
            .flatten()
            .map(|t| (*t + config.linger).saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_millis(100));
        let readable = {
            let mut items = [events.as_poll_item(zmq::POLLIN)];
            match zmq::poll(&mut items, wait.as_millis() as i64) {
                Ok(_) => items[0].is_readable(),
                Err(zmq::Error::EINTR) => false,
                Err(source) => {
                    return Err(Error::Transfer {
                        what: "poll",
                        socket: "events",
                        source,
                    });
                }
            }
        };
        if readable {
            let now_ms = clock::now_ms();
            for _ in 0..1024 {
                let size = match events.recv_into(&mut buf, zmq::DONTWAIT) {
                    Ok(size) => size,
                    Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => break,
                    Err(e) => {
                        return Err(Error::Transfer {
                            what: "receive",
                            socket: "events",
                            source: e,
                        });
                    }
                };
                counts.received += 1;
                let Some(e) = check(&mut trust, &buf, size, now_ms, &mut counts) else {
                    continue;
                };
                let k = partition::of(&e.source, n) as usize;
                pending[k].push(e);
                oldest[k].get_or_insert_with(Instant::now);
                if pending[k].len() >= batch_max && !flush(k, &mut pending, &mut oldest) {
                    return Err(Error::Scale(super::ScaleError::Stopped));
                }
            }
        }
        let now = Instant::now();
        for k in 0..n as usize {
            if oldest[k].is_some_and(|t| now >= t + config.linger)
                && !flush(k, &mut pending, &mut oldest)
            {
                return Err(Error::Scale(super::ScaleError::Stopped));
            }
        }
        if now.saturating_duration_since(last_log) >= Duration::from_secs(10) {
            last_log = now;
            counts.log();
        }
    }
    for k in 0..n as usize {
        flush(k, &mut pending, &mut oldest);
    }
    drop(queues);
    counts.log();
    // Let the publishing tasks send what is queued before the NATS thread stops.
    let _ = bridge.call(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    });
    Ok(())
}

/// Counters of one ingest, logged every 10 s and at stop.
#[derive(Default)]
struct Counts {
    received: u64,
    accepted: u64,
    dropped: HashMap<&'static str, u64>,
}

impl Counts {
    fn drop(&mut self, reason: DropReason) {
        *self.dropped.entry(reason.as_str()).or_default() += 1;
    }

    fn log(&self) {
        tracing::info!(received = self.received, accepted = self.accepted, dropped = ?self.dropped, "ingest counts");
    }
}

/// The event to publish for message `buf[..size]`, checked as a Manager checks it; `None`
/// (counted) when it is refused or is not for the partitions.
fn check(
    trust: &mut Trust,
    buf: &[u8],
    size: usize,
    now_ms: u64,
    counts: &mut Counts,
) -> Option<Event> {
    if size > buf.len() - 1 {
        counts.drop(DropReason::TooLarge);
        return None;
    }
    let decoded = match wire::decode(&buf[..size]) {
        Ok(d) => d,
        Err(e) => {
            counts.drop(DropReason::of_decode(e));
            return None;
        }
    };
    if let Err(reason) = trust.check(&decoded, &buf[..size], now_ms) {
        counts.drop(reason);
        return None;
    }
    let event = match decoded.envelope.body {
        Body::Event(e) => e,
        Body::Result(r) => match crate::daemon::result_event(&r) {
            Ok(e) => e,
            Err(_) => {
                counts.drop(DropReason::InvalidEvent);
                return None;
            }
        },
        // Actors known by heartbeat matter to a Publisher, not to the partitions.
        Body::Heartbeat(_) => return None,
        Body::Action(_) => {
            counts.drop(DropReason::UnexpectedKind);
            return None;
        }
    };
    if event.hops > MAX_HOPS {
        counts.drop(DropReason::Loop);
        return None;
    }
    counts.accepted += 1;
    Some(event)
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}
