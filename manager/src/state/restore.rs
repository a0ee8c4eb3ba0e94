//! Restoring registers from a state directory, and renumbering them for another rulebook.

use std::collections::HashMap;
use std::fs::{self};
use std::io::{self};
use std::path::{Path, PathBuf};

use reflex_core::engine::Update;
use reflex_core::program::Program;
use reflex_core::register::Window;
use reflex_core::store::{MapStore, Slot, Store};

use super::format::*;
use crate::Error;

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
    /// Everything skipped, by [`SkipReason`] (in the order of [`SkipReason::ALL`]): damaged
    /// records, undecodable ones, those of rules gone, those the store had no room for, and
    /// files with a bad header.
    pub skipped: [u64; SkipReason::ALL.len()],
}

impl Restored {
    fn skip(&mut self, reason: SkipReason) {
        self.skipped[reason as usize] += 1;
        match reason {
            SkipReason::Damaged | SkipReason::Undecodable => self.torn += 1,
            SkipReason::UnknownRule => self.unknown += 1,
            SkipReason::StoreFull => self.full += 1,
            SkipReason::BadHeader => {}
        }
    }
}

/// Logs a skipped stretch of a state file loudly, with where and why.
pub(super) fn warn_skipped(path: &Path, at: usize, reason: SkipReason) {
    tracing::warn!(
        file = %path.display(),
        offset = at,
        reason = reason.as_str(),
        "state record skipped (a write cut short by a crash, or damage on disk); reading goes on \
         with the next good record (counted in reflex_state_records_skipped_total)"
    );
}

/// Logs a state file skipped whole for its header.
pub(super) fn warn_bad_header(path: &Path, why: &str) {
    tracing::warn!(
        file = %path.display(),
        "state file skipped: {why} (counted in reflex_state_records_skipped_total{{reason=\"bad_header\"}})"
    );
}

/// The generations of the log files in `dir`, ascending.
pub(super) fn log_generations(dir: &Path) -> Result<Vec<u64>, Error> {
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

pub(super) fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{LOG_PREFIX}{generation}"))
}

pub(super) fn read_file(path: &Path) -> Result<Option<Vec<u8>>, Error> {
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
        skipped: [0; SkipReason::ALL.len()],
    };

    let snapshot = dir.join(SNAPSHOT_FILE);
    // Without a trustworthy snapshot, the logs are replayed from the oldest one there is.
    let mut from_oldest_log = false;
    if let Some(bytes) = read_file(&snapshot)? {
        match open_records(&snapshot, &bytes, SNAPSHOT_MAGIC)? {
            Err(BadHeader(why)) => {
                warn_bad_header(&snapshot, &why);
                out.skip(SkipReason::BadHeader);
                from_oldest_log = true;
            }
            Ok((generation, mut records)) => {
                out.generation = generation;
                while let Some(r) = records.next_as::<SnapshotRecord<'_, Slot>>() {
                    let rec = match r {
                        Ok(rec) => rec,
                        Err((at, reason)) => {
                            warn_skipped(&snapshot, at, reason);
                            out.skip(reason);
                            continue;
                        }
                    };
                    let Some(&r) = rules.get(rec.rule) else {
                        out.skip(SkipReason::UnknownRule);
                        continue;
                    };
                    let period = program.rules[r as usize].period_ms;
                    let mut slot = rec.slot;
                    if slot.window.period_ms() != Window::new(period).period_ms() {
                        slot.window = Window::new(period);
                    }
                    match out.store.insert(r, rec.group, slot) {
                        Ok(()) => out.snapshot_slots += 1,
                        Err(_) => out.skip(SkipReason::StoreFull),
                    }
                }
            }
        }
    }

    // Log `G` follows snapshot `G`; log `G+1` starts where snapshot `G+1` (being written
    // when the Manager stopped, or never finished) would have: replay them in order.
    let gens = log_generations(dir)?;
    let first = if from_oldest_log {
        gens.first().copied().unwrap_or(0)
    } else {
        out.generation
    };
    let mut expect: Option<u64> = None;
    for g in gens {
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
        out.generation = out.generation.max(g);
        let (header_gen, mut records) = match open_records(&path, &bytes, LOG_MAGIC)? {
            Ok(opened) => opened,
            Err(BadHeader(why)) => {
                warn_bad_header(&path, &why);
                out.skip(SkipReason::BadHeader);
                continue;
            }
        };
        if header_gen != g {
            warn_bad_header(&path, "its header names another generation");
            out.skip(SkipReason::BadHeader);
            continue;
        }
        while let Some(r) = records.next_as::<LogRecord<'_>>() {
            let rec = match r {
                Ok(rec) => rec,
                Err((at, reason)) => {
                    warn_skipped(&path, at, reason);
                    out.skip(reason);
                    continue;
                }
            };
            let Some(&r) = rules.get(rec.rule) else {
                out.skip(SkipReason::UnknownRule);
                continue;
            };
            let period = program.rules[r as usize].period_ms;
            match out.store.slot_mut(r, rec.group, period) {
                Ok(slot) => {
                    apply_record(&rec, slot);
                    out.replayed += 1;
                }
                Err(_) => out.skip(SkipReason::StoreFull),
            }
        }
    }
    Ok(out)
}

/// The highest sequence number kept for each source in [`WINDOWS_FILE`] of `dir` (none when
/// the file is missing), and how many damaged records were skipped.
pub fn restore_windows(dir: &Path) -> Result<(HashMap<String, u64>, u64), Error> {
    let path = dir.join(WINDOWS_FILE);
    let mut out = HashMap::new();
    let Some(bytes) = read_file(&path)? else {
        return Ok((out, 0));
    };
    let mut records = match open_records(&path, &bytes, WINDOWS_MAGIC)? {
        Ok((_, records)) => records,
        Err(BadHeader(why)) => {
            warn_bad_header(&path, &why);
            return Ok((out, 1));
        }
    };
    let mut damaged = 0;
    while let Some(r) = records.next_as::<WindowRecord<'_>>() {
        match r {
            Ok(rec) => {
                out.insert(rec.source.to_owned(), rec.highest);
            }
            Err((at, reason)) => {
                damaged += 1;
                warn_skipped(&path, at, reason);
            }
        }
    }
    Ok((out, damaged))
}

pub(super) fn apply_record(rec: &LogRecord<'_>, slot: &mut Slot) {
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
