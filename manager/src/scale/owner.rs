//! `reflex manager --nats`: the loop that owns partitions. Every round (a quarter of the
//! lease) it renews the leases it holds and tries to take the others; for a partition it
//! takes, it restores the checkpoint, writes it back by compare-and-swap (fencing the former
//! owner's checkpoint writes), and reads the partition stream from the checkpoint's sequence +
//! 1 with a fresh ordered consumer, so a source's events are evaluated in stream order.
//!
//! Each event is evaluated at its batch's stream time. The actions of the rules that fire are
//! signed and published to the actions stream with the message id `p<k>:<seq>:<n>` (stream
//! sequence of the batch, number of the action within it), and with an action id and sequence
//! derived from the same numbers: a replay makes the same bytes under the same ids, and the
//! server's dedup window drops them. A checkpoint is written only when every action of the
//! events it covers is stored, so none is lost.
//!
//! Only the NATS thread ([`super::bridge`]) runs async code; this loop waits on channels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, kv};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures_util::StreamExt;
use reflex_core::engine;
use reflex_core::event::{SourceId, make_source};
use reflex_core::program::{GroupBy, Program};
use reflex_core::store::MapStore;
use reflex_core::wire::{Body, MAX_ENVELOPE_LEN};
use reflex_rules::Compiled;

use crate::Error;
use crate::daemon::{Config, Fired, Step, fan_out};
use crate::trust::Security;
use reflex_core::host::clock;

use super::ScaleError;
use super::batch::Batch;
use super::bridge::Bridge;
use super::checkpoint::{self, Summary};
use super::lease::{self, Taken};
use super::names::Names;
use super::streams::{self, Buckets};

/// Register slots one partition keeps at most.
pub const PARTITION_SLOTS: usize = 1_000_000;
/// Deliveries waiting for the loop.
const DELIVERIES: usize = 4096;
/// Events after which a checkpoint is due even before its interval.
const CHECKPOINT_EVENTS: u64 = 20_000;

/// How to run a partitioned Manager.
#[derive(Debug, Clone)]
pub struct OwnerConfig {
    /// The NATS server.
    pub url: String,
    /// Partitions of the deployment.
    pub partitions: u32,
    /// Stream and bucket names.
    pub names: Names,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Longest time between two checkpoints of a partition with new events.
    pub checkpoint_every: Duration,
    /// The Manager's configuration: rulebook, key, trust, id.
    pub manager: Config,
}

/// A message of a partition stream, or the end of its reading.
enum Delivery {
    Message {
        k: u32,
        generation: u64,
        seq: u64,
        payload: bytes::Bytes,
    },
    Failed {
        k: u32,
        generation: u64,
        why: String,
    },
}

/// The answer for the actions of one batch.
struct Stored {
    k: u32,
    generation: u64,
    ok: bool,
}

/// A partition this Manager owns.
struct Owned {
    lease_revision: u64,
    /// Past this instant the lease may have run out: stop touching the partition.
    valid_until: Instant,
    checkpoint_revision: u64,
    store: MapStore,
    summary: Summary,
    /// Events since the last checkpoint.
    since: u64,
    last_checkpoint: Instant,
    /// Batches whose actions are not yet stored.
    outstanding: usize,
    generation: u64,
    task: tokio::task::AbortHandle,
}

struct Owner<'c> {
    config: &'c OwnerConfig,
    compiled: Compiled,
    signer: Option<reflex_core::auth::Signer>,
    source: SourceId,
    me: String,
    bridge: Bridge,
    buckets: Buckets,
    owned: HashMap<u32, Owned>,
    generation: u64,
    deliveries: (Sender<Delivery>, Receiver<Delivery>),
    stored: (Sender<Stored>, Receiver<Stored>),
    buf: Vec<u8>,
}

