//! Register persistence under `--state DIR`: a snapshot of every register slot plus a log of
//! the updates made since, so a Manager that is killed comes back with its windows, its edge
//! rules' armed state, their cooldowns and their previous values.
//!
//! # Files
//!
//! | file | what |
//! |---|---|
//! | `registers.snapshot` | every slot at one point: header, then one record per slot |
//! | `registers.log.<G>` | the updates made after snapshot `G`, one record per updated slot |
//! | `manager.pid` | the running Manager's process id (for `reflex reload --state DIR`) |
//! | `lock` | held (`flock`) by the running Manager: one Manager per directory |
//!
//! Both kinds of data file start with a 17-byte header: 8 magic bytes (`RFLXSNAP` or
//! `RFLXLOG\0`), the format version ([`FORMAT_VERSION`]) and the generation `G` (u64, little
//! endian). Then records, each `[len: u32 LE][crc32(payload): u32 LE][payload]`, the payload
//! postcard-encoded:
//!
//! * snapshot record: rule name, group, the whole slot ([`Slot`]);
//! * log record: rule name, group, the evaluation time, the sample pushed, and the slot's
//!   `active`, `last_fired` and `previous` after the evaluation ([`Update::apply`] redoes it).
//!
//! Rules are named, not numbered, so a restart with an edited rulebook maps slots to its rules
//! by name and drops the slots of rules that are gone.
//!
//! # Writing
//!
//! The event thread hands every slot update to a writer thread through a bounded queue
//! ([`QUEUE`]); when the queue is full the update is dropped and counted (the next snapshot
//! covers it again). The writer appends records to the current log and writes them out with
//! `fdatasync` every [`FLUSH_EVERY`] or every [`FLUSH_RECORDS`] records, whichever comes first:
//! a `kill -9` loses at most the updates of the last ~100 ms; a power failure the same, if
//! the disk honours `fdatasync`.
//!
//! A snapshot is taken every [`SNAPSHOT_EVERY`] (when anything changed), when the log passes
//! [`SNAPSHOT_LOG_BYTES`], after a reload, at start and at a clean stop. The event thread
//! copies the store and passes the copy through the same queue, so it lands between the
//! updates it contains and those it does not: the writer starts log `G+1` at that point and a
//! snapshot thread writes snapshot `G+1` to a temporary file, syncs it, renames it over the
//! old one and syncs the directory; only then are the logs before `G+1` deleted.
//!
//! # Restoring
//!
//! [`restore`] reads the snapshot (generation `G`, or 0 without one), then replays logs
//! `G`, `G+1`, ... as long as they follow each other. A record with a bad length or CRC ends
//! its file (a torn write at a crash): it is counted and logged, and replay goes on with the
//! next log. The writer of the new run always starts a new log, so nothing is ever appended
//! after a torn record.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use reflex_core::engine::Update;
use reflex_core::program::Program;
use reflex_core::register::Window;
use reflex_core::store::{GroupKey, MapStore, Slot, Store};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Version byte of the state files this build reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// The snapshot file in the state directory.
pub const SNAPSHOT_FILE: &str = "registers.snapshot";
/// The prefix of log files: `registers.log.<generation>`.
pub const LOG_PREFIX: &str = "registers.log.";
/// The file holding the running Manager's pid.
pub const PID_FILE: &str = "manager.pid";
/// The file the running Manager holds a lock on.
pub const LOCK_FILE: &str = "lock";
/// Bytes of a file header: magic, version, generation.
pub const HEADER_LEN: usize = 17;
/// Longest record payload accepted; a longer length field marks a damaged record.
pub const MAX_RECORD_LEN: usize = 64 * 1024;
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

const SNAPSHOT_MAGIC: [u8; 8] = *b"RFLXSNAP";
const LOG_MAGIC: [u8; 8] = *b"RFLXLOG\0";
/// Bytes before a record's payload: length and CRC.
const RECORD_HEAD: usize = 8;

/// A snapshot record: one slot.
#[derive(Serialize, Deserialize)]
struct SnapshotRecord<'a, S> {
    rule: &'a str,
    group: &'a str,
    slot: S,
}

/// A log record: one evaluation's update of one slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LogRecord<'a> {
    rule: &'a str,
    group: &'a str,
    time: u64,
    sample: f64,
    active: bool,
    last_fired: Option<u64>,
    previous: Option<f64>,
}

