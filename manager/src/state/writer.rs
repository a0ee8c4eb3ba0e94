//! The writer: register updates and snapshots written to the state directory by a thread of
//! their own.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use reflex_core::engine::Update;
use reflex_core::program::Program;
use reflex_core::store::{GroupKey, MapStore, Slot};

use crate::Error;
use crate::metrics::StateCounters;

use super::dir::*;
use super::format::*;
use super::restore::*;

/// Slot updates waiting for the writer at most; past that they are dropped and counted.
pub const QUEUE: usize = 16 * 1024;
/// Longest time a record waits in the writer before it is written and synced.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Records after which the writer writes and syncs without waiting for [`FLUSH_EVERY`].
pub const FLUSH_RECORDS: usize = 1000;
/// Time between snapshots while registers change.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);
/// Log size that brings the next snapshot forward.
pub const SNAPSHOT_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// A slot update, owned, on its way to the writer.
pub(super) struct OwnedUpdate {
    rule: Arc<str>,
    group: GroupKey,
    time: u64,
    sample: f64,
    active: bool,
    last_fired: Option<u64>,
    previous: Option<f64>,
}

/// A copy of the whole store, rules named.
type Copy = Vec<(Arc<str>, String, Slot)>;

pub(super) enum Msg {
    Update(OwnedUpdate),
    /// Sources whose replay window moved, with their highest sequence number.
    Windows(Vec<(String, u64)>),
    Snapshot(Copy),
    Stop,
}

/// The event thread's side of persistence: hands updates and snapshots to the writer thread.
pub struct Persist {
    /// Keeps the directory locked while persistence runs.
    _lock: Arc<StateDir>,
    pub(super) tx: Sender<Msg>,
    names: Vec<Arc<str>>,
    counters: Arc<StateCounters>,
    /// A snapshot is being written (set here, cleared by the snapshot thread).
    pub(super) busy: Arc<AtomicBool>,
    /// Log bytes since the last snapshot (kept by the writer).
    log_bytes: Arc<AtomicU64>,
    last_snapshot: Instant,
    /// Updates handed over since the last snapshot.
    since_snapshot: u64,
    /// A snapshot is wanted as soon as the writer can take one.
    pub(super) wanted: bool,
    /// Moved replay windows the queue had no room for, handed over next time.
    windows: Vec<(String, u64)>,
    pub(super) writer: Option<JoinHandle<()>>,
}

