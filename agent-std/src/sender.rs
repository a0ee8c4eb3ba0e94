//! The one PUSH socket to the Manager, on its own thread.
//!
//! ZeroMQ sockets are not thread-safe, so the beacon runner, the Actor and its workers hand
//! what they send to the sender thread through a bounded queue ([`Outbox`]). The sender
//! stamps each body with this agent's next sequence number (one counter for events, results
//! and heartbeats alike, so the Manager sees one increasing sequence per source), encodes and
//! signs it (with the agent's key, when it has one) and sends it without blocking. Sequence
//! numbers are microseconds since the Unix epoch, and at least one more than the last: they
//! keep increasing across restarts of the agent, as the Manager's replay window requires. It
//! also sends a heartbeat every `heartbeat_s` seconds, the
//! first one at once.
//!
//! Nothing here ever blocks a producer: a full queue, or a full socket (the Manager is down
//! and [`SEND_HWM`] messages are waiting), drops the message and counts it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reflex_core::auth::{self, Signer};
use reflex_core::wire::{Body, Heartbeat, MAX_ENVELOPE_LEN};

use reflex_core::host::socket::SocketSpec;

use crate::Error;
use crate::stats::Stats;

/// Most messages waiting in the queue between producers and the sender thread.
pub const QUEUE_LEN: usize = 1024;
/// The PUSH socket's send high-water mark: most messages ZeroMQ keeps for a Manager that is
/// down or slow.
pub const SEND_HWM: i32 = 1000;
/// How long, at exit, unsent messages may delay closing the socket, in milliseconds.
pub const LINGER_MS: i32 = 500;
/// ZeroMQ's first reconnect interval, in milliseconds; it doubles up to
/// [`RECONNECT_IVL_MAX_MS`].
pub const RECONNECT_IVL_MS: i32 = 100;
/// The longest reconnect interval, in milliseconds.
pub const RECONNECT_IVL_MAX_MS: i32 = 2000;

enum Msg {
    Body(Box<Body>),
    Stop,
}

/// A handle to the sender thread's queue. Cloned freely; sending never blocks.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: SyncSender<Msg>,
    stats: Arc<Stats>,
}