/// Runs a partitioned Manager until `shutdown` is set.
pub fn run(config: &OwnerConfig, shutdown: &AtomicBool) -> Result<(), Error> {
    let (compiled, _, _) = crate::daemon::load(&config.manager)?;
    supported(&compiled.program())?;
    let m = &config.manager;
    let Security { signer, .. } = Security::load(m.key.as_deref(), m.trust.as_deref(), m.insecure)?;
    let source = make_source(&m.id).map_err(|e| Error::core(format!("--id `{}`", m.id), e))?;
    let bridge = Bridge::connect(&config.url)?;
    let js = bridge.js.clone();
    let names = config.names.clone();
    let n = config.partitions;
    let buckets = bridge.call(async move { streams::ensure(&js, &names, n).await })??;
    let me = format!("{}-{}-{:08x}", m.id, std::process::id(), random_u32());
    tracing::info!(owner = %me, nats = %config.url, partitions = n, summary = %compiled.summary(), "partitioned manager ready");
    let mut owner = Owner {
        config,
        compiled,
        signer,
        source,
        me,
        bridge,
        buckets,
        owned: HashMap::new(),
        generation: 0,
        deliveries: crossbeam_channel::bounded(DELIVERIES),
        stored: crossbeam_channel::unbounded(),
        buf: vec![0u8; MAX_ENVELOPE_LEN],
    };
    owner.run(shutdown);
    owner.stop();
    Ok(())
}

