//! Starting and stopping a Manager: its rulebook, keys and state are loaded, its threads
//! (state writer, reloader, metrics endpoint, reaction workers, Publisher supervisor) and
//! sockets started, then the event loop ([`super::event_loop`]) runs until shutdown.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use reflex_core::event::make_source;
use reflex_core::store::MapStore;
use reflex_core::wire::MAX_ENVELOPE_LEN;
use reflex_rules::Compiled;

use crate::Error;
use crate::actions::{KnownActors, Outbox};
use crate::http::{self, Board, Control, Ingest, Inject, ReloadRoute, Tokens};
use crate::metrics::{DropReason, Metrics};
use crate::reactions::Pool;
use crate::state::{self, Persist, StateDir};
use crate::trust::Security;
use reflex_core::host::clock;
use reflex_core::host::socket::SocketSpec;

use super::config::Config;
use super::event_loop::{EventLoop, warn_insecure};
use super::watch::Watchers;
use super::{load, reload};

/// Register slots (rule × group) the Manager keeps at most; past that, new groups are not
/// evaluated and counted as `store_full`.
pub const STORE_SLOTS: usize = 1_000_000;
/// Actors the Manager remembers at most.
pub const MAX_KNOWN_ACTORS: usize = 100_000;
/// Longest frame a watcher may send: a subscription (one byte, then a tag prefix).
pub const MAX_WATCH_FRAME: usize = 1 + reflex_core::event::MAX_TAG_LEN;
/// The inproc endpoint on which workers hand events back to the event thread.
pub const INTERNAL_ENDPOINT: &str = "inproc://reflex-internal";

