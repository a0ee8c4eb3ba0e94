//! The Manager: compiles the rulebook, then one thread receives, decodes and evaluates every
//! event and hands the reactions out — local ones to the worker pool, remote ones to the
//! outbox that feeds the Publisher.
//!
//! The event thread owns every socket it uses: the events PULL socket, an inproc PULL socket
//! on which workers put back the events they make (fired events, reaction reports), the
//! watch PUB socket and the feed PUSH socket. It never waits on anything but the poll: the
//! worker queue, the inproc queue and the feed are all tried without blocking, and what does
//! not fit is dropped and counted (actions wait in the outbox instead).
//!
//! With `--state`, every register update is also handed to the state writer ([`crate::state`])
//! without waiting; a reloaded rulebook ([`crate::reload`]) is swapped in on this thread
//! between two events.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use reflex_core::engine;
use reflex_core::event::{MAX_HOPS, SourceId, make_source};
use reflex_core::program::{Context, Reaction};
use reflex_core::store::MapStore;
use reflex_core::value::Value;
use reflex_core::wire::{self, Action, ActionResult, Body, Envelope, MAX_ENVELOPE_LEN};
use reflex_core::{Error as CoreError, Event};
use reflex_rules::{Catalog, Compiled};

use crate::Error;
use crate::actions::{ACTION_TTL_MS, KnownActors, Outbox};
use crate::metrics::{DropReason, Metrics, Queue};
use crate::reactions::{Job, Pool, Table, clip, report_event};
use crate::reload::{self, Swap};
use crate::render::Args;
use crate::state::{self, Persist, StateDir};
use crate::trust::{Security, Trust};
use crate::{clock, publisher};

/// Register slots (rule × group) the Manager keeps at most; past that, new groups are not
/// evaluated and counted as `store_full`.
pub const STORE_SLOTS: usize = 1_000_000;
/// Actors the Manager remembers at most.
pub const MAX_KNOWN_ACTORS: usize = 100_000;
/// The inproc endpoint on which workers hand events back to the event thread.
pub const INTERNAL_ENDPOINT: &str = "inproc://reflex-internal";
/// Most messages taken from one socket before looking at the others.
const BATCH: usize = 1024;
/// How often queues are flushed and gauges updated.
const TICK: Duration = Duration::from_millis(100);
/// Messages handled between two readings of the clock within a batch: a message is stamped at
/// most this many messages early (microseconds), far below the registers' millisecond
/// resolution, and latencies are measured from that earlier stamp, so never understated.
const CLOCK_EVERY: usize = 64;
/// How often an insecure Manager repeats its warning.
pub const INSECURE_WARNING_EVERY: Duration = Duration::from_secs(60);

/// How to run a Manager.
#[derive(Debug, Clone)]
pub struct Config {
    /// The rulebook: a file, or a directory of `*.yml` files.
    pub rules: PathBuf,
    /// Plugin directories; empty means `plugins/` beside the rulebook.
    pub plugins: Vec<PathBuf>,
    /// Endpoint of the events PULL socket (bound).
    pub events: String,
    /// Endpoint of the Publisher's PUB socket (bound by the Publisher).
    pub publish: String,
    /// Endpoint of the watch PUB socket (bound).
    pub watch: String,
    /// Endpoint of the feed PUSH socket to the Publisher (bound); `None` for
    /// `ipc://$TMPDIR/reflex-feed-<pid>.ipc`.
    pub feed: Option<String>,
    /// Where register state is kept across restarts (see [`crate::state`]); `None` keeps it
    /// in memory only.
    pub state: Option<PathBuf>,
    /// `HOST:PORT` of the metrics HTTP server; `None` for none.
    pub metrics: Option<String>,
    /// The Manager's id: the source of its actions.
    pub id: String,
    /// Worker threads for local reactions.
    pub workers: usize,
    /// Capacity of each queue (events socket, local reactions, actions waiting).
    pub queue: usize,
    /// The `reflex` executable to start as the Publisher; `None` to start none.
    pub publisher: Option<PathBuf>,
    /// The Manager's Ed25519 secret key, which signs actions.
    pub key: Option<PathBuf>,
    /// The directory of allow-listed keys: `<id>.pub` for agents, `<id>.mac` for devices.
    pub trust: Option<PathBuf>,
    /// Lab mode: accept unauthenticated messages from sources without a key, and run without
    /// `key` and `trust`.
    pub insecure: bool,
}