/// Refuses rulebooks a partitioned Manager would answer differently from one Manager.
fn supported(program: &Program<'_>) -> Result<(), ScaleError> {
    let mut refused = Vec::new();
    for rule in program.rules.iter() {
        let name = program.str(rule.name);
        if rule.group_by != GroupBy::Source {
            refused.push(format!("rule `{name}` is not grouped by source"));
        }
        for r in program.reactions_of(rule) {
            if !r.remote {
                refused.push(format!(
                    "rule `{name}` has the local reaction `{}`",
                    program.str(r.key)
                ));
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ScaleError::Unsupported(format!(
            "a partitioned Manager runs rules grouped by source with remote reactions only \
             (see docs/scale-out.md): {}",
            refused.join("; ")
        )))
    }
}

impl Owner<'_> {
    fn run(&mut self, shutdown: &AtomicBool) {
        let round = self.config.lease / 4;
        let mut next_round = Instant::now();
        while !shutdown.load(Relaxed) {
            if Instant::now() >= next_round {
                self.lease_round();
                next_round = Instant::now() + round;
            }
            self.take_stored();
            let wait = next_round
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20));
            if let Ok(d) = self.deliveries.1.recv_timeout(wait) {
                self.deliver(d);
                // Evaluation never delays a lease round: a busy owner must not fence itself.
                while Instant::now() < next_round {
                    match self.deliveries.1.try_recv() {
                        Ok(d) => self.deliver(d),
                        Err(_) => break,
                    }
                }
            }
            self.checkpoints(false);
        }
    }

    /// Renews held leases and tries to take the others.
    fn lease_round(&mut self) {
        let ttl = self.config.lease.as_millis() as u64;
        for k in 0..self.config.partitions {
            let key = Names::key(k);
            let bucket = self.buckets.lease.clone();
            let me = self.me.clone();
            let sent = Instant::now();
            let now_ms = clock::now_ms();
            if let Some(o) = self.owned.get(&k) {
                if sent >= o.valid_until {
                    self.fence(k, "its lease ran out before it could renew it");
                    continue;
                }
                let revision = o.lease_revision;
                let renewed = self.bridge.call(async move {
                    lease::renew(&bucket, &key, &me, revision, now_ms, ttl).await
                });
                match renewed {
                    Ok(Some(r)) => {
                        if let Some(o) = self.owned.get_mut(&k) {
                            o.lease_revision = r;
                            o.valid_until = sent + self.config.lease * 3 / 4;
                        }
                    }
                    Ok(None) => self.fence(k, "another owner holds its lease"),
                    Err(_) => {}
                }
            } else {
                let taken = self
                    .bridge
                    .call(async move { lease::take(&bucket, &key, &me, now_ms, ttl).await });
                match taken {
                    Ok(Ok(Taken::Won(revision, former))) => {
                        if let Err(e) = self.acquire(k, revision, former, sent) {
                            tracing::warn!(partition = k, error = %e, "partition not taken");
                        }
                    }
                    Ok(Ok(Taken::Held(_))) => {}
                    Ok(Err(e)) => tracing::debug!(partition = k, error = %e, "lease not read"),
                    Err(_) => {}
                }
            }
        }
    }

    /// Restores partition `k` after winning its lease at `lease_revision`.
    fn acquire(
        &mut self,
        k: u32,
        lease_revision: u64,
        former: Option<lease::Lease>,
        sent: Instant,
    ) -> Result<(), ScaleError> {
        let program = self.compiled.program();
        let bucket = self.buckets.checkpoint.clone();
        let key = Names::key(k);
        let entry = self
            .bridge
            .call(async move { bucket.entry(key).await.map_err(|e| e.to_string()) })?
            .map_err(|e| ScaleError::nats("read a checkpoint", e))?;
        let (store, mut summary, revision) = match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let (store, summary) = checkpoint::decode(&program, &e.value, PARTITION_SLOTS)
                    .ok_or(ScaleError::Damaged {
                        what: "checkpoint",
                        partition: k,
                        why: "undecodable".into(),
                    })?;
                (store, summary, Some(e.revision))
            }
            _ => (MapStore::new(PARTITION_SLOTS), Summary::default(), None),
        };
        // Written back at once: the former owner's next checkpoint write fails its
        // compare-and-swap, whatever its lease renewal said.
        let bytes = bytes::Bytes::from(checkpoint::encode(&program, &store, &mut summary));
        let checkpoint_revision = self.write_checkpoint(k, bytes, revision)?;
        self.generation += 1;
        let generation = self.generation;
        let task = self.read_from(k, generation, summary.seq + 1);
        let gap_ms = former
            .as_ref()
            .map(|l| clock::now_ms().saturating_sub(l.renewed_ms));
        tracing::info!(
            partition = k,
            from_seq = summary.seq + 1,
            slots = summary.slots,
            former = former.as_ref().map(|l| l.owner.as_str()).unwrap_or("none"),
            gap_ms = gap_ms.unwrap_or(0),
            "took over partition"
        );
        self.owned.insert(
            k,
            Owned {
                lease_revision,
                valid_until: sent + self.config.lease * 3 / 4,
                checkpoint_revision,
                store,
                summary,
                since: 0,
                last_checkpoint: Instant::now(),
                outstanding: 0,
                generation,
                task,
            },
        );
        Ok(())
    }

    /// Writes checkpoint `bytes` of `k` over `revision` (`None`: there is none yet).
    fn write_checkpoint(
        &self,
        k: u32,
        bytes: bytes::Bytes,
        revision: Option<u64>,
    ) -> Result<u64, ScaleError> {
        let bucket = self.buckets.checkpoint.clone();
        let key = Names::key(k);
        self.bridge
            .call(async move {
                match revision {
                    Some(r) => bucket
                        .update(key, bytes, r)
                        .await
                        .map_err(|e| e.to_string()),
                    None => bucket.create(key, bytes).await.map_err(|e| e.to_string()),
                }
            })?
            .map_err(|e| ScaleError::nats(format!("write the checkpoint of partition {k}"), e))
    }

    /// Starts reading partition `k` from stream sequence `start`.
    fn read_from(&self, k: u32, generation: u64, start: u64) -> tokio::task::AbortHandle {
        let js = self.bridge.js.clone();
        let stream = self.config.names.events_stream(k);
        let tx = self.deliveries.0.clone();
        self.bridge.spawn(async move {
            if let Err(why) = read(&js, &stream, start, k, generation, &tx).await {
                let _ = tx.send(Delivery::Failed { k, generation, why });
            }
        })
    }

    /// Stops touching partition `k`.
    fn fence(&mut self, k: u32, why: &str) {
        if let Some(o) = self.owned.remove(&k) {
            o.task.abort();
            tracing::warn!(
                partition = k,
                seq = o.summary.seq,
                "partition fenced: {why}"
            );
        }
    }

    /// Counts stored actions; a batch whose actions failed is read again from the checkpoint.
    fn take_stored(&mut self) {
        while let Ok(s) = self.stored.1.try_recv() {
            let Some(o) = self.owned.get_mut(&s.k) else {
                continue;
            };
            if o.generation != s.generation {
                continue;
            }
            o.outstanding = o.outstanding.saturating_sub(1);
            if !s.ok {
                self.reread(s.k);
            }
        }
    }

    /// Restarts partition `k` from its last checkpoint (some actions were not stored).
    fn reread(&mut self, k: u32) {
        let Some(o) = self.owned.remove(&k) else {
            return;
        };
        o.task.abort();
        tracing::warn!(
            partition = k,
            "actions not stored; reading again from the checkpoint"
        );
        let lease_revision = o.lease_revision;
        let sent = Instant::now();
        // The checkpoint is read back by revision: if it moved, another owner has it.
        let program = self.compiled.program();
        let bucket = self.buckets.checkpoint.clone();
        let key = Names::key(k);
        let entry = self
            .bridge
            .call(async move { bucket.entry(key).await.map_err(|e| e.to_string()) });
        match entry {
            Ok(Ok(Some(e))) if e.revision == o.checkpoint_revision => {
                if let Some((store, summary)) =
                    checkpoint::decode(&program, &e.value, PARTITION_SLOTS)
                {
                    self.generation += 1;
                    let generation = self.generation;
                    let task = self.read_from(k, generation, summary.seq + 1);
                    self.owned.insert(
                        k,
                        Owned {
                            lease_revision,
                            valid_until: o.valid_until.min(sent + self.config.lease * 3 / 4),
                            checkpoint_revision: e.revision,
                            store,
                            summary,
                            since: 0,
                            last_checkpoint: Instant::now(),
                            outstanding: 0,
                            generation,
                            task,
                        },
                    );
                    return;
                }
            }
            _ => {}
        }
        tracing::warn!(partition = k, "partition fenced: its checkpoint moved");
    }

    /// Evaluates one delivery.
    fn deliver(&mut self, d: Delivery) {
        let (k, generation, seq, payload) = match d {
            Delivery::Message {
                k,
                generation,
                seq,
                payload,
            } => (k, generation, seq, payload),
            Delivery::Failed { k, generation, why } => {
                let current = self
                    .owned
                    .get(&k)
                    .is_some_and(|o| o.generation == generation);
                if current {
                    tracing::warn!(partition = k, %why, "reading stopped; restarting");
                    self.reread(k);
                }
                return;
            }
        };
        let Some(o) = self.owned.get(&k) else {
            return;
        };
        if o.generation != generation || seq <= o.summary.seq {
            return;
        }
        if Instant::now() >= o.valid_until {
            self.fence(k, "its lease ran out before it could renew it");
            return;
        }
        let program = self.compiled.program();
        let Some(o) = self.owned.get_mut(&k) else {
            return;
        };
        let batch = match Batch::decode(&payload) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(partition = k, seq, error = %e, "batch skipped");
                o.summary.seq = seq;
                return;
            }
        };
        let mut out: Vec<(String, bytes::Bytes)> = Vec::new();
        let mut firings = Vec::new();
        let mut steps = Vec::new();
        let mut number = 0u64;
        for e in &batch.events {
            firings.clear();
            engine::evaluate(
                &program,
                &mut o.store,
                e,
                batch.time,
                |f: engine::Firing<'_>| {
                    firings.push(Fired {
                        rule: f.rule,
                        register: f.register,
                        value: f.value.cloned(),
                    })
                },
            );
            if firings.is_empty() {
                continue;
            }
            steps.clear();
            let first = number;
            let mut next = first;
            fan_out(
                &program,
                e,
                &firings,
                Instant::now(),
                &self.source,
                batch.time,
                self.config.manager.action_ttl_ms,
                || {
                    let id = (seq << 20) | (next & 0xf_ffff);
                    next += 1;
                    id
                },
                &mut steps,
            );
            number = next;
            for step in steps.drain(..) {
                let Step::Remote(r) = step else { continue };
                let Ok(action) = r.action else {
                    tracing::warn!(partition = k, rule = r.rule, "action refused: too long");
                    continue;
                };
                let n = action.id & 0xf_ffff;
                let body = Body::Action(action);
                let Ok(len) = reflex_core::auth::encode(&body, self.signer.as_ref(), &mut self.buf)
                else {
                    continue;
                };
                out.push((
                    format!("p{k}:{seq}:{n}"),
                    bytes::Bytes::copy_from_slice(&self.buf[..len]),
                ));
            }
        }
        o.summary.seq = seq;
        o.summary.events += batch.events.len() as u64;
        o.summary.actions += out.len() as u64;
        o.since += batch.events.len() as u64;
        if out.is_empty() {
            return;
        }
        o.outstanding += 1;
        let js = self.bridge.js.clone();
        let subject = self.config.names.actions_subject(k);
        let tx = self.stored.0.clone();
        self.bridge.spawn(async move {
            let ok = publish_all(&js, &subject, out).await;
            let _ = tx.send(Stored { k, generation, ok });
        });
    }

    /// Writes due checkpoints (all of them with `all`).
    fn checkpoints(&mut self, all: bool) {
        let every = self.config.checkpoint_every;
        let due: Vec<u32> = self
            .owned
            .iter()
            .filter(|(_, o)| {
                o.outstanding == 0
                    && o.since > 0
                    && (all || o.since >= CHECKPOINT_EVENTS || o.last_checkpoint.elapsed() >= every)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            self.checkpoint(k);
        }
    }

    fn checkpoint(&mut self, k: u32) {
        let program = self.compiled.program();
        let Some(o) = self.owned.get_mut(&k) else {
            return;
        };
        if Instant::now() >= o.valid_until {
            self.fence(k, "its lease ran out before it could renew it");
            return;
        }
        let bytes = bytes::Bytes::from(checkpoint::encode(&program, &o.store, &mut o.summary));
        let revision = o.checkpoint_revision;
        match self.write_checkpoint(k, bytes, Some(revision)) {
            Ok(r) => {
                if let Some(o) = self.owned.get_mut(&k) {
                    o.checkpoint_revision = r;
                    o.since = 0;
                    o.last_checkpoint = Instant::now();
                }
            }
            Err(e) => {
                tracing::debug!(partition = k, error = %e, "checkpoint refused");
                self.fence(k, "its checkpoint was written by another owner");
            }
        }
    }

    /// A clean stop: last checkpoints, then the leases are given up.
    fn stop(&mut self) {
        let until = Instant::now() + Duration::from_secs(5);
        while self.owned.values().any(|o| o.outstanding > 0) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
            self.take_stored();
        }
        self.checkpoints(true);
        let keys: Vec<u32> = self.owned.keys().copied().collect();
        for k in keys {
            let Some(o) = self.owned.remove(&k) else {
                continue;
            };
            o.task.abort();
            let bucket = self.buckets.lease.clone();
            let key = Names::key(k);
            let me = self.me.clone();
            let revision = o.lease_revision;
            let now_ms = clock::now_ms();
            let _ = self
                .bridge
                .call(async move { lease::release(&bucket, &key, &me, revision, now_ms).await });
            let s = o.summary;
            tracing::info!(
                partition = k,
                seq = s.seq,
                events = s.events,
                actions = s.actions,
                slots = s.slots,
                digest = s.digest,
                "partition released"
            );
        }
    }
}

/// Reads stream `stream` from `start` into `tx` until the task is aborted.
async fn read(
    js: &jetstream::Context,
    stream: &str,
    start: u64,
    k: u32,
    generation: u64,
    tx: &Sender<Delivery>,
) -> Result<(), String> {
    let s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let consumer = s
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| e.to_string())?;
        let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
        let mut d = Delivery::Message {
            k,
            generation,
            seq,
            payload: m.message.payload.clone(),
        };
        loop {
            match tx.try_send(d) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    d = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Ok(()),
            }
        }
    }
    Err("the stream's messages ended".into())
}

/// Publishes `out` (message id, bytes) to `subject` and waits for every acknowledgement.
async fn publish_all(
    js: &jetstream::Context,
    subject: &str,
    out: Vec<(String, bytes::Bytes)>,
) -> bool {
    let mut acks = Vec::with_capacity(out.len());
    for (id, payload) in out {
        match js
            .send_publish(
                subject.to_string(),
                PublishMessage::build()
                    .payload(payload)
                    .message_id(id.as_str()),
            )
            .await
        {
            Ok(ack) => acks.push(ack),
            Err(_) => return false,
        }
    }
    for ack in acks {
        if ack.await.is_err() {
            return false;
        }
    }
    true
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}