/// Runs a Manager until `shutdown` is set, reloading its rulebook whenever `reload` is set
/// (SIGHUP) or `POST /reload` arrives on the metrics endpoint.
pub fn run(
    config: Config,
    shutdown: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
) -> Result<(), Error> {
    raise_open_files();
    let (compiled, catalog, table) = load::load(&config)?;
    let Security { signer, mut trust } = Security::load(
        config.key.as_deref(),
        config.trust.as_deref(),
        config.insecure,
    )?;
    let (store, state_dir, generation, torn, skipped) = match &config.state {
        Some(dir) => {
            let (restored, dir) = restore_state(dir, &compiled)?;
            (
                restored.store,
                Some(dir),
                restored.generation,
                restored.torn,
                restored.skipped,
            )
        }
        None => (MapStore::new(STORE_SLOTS), None, 0, 0, Default::default()),
    };
    if let Some(dir) = &config.state {
        let (windows, damaged) = state::restore_windows(dir)?;
        let restored = trust.persist_windows(&windows);
        tracing::info!(
            sources = restored,
            damaged,
            "replay windows restored: each source must send numbers above its last accepted one"
        );
    }
    let id =
        make_source(&config.id).map_err(|e| Error::core(format!("--id `{}`", config.id), e))?;
    let table = Arc::new(table);
    let metrics = Arc::new(Metrics::new(table.keys().to_vec()));
    metrics.insecure.store(u64::from(config.insecure), Relaxed);
    metrics.state.restored.store(store.len() as u64, Relaxed);
    metrics.state.torn.store(torn, Relaxed);
    for (counter, n) in metrics.state.skipped.iter().zip(skipped) {
        counter.store(n, Relaxed);
    }
    let persist = match state_dir {
        Some(dir) => Some(Persist::start(
            dir,
            generation,
            &compiled.program(),
            &store,
            metrics.state.clone(),
        )?),
        None => None,
    };
    let (reload_requests, swaps) = reload::start(
        config.rules.clone(),
        catalog,
        reload,
        shutdown.clone(),
        metrics.reloads.clone(),
    )?;
    let queue = config.queue.max(1);
    let hwm = i32::try_from(queue).unwrap_or(i32::MAX);
    let feed_endpoint = config.feed_endpoint();
    // The default feed lives in a directory of its own that only this user may enter, so its
    // mode does not depend on the umask and no other user can connect to it.
    let feed_dir = match &config.feed {
        None => feed_endpoint
            .strip_prefix("ipc://")
            .and_then(|p| Path::new(p).parent())
            .map(private_dir)
            .transpose()?,
        Some(_) => None,
    };

    let ctx = zmq::Context::new();
    let socket =
        |kind, role, endpoint: &str| SocketSpec::new(kind, role).hwm(hwm).bind(&ctx, endpoint);
    // Sockets that receive from the network take no frame longer than an envelope (events)
    // or a subscription to a tag (watch), whatever a peer declares. Set before binding: a
    // listener hands its options to the connections it accepts.
    let limited = |kind, role, endpoint: &str, max: usize| {
        SocketSpec::new(kind, role)
            .hwm(hwm)
            .max_msg_size(max as i64)
            .bind(&ctx, endpoint)
    };
    let events = limited(zmq::PULL, "events", &config.events, MAX_ENVELOPE_LEN)?;
    let internal = socket(zmq::PULL, "internal", INTERNAL_ENDPOINT)?;
    // XPUB: a PUB that hears its subscriptions, so nothing is encoded or sent for watch while
    // nobody watches.
    let watch = limited(zmq::XPUB, "watch", &config.watch, MAX_WATCH_FRAME)?;
    let feed = socket(zmq::PUSH, "feed", &feed_endpoint)?;

    let tokens = Arc::new(Tokens::new(config.trust.as_deref()));
    let board = Arc::new(Board::default());
    let metrics_addr = match &config.metrics {
        Some(addr) => {
            let route: ReloadRoute = Box::new(move || reload::answer_http(Some(&reload_requests)));
            let control = Control {
                metrics: metrics.clone(),
                board: board.clone(),
                reload: Some(route),
                tokens: tokens.clone(),
            };
            Some(http::serve_control(addr, control)?)
        }
        None => None,
    };
    let http_addr = match &config.http {
        Some(addr) => Some(serve_ingest(addr, &ctx, hwm, &tokens, &metrics)?),
        None => None,
    };
    let pool = Pool::start(
        config.workers,
        queue,
        table.clone(),
        metrics.clone(),
        &ctx,
        INTERNAL_ENDPOINT,
    )?;
    let supervisor = match &config.publisher {
        Some(exe) => {
            let (handle, first) = crate::actions::publisher::supervise(
                exe.clone(),
                feed_endpoint.clone(),
                config.publish.clone(),
                metrics.clone(),
                shutdown.clone(),
            )?;
            // A Manager whose actions cannot be published must not look ready.
            let started = first
                .recv()
                .unwrap_or(Err(crate::actions::publisher::StartError::SupervisorGone));
            if let Err(why) = started {
                shutdown.store(true, Relaxed);
                let _ = handle.join();
                pool.stop(Duration::from_secs(2));
                if let Some(p) = persist {
                    p.stop(&store);
                }
                if let Some(path) = feed_endpoint.strip_prefix("ipc://") {
                    let _ = std::fs::remove_file(path);
                }
                return Err(Error::PublisherStart {
                    why,
                    publish: config.publish.clone(),
                });
            }
            Some(handle)
        }
        None => None,
    };
    tracing::info!(
        rules = %config.rules.display(),
        summary = %compiled.summary(),
        events = %config.events,
        watch = %config.watch,
        publish = %config.publish,
        feed = %feed_endpoint,
        metrics = %metrics_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        http = %http_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        "manager ready"
    );
    if config.insecure {
        warn_insecure(signer.is_some(), &trust);
    } else {
        tracing::info!(
            key = %config.key.as_deref().unwrap_or(std::path::Path::new("")).display(),
            trusted = trust.len(),
            "actions signed; only allow-listed, authenticated, fresh messages accepted"
        );
    }
    let mut outbox = Outbox::new(queue);
    outbox.set_signing(signer.clone(), trust.device_keys());
    if let Some(dir) = &config.state {
        let (journal, open, damaged) = state::Journal::open(dir)?;
        let at = state::SkipReason::ALL
            .iter()
            .position(|r| *r == state::SkipReason::Damaged)
            .unwrap_or(0);
        metrics.state.skipped[at].fetch_add(damaged, Relaxed);
        if !open.is_empty() {
            tracing::info!(
                actions = open.len(),
                "unanswered actions of the last run: sent again, or reported expired"
            );
        }
        outbox.set_journal(journal, open, Instant::now());
    }

    let watch = Watchers::new(watch).counted(metrics.clone());
    let rule_counts = metrics.rules.for_rules(compiled.rule_names());
    let mut event_loop = EventLoop {
        rule_counts,
        rulebook: Arc::new(compiled),
        store,
        persist,
        swaps,
        pool,
        outbox,
        known: KnownActors::new(MAX_KNOWN_ACTORS),
        metrics,
        events,
        internal,
        watch,
        now: (Instant::now(), clock::now_ms()),
        feed,
        backlog: VecDeque::new(),
        queue,
        id,
        buf: vec![0u8; MAX_ENVELOPE_LEN + 1],
        out: vec![0u8; MAX_ENVELOPE_LEN],
        firings: Vec::new(),
        reported: [0; DropReason::ALL.len()],
        last_report: Instant::now(),
        trust,
        signed: signer.is_some(),
        insecure_warned: Instant::now(),
        board,
        action_ttl_ms: config.action_ttl_ms,
    };
    let result = event_loop.run(&shutdown);
    tracing::info!("manager stopping");
    shutdown.store(true, Relaxed);
    let EventLoop {
        pool,
        persist,
        store,
        mut trust,
        ..
    } = event_loop;
    if let Some(mut p) = persist {
        p.windows(trust.take_moved());
        p.stop(&store);
    }
    pool.stop(Duration::from_secs(2));
    if let Some(s) = supervisor {
        let _ = s.join();
    }
    if let Some(path) = feed_endpoint.strip_prefix("ipc://") {
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = feed_dir {
        let _ = std::fs::remove_dir(dir);
    }
    result
}

/// Starts the ingest address: tokens from the trust directory, events handed to the event
/// thread over the inproc socket.
fn serve_ingest(
    addr: &str,
    ctx: &zmq::Context,
    hwm: i32,
    tokens: &Arc<Tokens>,
    metrics: &Arc<Metrics>,
) -> Result<std::net::SocketAddr, Error> {
    if !tokens.configured() {
        return Err(crate::error::TrustError::NoTokens.into());
    }
    if tokens.len() == 0 {
        tracing::warn!(
            "--http: no token in the trust directory yet; every request is refused until one is added"
        );
    }
    let push = SocketSpec::new(zmq::PUSH, "http ingest")
        .send_hwm(hwm)
        .connect(ctx, INTERNAL_ENDPOINT)?;
    let ingest = Ingest {
        tokens: tokens.clone(),
        inject: Inject::new(push),
        metrics: metrics.clone(),
    };
    http::serve_ingest(addr, ingest)
}

/// Most descriptors the Manager asks for, even when the hard limit allows more.
pub const MAX_OPEN_FILES: u64 = 1 << 20;

/// Raises the soft limit of open files toward the hard one (at most [`MAX_OPEN_FILES`]): a
/// soft limit of 256 let a few hundred idle connections starve the Manager of descriptors.
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) and setrlimit(2) with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let wanted = lim.rlim_max.min(MAX_OPEN_FILES as libc::rlim_t);
        if wanted > lim.rlim_cur {
            let before = lim.rlim_cur;
            lim.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::info!(from = before, to = wanted, "open files limit raised");
            }
        }
    }
}