impl Outbox {
    /// Queues a body for the Manager. `seq` is set by the sender; `time` is left as given.
    /// Returns whether it was queued; a full queue drops it and counts the drop.
    pub(crate) fn send(&self, body: impl Into<Body>) -> bool {
        match self.tx.try_send(Msg::Body(Box::new(body.into()))) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                if self.stats.dropped_queue.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("send queue full: dropping messages (counted)");
                }
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The sender thread.
pub(crate) struct SenderThread {
    tx: SyncSender<Msg>,
    handle: JoinHandle<()>,
}

impl SenderThread {
    /// Asks the thread to stop, and waits for it: it sends what it has queued (dropping what
    /// the socket does not take), then closes the socket, lingering at most [`LINGER_MS`].
    pub(crate) fn stop(self) {
        let _ = self.tx.send(Msg::Stop);
        let _ = self.handle.join();
    }
}

/// Connects a PUSH socket to `endpoint` and starts the sender thread, which signs what it
/// sends with `signer` (unsigned when `None`).
pub(crate) fn start(
    ctx: &zmq::Context,
    endpoint: &str,
    id: &str,
    heartbeat: Duration,
    signer: Option<Signer>,
    stats: Arc<Stats>,
) -> Result<(Outbox, SenderThread), Error> {
    let socket = push_socket(ctx, endpoint)?;
    let hb = Heartbeat::new(id).map_err(|_| Error::id_too_long(id))?;
    let (tx, rx) = sync_channel(QUEUE_LEN);
    let thread_stats = stats.clone();
    let handle = std::thread::Builder::new()
        .name("reflex-sender".into())
        .spawn(move || {
            let mut out = Out {
                socket,
                signer,
                seq: 0,
                buf: [0u8; MAX_ENVELOPE_LEN],
            };
            sender_loop(&mut out, rx, hb, heartbeat, &thread_stats)
        })
        .map_err(|source| Error::Thread {
            what: "sender",
            source,
        })?;
    Ok((
        Outbox {
            tx: tx.clone(),
            stats,
        },
        SenderThread { tx, handle },
    ))
}

/// The PUSH socket to the Manager of the agent and the gateway: bounded queue, short linger,
/// quick reconnects.
pub(crate) const PUSH: SocketSpec = SocketSpec::new(zmq::PUSH, "manager")
    .send_hwm(SEND_HWM)
    .linger_ms(LINGER_MS)
    .reconnect_ms(RECONNECT_IVL_MS, RECONNECT_IVL_MAX_MS);

/// The SUB socket to the Publisher of the Actor and the gateway: quick reconnects.
pub(crate) const SUB: SocketSpec =
    SocketSpec::new(zmq::SUB, "publisher").reconnect_ms(RECONNECT_IVL_MS, RECONNECT_IVL_MAX_MS);

/// A PUSH socket connected to `endpoint`.
fn push_socket(ctx: &zmq::Context, endpoint: &str) -> Result<zmq::Socket, Error> {
    Ok(PUSH.connect(ctx, endpoint)?)
}

/// The sender thread's socket, key, sequence counter and buffer.
struct Out {
    socket: zmq::Socket,
    signer: Option<Signer>,
    seq: u64,
    buf: [u8; MAX_ENVELOPE_LEN],
}

/// The next sequence number after `last`: now in microseconds since the Unix epoch, or
/// `last + 1` when that is more.
fn next_seq(last: u64) -> u64 {
    reflex_core::host::clock::now_us().max(last.saturating_add(1))
}

fn sender_loop(
    out: &mut Out,
    rx: Receiver<Msg>,
    mut hb: Heartbeat,
    every: Duration,
    stats: &Stats,
) {
    let mut next_hb = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_hb {
            hb.time = reflex_core::host::clock::now_ms();
            send(out, Body::Heartbeat(hb.clone()), stats);
            next_hb += every;
            if next_hb <= now {
                next_hb = now + every;
            }
        }
        match rx.recv_timeout(next_hb.saturating_duration_since(Instant::now())) {
            Ok(Msg::Body(body)) => send(out, *body, stats),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    // Whatever was queued before the stop still goes out.
    while let Ok(Msg::Body(body)) = rx.try_recv() {
        send(out, *body, stats);
    }
}

fn send(out: &mut Out, mut body: Body, stats: &Stats) {
    out.seq = next_seq(out.seq);
    let seq = out.seq;
    match &mut body {
        Body::Event(e) => e.seq = seq,
        Body::Action(a) => a.seq = seq,
        Body::Result(r) => r.seq = seq,
        Body::Heartbeat(h) => h.seq = seq,
    }
    let (socket, buf) = (&out.socket, &mut out.buf);
    let n = match auth::encode(&body, out.signer.as_ref(), buf) {
        Ok(n) => n,
        Err(e) => {
            if stats.encode_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::error!("cannot encode an envelope: {e} (counted)");
            }
            return;
        }
    };
    match socket.send(&buf[..n], zmq::DONTWAIT) {
        Ok(()) => {
            let sent = stats.sent.fetch_add(1, Ordering::Relaxed);
            if sent == 0 {
                tracing::debug!("first message queued for the manager");
            }
            // Once the socket takes messages again after drops, say so once.
            if stats.dropped_hwm_unreported.swap(0, Ordering::Relaxed) > 0 {
                tracing::info!("manager reachable again; sending resumed");
            }
        }
        Err(zmq::Error::EAGAIN) => {
            stats.dropped_hwm.fetch_add(1, Ordering::Relaxed);
            if stats.dropped_hwm_unreported.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "manager not taking messages ({SEND_HWM} waiting): dropping (counted)"
                );
            }
        }
        Err(e) => {
            stats.dropped_hwm.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("send to the manager failed: {e}");
        }
    }
}