impl Config {
    /// The defaults of `reflex manager` for a rulebook, without a Publisher process.
    pub fn new(rules: impl Into<PathBuf>) -> Config {
        Config {
            rules: rules.into(),
            plugins: Vec::new(),
            events: "tcp://127.0.0.1:4510".into(),
            publish: "tcp://127.0.0.1:4511".into(),
            watch: "tcp://127.0.0.1:4512".into(),
            feed: None,
            state: None,
            metrics: Some("127.0.0.1:9510".into()),
            id: "manager".into(),
            workers: 4,
            queue: 10_000,
            publisher: None,
            key: None,
            trust: None,
            insecure: false,
        }
    }

    /// The feed endpoint, with the default filled in.
    pub fn feed_endpoint(&self) -> String {
        self.feed.clone().unwrap_or_else(|| {
            let dir = std::env::temp_dir();
            format!(
                "ipc://{}/reflex-feed-{}.ipc",
                dir.display().to_string().trim_end_matches('/'),
                std::process::id()
            )
        })
    }
}

/// Compiles the rulebook against the catalog of its plugin directories, and resolves its
/// reactions.
pub fn load(config: &Config) -> Result<(Compiled, Catalog, Table), Error> {
    let dirs = if config.plugins.is_empty() {
        vec![reflex_rules::default_plugin_dir(&config.rules)]
    } else {
        config.plugins.clone()
    };
    let catalog = Catalog::with_plugins(&dirs);
    let compiled = reflex_rules::compile_path(&config.rules, &catalog)?;
    compiled
        .program()
        .validate()
        .map_err(|e| Error::core("compiled rulebook", e))?;
    let table = Table::build(&catalog, &compiled.program())?;
    Ok((compiled, catalog, table))
}

/// Runs a Manager until `shutdown` is set.
pub fn run(config: Config, shutdown: Arc<AtomicBool>) -> Result<(), Error> {
    run_reloadable(config, shutdown, Arc::new(AtomicBool::new(false)))
}