/// Counters of persistence, shown on `/metrics`.
#[derive(Debug, Default)]
pub struct StateCounters {
    /// Records appended to the log.
    pub records: AtomicU64,
    /// Updates dropped because the writer's queue was full.
    pub dropped: AtomicU64,
    /// Snapshots written.
    pub snapshots: AtomicU64,
    /// Failed writes, syncs, renames and record encodings.
    pub errors: AtomicU64,
    /// Slots restored at start.
    pub restored: AtomicU64,
    /// Damaged records met at start (a torn last write, typically).
    pub torn: AtomicU64,
}

impl StateCounters {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, kind, help, v) in [
            (
                "reflex_state_records_total",
                "counter",
                "Register updates written to the state log.",
                &self.records,
            ),
            (
                "reflex_state_records_dropped_total",
                "counter",
                "Register updates not logged because the state writer's queue was full.",
                &self.dropped,
            ),
            (
                "reflex_state_snapshots_total",
                "counter",
                "Register snapshots written.",
                &self.snapshots,
            ),
            (
                "reflex_state_errors_total",
                "counter",
                "Failed writes, syncs or renames of state files.",
                &self.errors,
            ),
            (
                "reflex_state_restored_slots",
                "gauge",
                "Register slots restored from the state directory at start.",
                &self.restored,
            ),
            (
                "reflex_state_torn_records_total",
                "counter",
                "Damaged state records skipped at start.",
                &self.torn,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Record framing

fn header(magic: [u8; 8], generation: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&magic);
    h[8] = FORMAT_VERSION;
    h[9..].copy_from_slice(&generation.to_le_bytes());
    h
}

/// Appends `[len][crc][payload]` to `out`.
fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&reflex_core::frame::crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Encodes `value` as one framed record onto `out`; `false` (nothing appended) when it does
/// not fit [`MAX_RECORD_LEN`].
fn push_record<T: Serialize>(value: &T, scratch: &mut [u8], out: &mut Vec<u8>) -> bool {
    match postcard::to_slice(value, scratch) {
        Ok(payload) => {
            frame(payload, out);
            true
        }
        Err(_) => false,
    }
}

/// The records of a file's bytes after its header: each good payload, then how the file
/// ended (`Ok` at a clean end, `Err(offset)` at the first damaged record).
struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    /// The next record decoded as `T`; `Err(offset)` where a record is damaged or does not
    /// decode, since the rest of the file cannot be trusted either.
    fn next_as<T: serde::Deserialize<'a>>(&mut self) -> Option<Result<T, usize>> {
        let start = self.at;
        Some(match self.next()? {
            Ok(payload) => postcard::from_bytes(payload).map_err(|_| start),
            Err(at) => Err(at),
        })
    }

    fn next(&mut self) -> Option<Result<&'a [u8], usize>> {
        let rest = &self.bytes[self.at..];
        if rest.is_empty() {
            return None;
        }
        let bad = Some(Err(self.at));
        if rest.len() < RECORD_HEAD {
            return bad;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD_LEN || rest.len() - RECORD_HEAD < len {
            return bad;
        }
        let payload = &rest[RECORD_HEAD..RECORD_HEAD + len];
        if reflex_core::frame::crc32(payload) != crc {
            return bad;
        }
        self.at += RECORD_HEAD + len;
        Some(Ok(payload))
    }
}