/// Makes `dir` with mode 0700; one left by a killed Manager of the same pid is reused only
/// when it is still private.
fn private_dir(dir: &Path) -> Result<std::path::PathBuf, Error> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::symlink_metadata(dir)
                .map_err(|e| Error::io(format!("inspect {}", dir.display()), e))?
                .permissions()
                .mode();
            if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) || mode & 0o077 != 0 {
                return Err(Error::io(
                    format!("use {} for the feed socket", dir.display()),
                    std::io::Error::other(format!(
                        "it exists and is not a private directory (mode {:04o}); remove it",
                        mode & 0o7777
                    )),
                ));
            }
        }
        Err(e) => return Err(Error::io(format!("create {}", dir.display()), e)),
    }
    Ok(dir.to_path_buf())
}

/// Opens the state directory and restores the registers of `compiled` from it; returns the
/// registers and what was skipped, and the locked directory.
fn restore_state(dir: &Path, compiled: &Compiled) -> Result<(state::Restored, StateDir), Error> {
    let locked = StateDir::open(dir)?;
    let restored = state::restore(dir, &compiled.program(), STORE_SLOTS)?;
    tracing::info!(
        state = %dir.display(),
        slots = restored.store.len(),
        snapshot_slots = restored.snapshot_slots,
        log_records = restored.replayed,
        torn = restored.torn,
        dropped_unknown_rules = restored.unknown,
        dropped_store_full = restored.full,
        "registers restored"
    );
    Ok((restored, locked))
}
