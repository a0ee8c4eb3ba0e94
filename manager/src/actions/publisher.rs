//! The Publisher: a separate process (`reflex publisher`, started by the Manager) that takes
//! actions from the feed socket and broadcasts them on the publish socket as two frames,
//! `[topic, envelope]`, where the topic is the action's target followed by a NUL byte (`*\0`
//! for all Actors, `<id>\0` for one). Actors subscribe to their own topic and to `*\0`.
//!
//! Start-up order: the Publisher binds its PUB socket, waits [`SETTLE`] so that Actors
//! (which reconnect by themselves) are subscribed again, then connects to the feed. Until it
//! is connected the Manager's feed refuses actions and the Manager keeps them queued, so
//! nothing is published into a socket nobody listens to yet.
//!
//! [`supervise`] runs in the Manager: it starts the Publisher, restarts it with a short
//! backoff whenever it exits, and stops it when the Manager stops. The Publisher also stops
//! by itself when the Manager is gone.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reflex_core::host::socket::SocketSpec;
use reflex_core::host::sys::{self, Signal};
use reflex_core::wire::{self, Body, MAX_ENVELOPE_LEN};

use crate::Error;
use crate::metrics::Metrics;

/// Time between binding the publish socket and taking actions from the feed.
pub const SETTLE: Duration = Duration::from_millis(500);
/// High-water mark of the publish socket, in messages per subscriber.
pub const PUBLISH_HWM: i32 = 100_000;
/// The Publisher's feed receive queue, in messages.
pub const FEED_HWM: i32 = 10_000;
/// Longest frame an Actor may send the Publisher: a subscription, one byte then a topic
/// (`<id>\0`); a longer one disconnects it.
pub const MAX_SUBSCRIPTION_FRAME: i64 = 2 + wire::MAX_TARGET_LEN as i64;
/// Whether the first Publisher bound its socket, or why not (see [`supervise`]).
pub type FirstStart = Receiver<Result<(), StartError>>;

/// Why the first Publisher did not bind its publish socket.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// It exited before saying it was bound.
    #[error("it exited ({status}) before binding {publish}")]
    Exited {
        /// How it exited.
        status: std::process::ExitStatus,
        /// The publish endpoint.
        publish: String,
    },
    /// It could not be waited for.
    #[error("it was lost before binding {publish}: {source}")]
    Lost {
        /// The publish endpoint.
        publish: String,
        /// Why.
        source: std::io::Error,
    },
    /// Its executable could not be run.
    #[error("cannot run {}: {source}", exe.display())]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The supervisor thread ended before it could say.
    #[error("its supervisor stopped")]
    SupervisorGone,
}
/// The line a Publisher started by a Manager writes on its standard output once its publish
/// socket is bound.
pub const BOUND: &str = "bound";

/// What the Publisher process is told.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Manager's feed endpoint, connected with PULL.
    pub feed: String,
    /// The endpoint bound with PUB.
    pub publish: String,
    /// The Manager's process id: the Publisher stops when its parent is no longer that.
    pub parent: Option<u32>,
}

/// Runs the Publisher until `shutdown` is set or the parent Manager is gone.
pub fn run(config: &Config, shutdown: Arc<AtomicBool>) -> Result<(), Error> {
    if config.parent.is_some() {
        sys::signal_on_parent_exit(Signal::Term);
    }
    let orphaned = || config.parent.is_some_and(|p| sys::parent_pid() != p);
    let ctx = zmq::Context::new();
    // Actors send only subscriptions: a byte, then `<id>\0` or `*\0`.
    let publish = SocketSpec::new(zmq::PUB, "publish")
        .send_hwm(PUBLISH_HWM)
        .max_msg_size(MAX_SUBSCRIPTION_FRAME)
        .bind(&ctx, &config.publish)?;
    if config.parent.is_some() {
        // Tells the supervising Manager that the socket is bound (see [`supervise`]).
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{BOUND}").and_then(|_| out.flush());
    }
    let settle_until = Instant::now() + SETTLE;
    while Instant::now() < settle_until {
        if shutdown.load(Relaxed) || orphaned() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let feed = SocketSpec::new(zmq::PULL, "feed")
        .recv_hwm(FEED_HWM)
        .connect(&ctx, &config.feed)?;
    tracing::info!(feed = %config.feed, publish = %config.publish, "publisher ready");

    let mut buf = vec![0u8; MAX_ENVELOPE_LEN + 1];
    let mut topic = Vec::with_capacity(wire::MAX_TARGET_LEN + 1);
    let (mut published, mut refused) = (0u64, 0u64);
    while !shutdown.load(Relaxed) && !orphaned() {
        let mut items = [feed.as_poll_item(zmq::POLLIN)];
        match zmq::poll(&mut items, 200) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(source) => {
                return Err(Error::Transfer {
                    what: "poll",
                    socket: "feed",
                    source,
                });
            }
        }
        loop {
            let n = match feed.recv_into(&mut buf, zmq::DONTWAIT) {
                Ok(n) => n,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => break,
                Err(e) => {
                    return Err(Error::Transfer {
                        what: "receive",
                        socket: "feed",
                        source: e,
                    });
                }
            };
            let bytes = &buf[..n.min(buf.len())];
            let target = match wire::decode(bytes) {
                Ok(d) => match d.envelope.body {
                    Body::Action(a) => a.target,
                    other => {
                        refused += 1;
                        tracing::warn!(kind = %other.kind(), "not an action on the feed; dropped");
                        continue;
                    }
                },
                Err(e) => {
                    refused += 1;
                    tracing::warn!(error = %e, "undecodable action on the feed; dropped");
                    continue;
                }
            };
            topic.clear();
            topic.extend_from_slice(target.as_bytes());
            topic.push(0);
            let sent = publish
                .send(&topic, zmq::SNDMORE)
                .and_then(|_| publish.send(bytes, 0));
            match sent {
                Ok(()) => published += 1,
                Err(e) => tracing::warn!(error = %e, "cannot publish an action"),
            }
        }
    }
    tracing::info!(published, refused, "publisher stopping");
    Ok(())
}