/// Checks a file's header; returns its generation and its records.
fn open_records<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: [u8; 8],
) -> Result<(u64, Records<'a>), Error> {
    let invalid = |why: String| {
        Error::io(
            format!("read state file {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidData, why),
        )
    };
    if bytes.len() < HEADER_LEN || bytes[..8] != magic {
        return Err(invalid(
            "not a reflex state file of this kind; move it out of the state directory".into(),
        ));
    }
    if bytes[8] != FORMAT_VERSION {
        return Err(invalid(format!(
            "format version {}, this reflex reads version {FORMAT_VERSION}; move the state \
             directory's files away to start with empty registers",
            bytes[8]
        )));
    }
    let mut g = [0u8; 8];
    g.copy_from_slice(&bytes[9..HEADER_LEN]);
    Ok((
        u64::from_le_bytes(g),
        Records {
            bytes,
            at: HEADER_LEN,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Restoring

/// What [`restore`] found.
#[derive(Debug)]
pub struct Restored {
    /// The slots, numbered for the program they were restored for.
    pub store: MapStore,
    /// The newest generation seen (snapshot or log); the writer continues after it.
    pub generation: u64,
    /// Slots read from the snapshot.
    pub snapshot_slots: u64,
    /// Log records replayed.
    pub replayed: u64,
    /// Damaged records met (each ends its file).
    pub torn: u64,
    /// Records of rules the program no longer has, dropped.
    pub unknown: u64,
    /// Records that did not fit the store.
    pub full: u64,
}

/// The generations of the log files in `dir`, ascending.
fn log_generations(dir: &Path) -> Result<Vec<u64>, Error> {
    let mut gens = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(gens),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(LOG_PREFIX)) else {
            continue;
        };
        if let Ok(g) = rest.parse::<u64>() {
            gens.push(g);
        }
    }
    gens.sort_unstable();
    Ok(gens)
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{LOG_PREFIX}{generation}"))
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// Rebuilds the register store of `program` from the state directory `dir` (at most `limit`
/// slots). Slots are matched to rules by name; a slot whose window period differs from its
/// rule's keeps its flags but restarts its window.
pub fn restore(dir: &Path, program: &Program<'_>, limit: usize) -> Result<Restored, Error> {
    let rules: HashMap<&str, u32> = program
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (program.str(r.name), i as u32))
        .collect();
    let mut out = Restored {
        store: MapStore::new(limit),
        generation: 0,
        snapshot_slots: 0,
        replayed: 0,
        torn: 0,
        unknown: 0,
        full: 0,
    };
    let torn = |path: &Path, at: usize, out: &mut Restored| {
        out.torn += 1;
        tracing::warn!(
            file = %path.display(),
            offset = at,
            "damaged state record (a write cut short by a crash?); the rest of this file is skipped"
        );
    };

    let snapshot = dir.join(SNAPSHOT_FILE);
    if let Some(bytes) = read_file(&snapshot)? {
        let (generation, mut records) = open_records(&snapshot, &bytes, SNAPSHOT_MAGIC)?;
        out.generation = generation;
        while let Some(r) = records.next_as::<SnapshotRecord<'_, Slot>>() {
            let rec = match r {
                Ok(rec) => rec,
                Err(at) => {
                    torn(&snapshot, at, &mut out);
                    break;
                }
            };
            let Some(&r) = rules.get(rec.rule) else {
                out.unknown += 1;
                continue;
            };
            let period = program.rules[r as usize].period_ms;
            let mut slot = rec.slot;
            if slot.window.period_ms() != Window::new(period).period_ms() {
                slot.window = Window::new(period);
            }
            match out.store.insert(r, rec.group, slot) {
                Ok(()) => out.snapshot_slots += 1,
                Err(_) => out.full += 1,
            }
        }
    }

    // Log `G` follows snapshot `G`; log `G+1` starts where snapshot `G+1` (being written
    // when the Manager stopped, or never finished) would have: replay them in order.
    let first = out.generation;
    let mut expect: Option<u64> = None;
    for g in log_generations(dir)? {
        if g < first {
            continue;
        }
        let wanted = expect.unwrap_or(if g <= first + 1 { g } else { first });
        if g != wanted {
            tracing::warn!(
                generation = g,
                expected = wanted,
                "state log generations do not follow each other; later logs are skipped"
            );
            break;
        }
        expect = Some(g + 1);
        let path = log_path(dir, g);
        let Some(bytes) = read_file(&path)? else {
            continue;
        };
        if bytes.len() < HEADER_LEN {
            // Created but never written: the Manager stopped right after opening it.
            out.generation = g;
            continue;
        }
        let (header_gen, mut records) = open_records(&path, &bytes, LOG_MAGIC)?;
        if header_gen != g {
            tracing::warn!(file = %path.display(), "state log's header names another generation; skipped");
            continue;
        }
        out.generation = g;
        while let Some(r) = records.next_as::<LogRecord<'_>>() {
            let rec = match r {
                Ok(rec) => rec,
                Err(at) => {
                    torn(&path, at, &mut out);
                    break;
                }
            };
            let Some(&r) = rules.get(rec.rule) else {
                out.unknown += 1;
                continue;
            };
            let period = program.rules[r as usize].period_ms;
            match out.store.slot_mut(r, rec.group, period) {
                Ok(slot) => {
                    apply_record(&rec, slot);
                    out.replayed += 1;
                }
                Err(_) => out.full += 1,
            }
        }
    }
    Ok(out)
}

fn apply_record(rec: &LogRecord<'_>, slot: &mut Slot) {
    let copy = Slot {
        window: Window::new(0),
        active: rec.active,
        last_fired: rec.last_fired,
        previous: rec.previous,
    };
    Update {
        rule: 0,
        group: rec.group,
        time: rec.time,
        sample: rec.sample,
        slot: &copy,
    }
    .apply(slot);
}

/// After a reload: moves the slots of `store` from the rules of `old` to the rules of the
/// same name in `new`, drops the others, and restarts the windows whose period changed.
/// Returns the number of slots kept.
pub fn renumber(store: &mut MapStore, old: &Program<'_>, new: &Program<'_>) -> usize {
    let by_name: HashMap<&str, u32> = new
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (new.str(r.name), i as u32))
        .collect();
    store.renumber(|r| {
        let rule = old.rules.get(r as usize)?;
        by_name.get(old.str(rule.name)).copied()
    });
    let changed: Vec<(u32, String)> = store
        .iter()
        .filter(|(r, _, slot)| {
            new.rules.get(*r as usize).is_some_and(|rule| {
                slot.window.period_ms() != Window::new(rule.period_ms).period_ms()
            })
        })
        .map(|(r, g, _)| (r, g.to_string()))
        .collect();
    for (r, g) in changed {
        let period = new.rules[r as usize].period_ms;
        if let Ok(slot) = store.slot_mut(r, &g, period) {
            slot.window = Window::new(period);
        }
    }
    store.len()
}