impl Persist {
    /// Starts the writer thread in `dir`, continuing after generation `generation`, for
    /// `program`'s rules, and has the first snapshot (of `store`, as restored) taken at once.
    pub fn start(
        dir: StateDir,
        generation: u64,
        program: &Program<'_>,
        store: &MapStore,
        counters: Arc<StateCounters>,
    ) -> Result<Persist, Error> {
        let dir = Arc::new(dir);
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let busy = Arc::new(AtomicBool::new(false));
        let log_bytes = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            dir: dir.clone(),
            rx,
            generation,
            log: None,
            buf: Vec::with_capacity(256 * 1024),
            pending: 0,
            scratch: vec![0u8; MAX_RECORD_LEN],
            counters: counters.clone(),
            busy: busy.clone(),
            log_bytes: log_bytes.clone(),
            snapshotter: None,
            errors_logged: 0,
            windows: HashMap::new(),
            windows_dirty: false,
        };
        let handle = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io("start the state writer", e))?;
        let mut persist = Persist {
            _lock: dir,
            tx,
            names: names_of(program),
            counters,
            busy,
            log_bytes,
            last_snapshot: Instant::now(),
            since_snapshot: 0,
            wanted: true,
            windows: Vec::new(),
            writer: Some(handle),
        };
        // The queue is empty: this goes through, and opens the first log before any update.
        persist.snapshot(store);
        Ok(persist)
    }

    /// Hands one update to the writer; counts it as dropped when the queue is full.
    pub fn record(&mut self, u: &Update<'_>) {
        let Some(rule) = self.names.get(u.rule as usize) else {
            return;
        };
        let mut group = GroupKey::new();
        if group.push_str(u.group).is_err() {
            return;
        }
        let msg = Msg::Update(OwnedUpdate {
            rule: rule.clone(),
            group,
            time: u.time,
            sample: u.sample,
            active: u.slot.active,
            last_fired: u.slot.last_fired,
            previous: u.slot.previous,
        });
        self.since_snapshot += 1;
        if self.tx.try_send(msg).is_err() {
            self.counters.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Hands the replay windows that moved (from [`crate::trust::Trust::take_moved`]) to the
    /// writer, which keeps them in [`WINDOWS_FILE`] with the next flush. None is ever dropped:
    /// when the queue is full they wait for the next call.
    pub fn windows(&mut self, moved: Vec<(String, u64)>) {
        self.windows.extend(moved);
        if self.windows.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.windows);
        if let Err(e) = self.tx.try_send(Msg::Windows(batch)) {
            if let Msg::Windows(batch) = e.into_inner() {
                self.windows = batch;
            }
        }
    }

    /// The rulebook changed: names records by the new program's rules, and asks for a
    /// snapshot.
    pub fn reloaded(&mut self, program: &Program<'_>) {
        self.names = names_of(program);
        self.wanted = true;
    }

    /// Called every tick: takes a snapshot of `store` when one is due and the writer is free.
    pub fn tick(&mut self, store: &MapStore) {
        let due = self.wanted
            || (self.since_snapshot > 0 && self.last_snapshot.elapsed() >= SNAPSHOT_EVERY)
            || self.log_bytes.load(Relaxed) >= SNAPSHOT_LOG_BYTES;
        if due && !self.busy.load(Relaxed) && !self.tx.is_full() {
            self.snapshot(store);
        }
    }

    fn snapshot(&mut self, store: &MapStore) {
        let copy: Copy = store
            .iter()
            .filter_map(|(r, g, slot)| {
                let name = self.names.get(r as usize)?.clone();
                Some((name, g.to_string(), slot.clone()))
            })
            .collect();
        self.busy.store(true, Relaxed);
        match self.tx.try_send(Msg::Snapshot(copy)) {
            Ok(()) => {
                self.wanted = false;
                self.since_snapshot = 0;
                self.last_snapshot = Instant::now();
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.busy.store(false, Relaxed);
                self.wanted = true;
            }
        }
    }

    /// Takes a last snapshot of `store`, waits for it and for the log to be written, and stops
    /// the writer.
    pub fn stop(mut self, store: &MapStore) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.busy.load(Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let copy: Copy = store
            .iter()
            .filter_map(|(r, g, slot)| {
                Some((
                    self.names.get(r as usize)?.clone(),
                    g.to_string(),
                    slot.clone(),
                ))
            })
            .collect();
        self.busy.store(true, Relaxed);
        let windows = std::mem::take(&mut self.windows);
        if !windows.is_empty() {
            let _ = self
                .tx
                .send_timeout(Msg::Windows(windows), Duration::from_secs(5));
        }
        let _ = self
            .tx
            .send_timeout(Msg::Snapshot(copy), Duration::from_secs(5));
        let _ = self.tx.send_timeout(Msg::Stop, Duration::from_secs(5));
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

pub(super) fn names_of(program: &Program<'_>) -> Vec<Arc<str>> {
    program
        .rules
        .iter()
        .map(|r| Arc::from(program.str(r.name)))
        .collect()
}

pub(super) struct Writer {
    dir: Arc<StateDir>,
    rx: Receiver<Msg>,
    /// The generation of the open log (and of the snapshot that precedes it).
    generation: u64,
    log: Option<File>,
    buf: Vec<u8>,
    pending: usize,
    scratch: Vec<u8>,
    counters: Arc<StateCounters>,
    pub(super) busy: Arc<AtomicBool>,
    log_bytes: Arc<AtomicU64>,
    snapshotter: Option<JoinHandle<()>>,
    errors_logged: u64,
    /// The highest sequence number accepted from each source, as last handed over.
    windows: HashMap<String, u64>,
    /// `windows` changed since [`WINDOWS_FILE`] was last written.
    windows_dirty: bool,
}

impl Writer {
    fn run(mut self) {
        let mut deadline: Option<Instant> = None;
        loop {
            let msg = match deadline {
                Some(d) => self.rx.recv_deadline(d),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Update(u)) => {
                    self.append(&u);
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + FLUSH_EVERY);
                    }
                    if self.pending >= FLUSH_RECORDS {
                        self.flush();
                        deadline = None;
                    }
                }
                Ok(Msg::Windows(moved)) => {
                    for (source, highest) in moved {
                        let h = self.windows.entry(source).or_insert(highest);
                        *h = (*h).max(highest);
                    }
                    self.windows_dirty = true;
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + FLUSH_EVERY);
                    }
                }
                Ok(Msg::Snapshot(copy)) => {
                    self.flush();
                    deadline = None;
                    self.rotate(copy);
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.flush();
                    deadline = None;
                }
            }
        }
        if let Some(h) = self.snapshotter.take() {
            let _ = h.join();
        }
    }

    fn append(&mut self, u: &OwnedUpdate) {
        let rec = LogRecord {
            rule: &u.rule,
            group: &u.group,
            time: u.time,
            sample: u.sample,
            active: u.active,
            last_fired: u.last_fired,
            previous: u.previous,
        };
        if push_record(&rec, &mut self.scratch, &mut self.buf) {
            self.pending += 1;
        } else {
            self.error(
                "encode a state record",
                &io::Error::other("record too long"),
            );
        }
    }

    /// Writes and syncs what is buffered, and the replay windows when they moved.
    fn flush(&mut self) {
        if self.windows_dirty {
            self.windows_dirty = false;
            if let Err(e) = write_windows(self.dir.path(), &self.windows) {
                self.windows_dirty = true;
                self.error("write the replay windows", &e);
            }
        }
        if self.buf.is_empty() {
            return;
        }
        let n = self.pending as u64;
        let bytes = self.buf.len() as u64;
        let result = match self.log.as_mut() {
            Some(f) => f.write_all(&self.buf).and_then(|_| f.sync_data()),
            None => Err(io::Error::other("no log file is open")),
        };
        self.buf.clear();
        self.pending = 0;
        match result {
            Ok(()) => {
                self.counters.records.fetch_add(n, Relaxed);
                self.log_bytes.fetch_add(bytes, Relaxed);
            }
            Err(e) => self.error("write the state log", &e),
        }
    }

    /// Starts the next log and has the snapshot of that generation written.
    fn rotate(&mut self, copy: Copy) {
        // One snapshot at a time: the previous one has finished before the next is asked for,
        // but its thread may still be deleting old logs.
        if let Some(h) = self.snapshotter.take() {
            let _ = h.join();
        }
        let next = self.generation + 1;
        let path = log_path(self.dir.path(), next);
        let opened = File::create(&path).and_then(|mut f| {
            f.write_all(&header(LOG_MAGIC, next))?;
            f.sync_all()?;
            sync_dir(self.dir.path())?;
            Ok(f)
        });
        match opened {
            Ok(f) => {
                self.log = Some(f);
                self.generation = next;
                self.log_bytes.store(0, Relaxed);
            }
            Err(e) => {
                // Keep appending to the current log; the snapshot is not taken.
                self.error(&format!("create {}", path.display()), &e);
                self.busy.store(false, Relaxed);
                return;
            }
        }
        let dir = self.dir.clone();
        let counters = self.counters.clone();
        let busy = self.busy.clone();
        let spawned = std::thread::Builder::new()
            .name("state-snapshot".into())
            .spawn(move || {
                match write_snapshot(dir.path(), next, &copy) {
                    Ok(()) => {
                        counters.snapshots.fetch_add(1, Relaxed);
                        tracing::debug!(generation = next, slots = copy.len(), "snapshot written");
                        if let Ok(gens) = log_generations(dir.path()) {
                            for g in gens.into_iter().filter(|&g| g < next) {
                                let _ = fs::remove_file(log_path(dir.path(), g));
                            }
                        }
                    }
                    Err(e) => {
                        counters.errors.fetch_add(1, Relaxed);
                        tracing::warn!(error = %e, "cannot write the register snapshot; the logs are kept");
                    }
                }
                busy.store(false, Relaxed);
            });
        match spawned {
            Ok(h) => self.snapshotter = Some(h),
            Err(e) => {
                self.error("start the snapshot thread", &e);
                self.busy.store(false, Relaxed);
            }
        }
    }

    fn error(&mut self, what: &str, e: &io::Error) {
        self.counters.errors.fetch_add(1, Relaxed);
        // The first error, then one in a thousand: a full disk must not flood the log.
        if self.errors_logged % 1000 == 0 {
            tracing::warn!(error = %e, "cannot {what}; register updates are being lost");
        }
        self.errors_logged += 1;
    }
}