/// Starts the Publisher as `exe publisher --feed FEED --publish PUBLISH --parent PID` and
/// keeps it running until `shutdown` is set; then stops it (SIGTERM, then SIGKILL after two
/// seconds). Every restart is logged and counted in `reflex_publisher_restarts_total`.
///
/// The first Publisher must bind its socket: the returned receiver gets `Ok` once it says
/// [`BOUND`], or why not when it exits first, and then the supervisor stops (no restart: a
/// port taken at start is a configuration error, not a crash).
pub fn supervise(
    exe: PathBuf,
    feed: String,
    publish: String,
    metrics: Arc<Metrics>,
    shutdown: Arc<AtomicBool>,
) -> Result<(JoinHandle<()>, FirstStart), Error> {
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("publisher-supervisor".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(100);
            let mut first = Some(first_tx);
            loop {
                if shutdown.load(Relaxed) {
                    return;
                }
                let started = Instant::now();
                match spawn(&exe, &feed, &publish) {
                    Ok(mut child) => {
                        let bound = wait_bound(&mut child);
                        if let Some(tx) = first.take() {
                            if !bound {
                                let why = match child.wait() {
                                    Ok(status) => StartError::Exited {
                                        status,
                                        publish: publish.clone(),
                                    },
                                    Err(source) => StartError::Lost {
                                        publish: publish.clone(),
                                        source,
                                    },
                                };
                                let _ = tx.send(Err(why));
                                return;
                            }
                            let _ = tx.send(Ok(()));
                        }
                        let pid = child.id();
                        metrics.publisher_pid.store(u64::from(pid), Relaxed);
                        tracing::info!(pid, "publisher started");
                        let status = loop {
                            if shutdown.load(Relaxed) {
                                stop(&mut child);
                                metrics.publisher_pid.store(0, Relaxed);
                                return;
                            }
                            match child.try_wait() {
                                Ok(Some(status)) => break Some(status),
                                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                                Err(_) => break None,
                            }
                        };
                        metrics.publisher_pid.store(0, Relaxed);
                        match status {
                            Some(s) => tracing::warn!(pid, status = %s, "publisher exited; restarting"),
                            None => tracing::warn!(pid, "publisher lost; restarting"),
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, exe = %exe.display(), "cannot start the publisher");
                        if let Some(tx) = first.take() {
                            let _ = tx.send(Err(StartError::Spawn {
                                exe: exe.clone(),
                                source: e,
                            }));
                            return;
                        }
                    }
                }
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_millis(100);
                }
                metrics.publisher_restarts.fetch_add(1, Relaxed);
                let resume = Instant::now() + backoff;
                while Instant::now() < resume {
                    if shutdown.load(Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
        .map_err(|e| Error::io("start the publisher supervisor", e))?;
    Ok((handle, first_rx))
}

/// Reads the child's standard output until it says [`BOUND`] (`true`) or closes it (`false`:
/// it exited, or will).
fn wait_bound(child: &mut Child) -> bool {
    use std::io::BufRead;
    let Some(out) = child.stdout.take() else {
        return false;
    };
    let mut lines = std::io::BufReader::new(out).lines();
    let bound = lines.any(|l| l.is_ok_and(|l| l == BOUND));
    // The pipe is dropped here: the Publisher writes nothing else on it.
    bound
}

fn spawn(exe: &PathBuf, feed: &str, publish: &str) -> std::io::Result<Child> {
    Command::new(exe)
        .arg("publisher")
        .arg("--feed")
        .arg(feed)
        .arg("--publish")
        .arg(publish)
        .arg("--parent")
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

fn stop(child: &mut Child) {
    let _ = sys::signal(child.id(), Signal::Term);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