// ---------------------------------------------------------------------------------------------
// The state directory

/// An open state directory: locked for this Manager, with its pid file written. Dropping it
/// removes the pid file and releases the lock.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates `path` if needed, takes its lock and writes the pid file.
    ///
    /// Errors: the directory cannot be made or written, or another Manager holds it.
    pub fn open(path: &Path) -> Result<StateDir, Error> {
        fs::create_dir_all(path)
            .map_err(|e| Error::io(format!("create state directory {}", path.display()), e))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("open {}", lock_path.display()), e))?;
        {
            if !try_lock(&lock) {
                let e = io::Error::last_os_error();
                let what = format!(
                    "lock state directory {} (is another Manager using it? see {})",
                    path.display(),
                    path.join(PID_FILE).display()
                );
                return Err(Error::io(what, e));
            }
        }
        let pid_path = path.join(PID_FILE);
        fs::write(&pid_path, format!("{}\n", std::process::id()))
            .map_err(|e| Error::io(format!("write {}", pid_path.display()), e))?;
        Ok(StateDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.path.join(PID_FILE));
    }
}

/// The pid in `DIR/manager.pid`, provided a Manager holds the directory's lock (so that a
/// pid file left by a killed Manager never names some other process).
pub fn read_pid(dir: &Path) -> Result<u32, Error> {
    let path = dir.join(PID_FILE);
    let text =
        fs::read_to_string(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let pid = text.trim().parse().map_err(|_| {
        Error::io(
            format!("read {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidData, "not a process id"),
        )
    })?;
    let lock_path = dir.join(LOCK_FILE);
    let held = match File::open(&lock_path) {
        Ok(f) => !try_lock(&f),
        Err(_) => false,
    };
    if !held {
        return Err(Error::io(
            format!("find the Manager of {}", dir.display()),
            io::Error::other(format!(
                "no Manager is running there ({} is left from one that was killed)",
                path.display()
            )),
        ));
    }
    Ok(pid)
}

/// Takes the exclusive lock of `f` without waiting; `false` when another holds it.
fn try_lock(f: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor the caller owns; no memory is involved.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

// ---------------------------------------------------------------------------------------------
// Writing

/// A slot update, owned, on its way to the writer.
struct OwnedUpdate {
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

enum Msg {
    Update(OwnedUpdate),
    Snapshot(Copy),
    Stop,
}

/// The event thread's side of persistence: hands updates and snapshots to the writer thread.
pub struct Persist {
    dir: Arc<StateDir>,
    tx: Sender<Msg>,
    names: Vec<Arc<str>>,
    counters: Arc<StateCounters>,
    /// A snapshot is being written (set here, cleared by the snapshot thread).
    busy: Arc<AtomicBool>,
    /// Log bytes since the last snapshot (kept by the writer).
    log_bytes: Arc<AtomicU64>,
    last_snapshot: Instant,
    /// Updates handed over since the last snapshot.
    since_snapshot: u64,
    /// A snapshot is wanted as soon as the writer can take one.
    wanted: bool,
    writer: Option<JoinHandle<()>>,
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
        };
        let handle = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io("start the state writer", e))?;
        let mut persist = Persist {
            dir,
            tx,
            names: names_of(program),
            counters,
            busy,
            log_bytes,
            last_snapshot: Instant::now(),
            since_snapshot: 0,
            wanted: true,
            writer: Some(handle),
        };
        // The queue is empty: this goes through, and opens the first log before any update.
        persist.snapshot(store);
        Ok(persist)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
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
        let _ = self
            .tx
            .send_timeout(Msg::Snapshot(copy), Duration::from_secs(5));
        let _ = self.tx.send_timeout(Msg::Stop, Duration::from_secs(5));
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

fn names_of(program: &Program<'_>) -> Vec<Arc<str>> {
    program
        .rules
        .iter()
        .map(|r| Arc::from(program.str(r.name)))
        .collect()
}

struct Writer {
    dir: Arc<StateDir>,
    rx: Receiver<Msg>,
    /// The generation of the open log (and of the snapshot that precedes it).
    generation: u64,
    log: Option<File>,
    buf: Vec<u8>,
    pending: usize,
    scratch: Vec<u8>,
    counters: Arc<StateCounters>,
    busy: Arc<AtomicBool>,
    log_bytes: Arc<AtomicU64>,
    snapshotter: Option<JoinHandle<()>>,
    errors_logged: u64,
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

    /// Writes and syncs what is buffered.
    fn flush(&mut self) {
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

/// Writes snapshot `generation` of `copy`: temporary file, sync, rename, sync directory.
fn write_snapshot(dir: &Path, generation: u64, copy: &Copy) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::{Event, Value, engine};
    use reflex_rules::{Catalog, compile_str};

    const BOOK: &str = "
/load/*:
  rules:
    - load:
        rule: rules.simple.gt
        register: register.aggregate.avg
        threshold: 20
        period: 60
        reactions: [reactions.log.print: {}]
    - gone:
        rule: rules.simple.gt
        threshold: 0
        reactions: [reactions.log.print: {}]
";

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("reflex-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn event(source: &str, field: &str, v: f64) -> Event {
        let mut e = Event::new(&format!("/load/{source}"), source).unwrap();
        e.push(field, Value::Float(v)).unwrap();
        e
    }

    fn sorted(store: &MapStore) -> Vec<(u32, String, Slot)> {
        let mut v: Vec<_> = store
            .iter()
            .map(|(r, g, s)| (r, g.to_string(), s.clone()))
            .collect();
        v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        v
    }

    /// Runs events through a live store with persistence, then restores from disk.
    fn run_and_restore(dir: &Path, snapshot_midway: bool) -> (MapStore, Restored) {
        let compiled = compile_str("t.yml", BOOK, &Catalog::builtin()).unwrap();
        let program = compiled.program();
        let counters = Arc::new(StateCounters::default());
        let restored = restore(dir, &program, 1000).unwrap();
        let mut store = restored.store;
        let mut persist = Persist::start(
            StateDir::open(dir).unwrap(),
            restored.generation,
            &program,
            &store,
            counters.clone(),
        )
        .unwrap();
        for i in 0..40u64 {
            if snapshot_midway && i == 20 {
                while persist.busy.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                persist.wanted = true;
                persist.tick(&store);
            }
            let e = event(if i % 2 == 0 { "a" } else { "b" }, "load", (i * 3) as f64);
            engine::evaluate_observed(
                &program,
                &mut store,
                &e,
                1_000 + i * 500,
                |_| {},
                |u| persist.record(&u),
            );
            let e = event("a", "gone", 1.0);
            engine::evaluate_observed(
                &program,
                &mut store,
                &e,
                1_000 + i * 500,
                |_| {},
                |u| persist.record(&u),
            );
        }
        // Simulate a kill: drop the writer's side after it wrote everything, without a
        // final snapshot.
        let Persist { tx, writer, .. } = persist;
        tx.send(Msg::Stop).unwrap();
        writer.unwrap().join().unwrap();
        assert_eq!(counters.dropped.load(Relaxed), 0);
        let again = restore(dir, &program, 1000).unwrap();
        (store, again)
    }

    #[test]
    fn snapshot_and_log_rebuild_the_store() {
        for midway in [false, true] {
            let dir = scratch(&format!("rebuild-{midway}"));
            let (live, restored) = run_and_restore(&dir, midway);
            assert_eq!(
                sorted(&live),
                sorted(&restored.store),
                "midway snapshot: {midway}"
            );
            assert_eq!(restored.torn, 0);
            assert_eq!(restored.replayed, if midway { 40 } else { 80 });
            let _ = fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_torn_last_record_is_counted_and_skipped() {
        let dir = scratch("torn");
        let (live, _) = run_and_restore(&dir, false);
        let g = *log_generations(&dir).unwrap().last().unwrap();
        let path = log_path(&dir, g);
        let bytes = fs::read(&path).unwrap();
        // Cut the last record in half, as a crash mid-write would.
        fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let compiled = compile_str("t.yml", BOOK, &Catalog::builtin()).unwrap();
        let restored = restore(&dir, &compiled.program(), 1000).unwrap();
        assert_eq!(restored.torn, 1);
        assert_eq!(restored.replayed, 79);
        assert_eq!(restored.store.len(), live.len());
        // Garbage in the middle stops that file there too.
        let mut bad = bytes.clone();
        bad[HEADER_LEN + 20] ^= 0xFF;
        fs::write(&path, &bad).unwrap();
        let restored = restore(&dir, &compiled.program(), 1000).unwrap();
        assert_eq!((restored.torn, restored.replayed), (1, 0));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn rules_are_matched_by_name_and_missing_ones_dropped() {
        let dir = scratch("names");
        let (live, _) = run_and_restore(&dir, true);
        // The edited rulebook lists `load` second, drops `gone` and adds `new`.
        let edited = "
/load/*:
  rules:
    - new:
        rule: rules.simple.gt
        threshold: 0
        reactions: [reactions.log.print: {}]
    - load:
        rule: rules.simple.gt
        register: register.aggregate.avg
        threshold: 20
        period: 60
        reactions: [reactions.log.print: {}]
";
        let compiled = compile_str("t.yml", edited, &Catalog::builtin()).unwrap();
        let restored = restore(&dir, &compiled.program(), 1000).unwrap();
        assert!(restored.unknown > 0);
        let load: Vec<_> = sorted(&live).into_iter().filter(|s| s.0 == 0).collect();
        let got: Vec<_> = sorted(&restored.store);
        assert_eq!(got.len(), load.len());
        for ((r, g, s), (_, g0, s0)) in got.iter().zip(&load) {
            assert_eq!((*r, g, s), (1, g0, s0));
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn renumber_keeps_slots_by_name_and_restarts_changed_windows() {
        let old = compile_str("t.yml", BOOK, &Catalog::builtin()).unwrap();
        let new_book = BOOK
            .replace("period: 60", "period: 30")
            .replace("- gone:", "- other:");
        let new = compile_str("t.yml", &new_book, &Catalog::builtin()).unwrap();
        let mut store = MapStore::new(100);
        let p = old.program();
        engine::evaluate(&p, &mut store, &event("a", "load", 30.0), 1_000, |_| {});
        engine::evaluate(&p, &mut store, &event("a", "gone", 1.0), 1_000, |_| {});
        assert_eq!(store.len(), 2);
        assert_eq!(renumber(&mut store, &p, &new.program()), 1);
        let slot = store.slot(0, "a").unwrap();
        assert!(slot.active);
        assert_eq!(slot.window.period_ms(), 30_000);
        assert_eq!(
            slot.window
                .value(reflex_core::register::RegisterFn::Count, 1_000),
            None
        );
    }

    #[test]
    fn a_state_directory_has_one_manager() {
        let dir = scratch("lock");
        let held = StateDir::open(&dir).unwrap();
        assert_eq!(read_pid(&dir).unwrap(), std::process::id());
        let err = StateDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("another Manager"), "{err}");
        drop(held);
        assert!(read_pid(&dir).is_err());
        // A pid file without a Manager holding the lock (one killed outright) is stale.
        fs::write(dir.join(PID_FILE), "1\n").unwrap();
        let err = read_pid(&dir).unwrap_err().to_string();
        assert!(err.contains("no Manager is running"), "{err}");
        let _ = StateDir::open(&dir).unwrap();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn other_versions_are_refused_with_advice() {
        let dir = scratch("version");
        fs::create_dir_all(&dir).unwrap();
        let mut h = header(SNAPSHOT_MAGIC, 3);
        h[8] = 9;
        fs::write(dir.join(SNAPSHOT_FILE), h).unwrap();
        let compiled = compile_str("t.yml", BOOK, &Catalog::builtin()).unwrap();
        let err = restore(&dir, &compiled.program(), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("format version 9"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