/// Writes every source's highest sequence number to [`WINDOWS_FILE`]: temporary file, sync,
/// rename, sync directory, so the file is always whole.
pub(super) fn write_windows(dir: &Path, windows: &HashMap<String, u64>) -> io::Result<()> {
    let tmp = dir.join(format!("{WINDOWS_FILE}.tmp"));
    let mut out = Vec::with_capacity(HEADER_LEN + windows.len() * 48);
    out.extend_from_slice(&header(WINDOWS_MAGIC, 0));
    let mut scratch = vec![0u8; MAX_RECORD_LEN];
    for (source, &highest) in windows {
        push_record(&WindowRecord { source, highest }, &mut scratch, &mut out);
    }
    let mut f = File::create(&tmp)?;
    f.write_all(&out)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(WINDOWS_FILE))?;
    sync_dir(dir)
}

/// Writes snapshot `generation` of `copy`: temporary file, sync, rename, sync directory.
pub(super) fn write_snapshot(dir: &Path, generation: u64, copy: &Copy) -> io::Result<()> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let mut out = Vec::with_capacity(HEADER_LEN + copy.len() * 256);
    out.extend_from_slice(&header(SNAPSHOT_MAGIC, generation));
    let mut scratch = vec![0u8; MAX_RECORD_LEN];
    for (rule, group, slot) in copy {
        let rec = SnapshotRecord { rule, group, slot };
        if !push_record(&rec, &mut scratch, &mut out) {
            return Err(io::Error::other(format!(
                "a slot of rule `{rule}` does not fit a record"
            )));
        }
    }
    let mut f = File::create(&tmp)?;
    f.write_all(&out)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    sync_dir(dir)
}