/// Runs a Manager until `shutdown` is set, reloading its rulebook whenever `reload` is set
/// (SIGHUP) or `POST /reload` arrives on the metrics endpoint.
pub fn run_reloadable(
    config: Config,
    shutdown: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
) -> Result<(), Error> {
    let (compiled, catalog, table) = load(&config)?;
    let Security { signer, trust } = Security::load(
        config.key.as_deref(),
        config.trust.as_deref(),
        config.insecure,
    )?;
    let (store, state_dir, generation, torn) = match &config.state {
        Some(dir) => {
            let (store, dir, generation, torn) = restore_state(dir, &compiled)?;
            (store, Some(dir), generation, torn)
        }
        None => (MapStore::new(STORE_SLOTS), None, 0, 0),
    };
    let id =
        make_source(&config.id).map_err(|e| Error::core(format!("--id `{}`", config.id), e))?;
    let table = Arc::new(table);
    let metrics = Arc::new(Metrics::new(table.keys().to_vec()));
    metrics.insecure.store(u64::from(config.insecure), Relaxed);
    metrics.state.restored.store(store.len() as u64, Relaxed);
    metrics.state.torn.store(torn, Relaxed);
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

    let ctx = zmq::Context::new();
    let socket = |kind, role: &str, endpoint: &str| -> Result<zmq::Socket, Error> {
        let s = ctx
            .socket(kind)
            .map_err(|e| Error::socket("create", role, e))?;
        s.set_linger(0)
            .and_then(|_| s.set_rcvhwm(hwm))
            .and_then(|_| s.set_sndhwm(hwm))
            .map_err(|e| Error::socket("configure", endpoint, e))?;
        s.bind(endpoint)
            .map_err(|e| Error::socket("bind", endpoint, e))?;
        Ok(s)
    };
    let events = socket(zmq::PULL, "events", &config.events)?;
    let internal = socket(zmq::PULL, "internal", INTERNAL_ENDPOINT)?;
    // XPUB: a PUB that hears its subscriptions, so nothing is encoded or sent for watch while
    // nobody watches.
    let watch = socket(zmq::XPUB, "watch", &config.watch)?;
    let feed = socket(zmq::PUSH, "feed", &feed_endpoint)?;

    let metrics_addr = match &config.metrics {
        Some(addr) => Some(crate::metrics::serve_with_reload(
            addr,
            metrics.clone(),
            Some(reload_requests),
        )?),
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
        Some(exe) => Some(publisher::supervise(
            exe.clone(),
            feed_endpoint.clone(),
            config.publish.clone(),
            metrics.clone(),
            shutdown.clone(),
        )?),
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

    let mut event_loop = EventLoop {
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
        watched: Vec::new(),
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
    };
    let result = event_loop.run(&shutdown);
    tracing::info!("manager stopping");
    shutdown.store(true, Relaxed);
    let EventLoop {
        pool,
        persist,
        store,
        ..
    } = event_loop;
    if let Some(p) = persist {
        p.stop(&store);
    }
    pool.stop(Duration::from_secs(2));
    if let Some(s) = supervisor {
        let _ = s.join();
    }
    if let Some(path) = feed_endpoint.strip_prefix("ipc://") {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Opens the state directory and restores the registers of `compiled` from it; returns the
/// store, the locked directory, the generation to continue after and the damaged records met.
fn restore_state(dir: &Path, compiled: &Compiled) -> Result<(MapStore, StateDir, u64, u64), Error> {
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
    Ok((restored.store, locked, restored.generation, restored.torn))
}

/// A rule that fired, with what its reactions are rendered from.
struct Fired {
    rule: u32,
    register: f64,
    value: Option<Value>,
}

struct EventLoop {
    /// The running rulebook; replaced by a reload.
    rulebook: Arc<Compiled>,
    store: MapStore,
    /// Register persistence, with `--state`.
    persist: Option<Persist>,
    /// Rulebooks compiled by the reloader, to swap in.
    swaps: Receiver<Swap>,
    pool: Pool,
    outbox: Outbox,
    known: KnownActors,
    metrics: Arc<Metrics>,
    events: zmq::Socket,
    internal: zmq::Socket,
    watch: zmq::Socket,
    /// The topics (tag prefixes) someone subscribes to on watch; empty: nobody watches.
    watched: Vec<Vec<u8>>,
    /// The clock as last read: events are stamped from it, and it is read again every
    /// [`CLOCK_EVERY`] messages of a batch rather than for each (clock reads were a tenth of
    /// the event path).
    now: (Instant, u64),
    feed: zmq::Socket,
    /// Events made on this thread (reports of remote reactions, results), evaluated next.
    backlog: VecDeque<(Event, Instant)>,
    queue: usize,
    id: SourceId,
    buf: Vec<u8>,
    out: Vec<u8>,
    firings: Vec<Fired>,
    reported: [u64; DropReason::ALL.len()],
    last_report: Instant,
    /// Checks every message from the events socket.
    trust: Trust,
    /// Whether actions are signed.
    signed: bool,
    /// When the insecure warning was last logged.
    insecure_warned: Instant,
}

/// The loud warning of lab mode, at start and every [`INSECURE_WARNING_EVERY`].
fn warn_insecure(signed: bool, trust: &Trust) {
    tracing::warn!(
        "INSECURE: --insecure accepts unauthenticated events from any source without a key \
         ({} allow-listed) and {}; anyone who reaches the events socket can trigger reactions. \
         For a lab only: give --key and --trust to secure it",
        trust.len(),
        if signed {
            "signs actions"
        } else {
            "sends unsigned actions, which Actors accept only when insecure too"
        }
    );
}

impl EventLoop {
    fn run(&mut self, shutdown: &AtomicBool) -> Result<(), Error> {
        let mut next_tick = Instant::now() + TICK;
        while !shutdown.load(Relaxed) {
            let timeout = if self.backlog.is_empty() {
                next_tick
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(TICK.as_millis()) as i64
            } else {
                0
            };
            let (from_events, from_internal, from_watch) = {
                let mut items = [
                    self.events.as_poll_item(zmq::POLLIN),
                    self.internal.as_poll_item(zmq::POLLIN),
                    self.watch.as_poll_item(zmq::POLLIN),
                ];
                match zmq::poll(&mut items, timeout) {
                    Ok(_) => (
                        items[0].is_readable(),
                        items[1].is_readable(),
                        items[2].is_readable(),
                    ),
                    Err(zmq::Error::EINTR) => (false, false, false),
                    Err(e) => return Err(Error::socket("poll", "events", e)),
                }
            };
            if from_watch {
                self.update_watchers();
            }
            if from_internal {
                self.drain(false)?;
            }
            if from_events {
                self.drain(true)?;
            }
            if !self.backlog.is_empty() {
                self.read_clock();
            }
            for _ in 0..BATCH {
                let Some((e, received)) = self.backlog.pop_front() else {
                    break;
                };
                self.handle_event(e, received, false);
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
        Ok(())
    }

    /// Receives up to [`BATCH`] messages from the events socket (`external`) or the inproc
    /// socket, and handles each.
    fn drain(&mut self, external: bool) -> Result<(), Error> {
        // Subscriptions first, so an event and the reactions it causes are either both
        // published to a new watcher or both not.
        self.update_watchers();
        for i in 0..BATCH {
            if i % CLOCK_EVERY == 0 {
                self.read_clock();
            }
            let socket = if external {
                &self.events
            } else {
                &self.internal
            };
            let n = match socket.recv_into(&mut self.buf, zmq::DONTWAIT) {
                Ok(n) => n,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => return Ok(()),
                Err(e) => {
                    return Err(Error::Transfer {
                        what: "receive",
                        socket: if external { "events" } else { "internal" },
                        source: e,
                    });
                }
            };
            let (received, now_ms) = self.now;
            if external {
                self.metrics.events_received.fetch_add(1, Relaxed);
            }
            if n > self.buf.len() {
                self.metrics.dropped(DropReason::TooLarge, 1);
                continue;
            }
            let body = match wire::decode(&self.buf[..n]) {
                Ok(d) => {
                    // What workers hand back was made in this process; the rest is checked.
                    if external {
                        if let Err(reason) = self.trust.check(&d, &self.buf[..n], now_ms) {
                            self.metrics.dropped(reason, 1);
                            continue;
                        }
                    }
                    d.envelope.body
                }
                Err(e) => {
                    self.metrics.dropped(DropReason::of_decode(e), 1);
                    tracing::debug!(error = %e, "undecodable message dropped");
                    continue;
                }
            };
            if external {
                self.metrics.events_decoded.fetch_add(1, Relaxed);
            } else {
                self.metrics.events_internal.fetch_add(1, Relaxed);
            }
            match body {
                Body::Event(e) => {
                    if e.hops > MAX_HOPS {
                        self.refuse_loop(&e);
                        continue;
                    }
                    if self.is_watched(&e.tag) {
                        let _ = self
                            .watch
                            .send(e.tag.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
                        let _ = self.watch.send(&self.buf[..n], zmq::DONTWAIT);
                    }
                    self.handle_event(e, received, true);
                }
                Body::Result(r) => self.handle_result(r, received),
                Body::Heartbeat(h) => {
                    self.metrics.heartbeats.fetch_add(1, Relaxed);
                    self.known.heartbeat(&h.source, received);
                }
                Body::Action(_) => self.metrics.dropped(DropReason::UnexpectedKind, 1),
            }
        }
        Ok(())
    }

    /// Reads the clock into [`EventLoop::now`].
    fn read_clock(&mut self) {
        self.now = (Instant::now(), clock::now_ms());
    }

    fn refuse_loop(&self, e: &Event) {
        self.metrics.dropped(DropReason::Loop, 1);
        tracing::debug!(tag = %e.tag, hops = e.hops, "event past the hop limit refused");
    }

    /// Evaluates one event and hands out the reactions of the rules that fire.
    fn handle_event(&mut self, e: Event, received: Instant, published: bool) {
        if e.hops > MAX_HOPS {
            self.refuse_loop(&e);
            return;
        }
        if !published {
            self.publish_watch(&e);
        }
        let rulebook = self.rulebook.clone();
        let program = rulebook.program();
        let now_ms = self.now.1;
        let mut firings = std::mem::take(&mut self.firings);
        firings.clear();
        let mut sink = |f: engine::Firing<'_>| {
            firings.push(Fired {
                rule: f.rule,
                register: f.register,
                value: f.value.cloned(),
            })
        };
        let outcome = match &mut self.persist {
            Some(p) => {
                engine::evaluate_observed(&program, &mut self.store, &e, now_ms, &mut sink, |u| {
                    p.record(&u)
                })
            }
            None => engine::evaluate(&program, &mut self.store, &e, now_ms, &mut sink),
        };
        let m = &self.metrics;
        m.rules_evaluated
            .fetch_add(u64::from(outcome.evaluated), Relaxed);
        m.rules_fired.fetch_add(u64::from(outcome.fired), Relaxed);
        m.rules_cooled_down
            .fetch_add(u64::from(outcome.cooled_down), Relaxed);
        if outcome.store_full > 0 {
            m.dropped(DropReason::StoreFull, u64::from(outcome.store_full));
        }
        for fired in &firings {
            let Some(rule) = program.rules.get(fired.rule as usize) else {
                continue;
            };
            let ctx = Context {
                event: &e,
                rule: fired.rule,
                value: fired.value.as_ref(),
                register: fired.register,
            };
            let rule_name = program.str(rule.name);
            for reaction in program.reactions_of(rule) {
                if reaction.remote {
                    self.send_action(reaction, &ctx, rule_name, now_ms);
                } else {
                    let job = Job {
                        func: reaction.func,
                        rule: rule_name.to_string(),
                        event: e.clone(),
                        value: fired.value.clone(),
                        register: fired.register,
                        args: Args::render(&program, reaction, &ctx),
                        received,
                    };
                    if !self.pool.try_send(job) {
                        self.metrics.dropped(DropReason::ReactionQueueFull, 1);
                    }
                }
            }
        }
        self.firings = firings;
    }

    /// Renders a remote reaction into an action and hands it to the outbox.
    fn send_action(&mut self, reaction: &Reaction, ctx: &Context<'_>, rule: &str, now_ms: u64) {
        let rulebook = self.rulebook.clone();
        let program = rulebook.program();
        let key = program.str(reaction.key);
        let mut target = crate::render::text(&program, reaction.target, ctx);
        if target.is_empty() {
            target.push('*');
        }
        let id = self.outbox.next_id();
        let built = self.build_action(id, reaction, ctx, key, &target, now_ms);
        let (ok, output) = match built {
            Ok(action) => {
                match self.outbox.submit(
                    action,
                    &self.known,
                    &self.feed,
                    &self.metrics,
                    Instant::now(),
                ) {
                    Ok(n) => {
                        tracing::info!(action = key, id, target = %target, copies = n, rule, "action sent");
                        (
                            true,
                            format!(
                                "action {id} to {target} ({n} cop{})",
                                if n == 1 { "y" } else { "ies" }
                            ),
                        )
                    }
                    Err(reason) => {
                        self.metrics.dropped(reason, 1);
                        tracing::warn!(action = key, target = %target, rule, "no known actor matches the target; action dropped");
                        (false, format!("no known actor matches {target}"))
                    }
                }
            }
            Err(why) => {
                self.metrics.dropped(DropReason::ArgTooLong, 1);
                tracing::warn!(action = key, rule, "{why}; action refused");
                (false, why)
            }
        };
        self.metrics.reaction(reaction.func, ok);
        match report_event(
            key,
            ctx.event,
            rule,
            ok,
            if ok { 0 } else { -1 },
            &output,
            Some(id),
        ) {
            Ok(e) => self.push_backlog(e),
            Err(e) => tracing::debug!(error = %e, "reaction report not made"),
        }
    }

    fn build_action(
        &self,
        id: u64,
        reaction: &Reaction,
        ctx: &Context<'_>,
        key: &str,
        target: &str,
        now_ms: u64,
    ) -> Result<Action, String> {
        let rulebook = self.rulebook.clone();
        let program = rulebook.program();
        let mut a = Action::new(id, key, target)
            .map_err(|e| format!("target `{}`: {e}", clip(target, 80)))?;
        a.source = self.id.clone();
        a.seq = id;
        a.time = now_ms;
        a.expires = now_ms + ACTION_TTL_MS;
        for arg in program.args_of(reaction) {
            let name = program.str(arg.name);
            let value = program
                .render_value(arg.value, ctx)
                .map_err(|e| format!("argument `{name}`: {e}"))?;
            a.push_arg(name, value)
                .map_err(|e| format!("argument `{name}`: {e}"))?;
        }
        Ok(a)
    }

    /// An action result becomes the event `/reflex/result/<actor>`.
    fn handle_result(&mut self, r: ActionResult, received: Instant) {
        self.metrics.results.fetch_add(1, Relaxed);
        self.outbox.acknowledge(r.id, &r.source);
        self.known.heartbeat(&r.source, received);
        match result_event(&r) {
            Ok(e) => self.handle_event(e, received, false),
            Err(e) => {
                self.metrics.dropped(DropReason::InvalidEvent, 1);
                tracing::debug!(error = %e, actor = %r.source, "result not turned into an event");
            }
        }
    }

    fn push_backlog(&mut self, e: Event) {
        if e.hops > MAX_HOPS {
            self.refuse_loop(&e);
        } else if self.backlog.len() >= self.queue {
            self.metrics.dropped(DropReason::InternalQueueFull, 1);
        } else {
            self.metrics.events_internal.fetch_add(1, Relaxed);
            self.backlog.push_back((e, Instant::now()));
        }
    }

    /// Whether some watcher's subscription covers `tag`.
    fn is_watched(&self, tag: &str) -> bool {
        self.watched.iter().any(|t| tag.as_bytes().starts_with(t))
    }

    /// Takes in the subscriptions and unsubscriptions the watch socket heard (`[1|0][topic]`).
    fn update_watchers(&mut self) {
        while let Ok(msg) = self.watch.recv_bytes(zmq::DONTWAIT) {
            match msg.split_first() {
                Some((1, topic)) if !self.watched.iter().any(|t| t == topic) => {
                    self.watched.push(topic.to_vec())
                }
                Some((0, topic)) => self.watched.retain(|t| t != topic),
                _ => {}
            }
        }
    }

    fn publish_watch(&mut self, e: &Event) {
        if !self.is_watched(&e.tag) {
            return;
        }
        let env = Envelope::new(e.clone());
        if let Ok(n) = wire::encode(&env, &mut self.out) {
            let _ = self
                .watch
                .send(e.tag.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
            let _ = self.watch.send(&self.out[..n], zmq::DONTWAIT);
        }
    }

    /// Swaps in a reloaded rulebook: slots follow their rules by name.
    fn swap(&mut self, swap: Swap) {
        let Swap { compiled, answer } = swap;
        let old = std::mem::replace(&mut self.rulebook, Arc::new(compiled));
        let program = self.rulebook.program();
        let kept = state::renumber(&mut self.store, &old.program(), &program);
        if let Some(p) = &mut self.persist {
            p.reloaded(&program);
        }
        self.metrics.reloads.ok.fetch_add(1, Relaxed);
        let summary = self.rulebook.summary();
        tracing::info!(%summary, slots_kept = kept, "rulebook reloaded");
        if let Some(a) = answer {
            let _ = a.send(Ok(summary.to_string()));
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if let Ok(swap) = self.swaps.try_recv() {
            self.swap(swap);
        }
        if let Some(p) = &mut self.persist {
            p.tick(&self.store);
        }
        self.outbox
            .tick(&self.feed, &self.metrics, now, clock::now_ms());
        let m = &self.metrics;
        m.set_queue(Queue::Reactions, self.pool.depth());
        m.set_queue(Queue::Internal, self.backlog.len());
        m.set_queue(Queue::ActionsPending, self.outbox.pending());
        m.set_queue(Queue::ActionsUnacked, self.outbox.unacked());
        if self.trust.is_insecure()
            && now.saturating_duration_since(self.insecure_warned) >= INSECURE_WARNING_EVERY
        {
            self.insecure_warned = now;
            warn_insecure(self.signed, &self.trust);
        }
        if now.saturating_duration_since(self.last_report) >= Duration::from_secs(1) {
            self.last_report = now;
            self.known.prune(now);
            self.metrics
                .known_actors
                .store(self.known.len() as u64, Relaxed);
            self.report_drops();
        }
    }

    /// Publishes `/reflex/drop/<reason>` on watch (and logs) for drops since the last report.
    fn report_drops(&mut self) {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let now = self.metrics.drops(*reason);
            let count = now - self.reported[i].min(now);
            if count == 0 {
                continue;
            }
            self.reported[i] = now;
            tracing::warn!(reason = reason.as_str(), count, "dropped");
            let tag = format!("/reflex/drop/{}", reason.as_str());
            if let Ok(mut e) = Event::new(&tag, &self.id) {
                e.time = clock::now_ms();
                let _ = e.push("count", Value::Int(count as i64));
                self.publish_watch(&e);
            }
        }
    }
}

/// The event `/reflex/result/<actor>` for an action result: `id`, `function`, `ok`, `code`,
/// `output` (cut to a string value's capacity).
pub fn result_event(r: &ActionResult) -> Result<Event, CoreError> {
    use reflex_core::value::MAX_STR_LEN;
    let mut e = Event::new(&format!("/reflex/result/{}", r.source), &r.source)?;
    e.time = if r.time == 0 { clock::now_ms() } else { r.time };
    e.seq = r.seq;
    e.push("id", Value::Int(r.id as i64))?;
    e.push("function", Value::str(clip(&r.function, MAX_STR_LEN))?)?;
    e.push("ok", Value::Bool(r.ok))?;
    e.push("code", Value::Int(i64::from(r.code)))?;
    e.push("output", Value::str(clip(&r.output, MAX_STR_LEN))?)?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_events() {
        let mut r = ActionResult::new(7, "reactions.actor.run", "web-1", true, 0).unwrap();
        r.set_output(&"x".repeat(200));
        let e = result_event(&r).unwrap();
        assert_eq!(e.tag.as_str(), "/reflex/result/web-1");
        assert_eq!(e.source.as_str(), "web-1");
        assert_eq!(e.get("id"), Some(&Value::Int(7)));
        assert_eq!(e.get("ok"), Some(&Value::Bool(true)));
        assert!(matches!(e.get("output"), Some(Value::Str(s)) if s.len() == 64));
    }

    #[test]
    fn default_feed_is_a_per_process_ipc_socket() {
        let c = Config::new("rules.yml");
        let feed = c.feed_endpoint();
        assert!(feed.starts_with("ipc://"));
        assert!(feed.ends_with(&format!("reflex-feed-{}.ipc", std::process::id())));
    }
}

/// Arguments of `reflex manager`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManagerArgs {
    /// The rulebook: a YAML file, or a directory whose `*.yml` / `*.yaml` files form one
    /// rulebook.
    #[arg(long, value_name = "PATH")]
    pub rules: PathBuf,
    /// A plugin directory (`<DIR>/reactions/<module>/<function>`); repeatable. Default: the
    /// `plugins/` directory beside the rulebook.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugins: Vec<PathBuf>,
    /// Where events, results and heartbeats arrive (PULL, bound).
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:4510")]
    pub events: String,
    /// Where the Publisher broadcasts actions (PUB, bound by the Publisher).
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:4511")]
    pub publish: String,
    /// Where everything the Manager sees and does is published (PUB, bound).
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:4512")]
    pub watch: String,
    /// The Manager-to-Publisher socket (PUSH, bound). Default:
    /// `ipc://$TMPDIR/reflex-feed-<pid>.ipc`.
    #[arg(long, value_name = "ENDPOINT")]
    pub feed: Option<String>,
    /// Keep register state in DIR (snapshot and log), restored at start, so a restart or a
    /// crash loses no window, armed edge or cooldown; also where `manager.pid` is written.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Address of the Prometheus endpoint (`GET /metrics`); `off` for none.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9510")]
    pub metrics: String,
    /// The Manager's id, the source of its actions.
    #[arg(long, default_value = "manager")]
    pub id: String,
    /// Worker threads performing local reactions.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Capacity of each queue: the events socket's receive queue, local reactions waiting
    /// for a worker, actions waiting for the Publisher.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue: u32,
    /// The Manager's Ed25519 secret key (`reflex keys gen --name manager`): signs every
    /// action.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// The allow-list: a directory of `<id>.pub` (an agent's public key) and `<id>.mac` (a
    /// device's key) files. Messages from other sources, unsigned, forged or replayed ones are
    /// dropped and counted.
    #[arg(long, value_name = "DIR")]
    pub trust: Option<PathBuf>,
    /// Lab mode: run without --key and --trust, accepting unauthenticated messages from
    /// sources without a key. Warned about loudly, and exposed as `reflex_insecure 1`.
    #[arg(long)]
    pub insecure: bool,
}

impl ManagerArgs {
    /// The configuration these arguments describe, starting this executable as the
    /// Publisher.
    pub fn config(&self) -> Result<Config, Error> {
        let exe =
            std::env::current_exe().map_err(|e| Error::io("find the reflex executable", e))?;
        Ok(Config {
            rules: self.rules.clone(),
            plugins: self.plugins.clone(),
            events: self.events.clone(),
            publish: self.publish.clone(),
            watch: self.watch.clone(),
            feed: self.feed.clone(),
            state: self.state.clone(),
            metrics: (self.metrics != "off").then(|| self.metrics.clone()),
            id: self.id.clone(),
            workers: usize::from(self.workers),
            queue: self.queue as usize,
            publisher: Some(exe),
            key: self.key.clone(),
            trust: self.trust.clone(),
            insecure: self.insecure,
        })
    }
}

/// Runs `reflex manager`: exit status 0 after a clean stop (SIGINT, SIGTERM), 1 when the
/// rulebook is invalid or a socket cannot be bound. SIGHUP reloads the rulebook.
pub fn main(args: &ManagerArgs) -> std::process::ExitCode {
    let (shutdown, reload) = crate::manager_signals();
    let result = args
        .config()
        .and_then(|c| run_reloadable(c, shutdown, reload));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Error::Rulebook(errors)) => {
            for d in &errors {
                eprintln!("{d}");
            }
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("reflex manager: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
