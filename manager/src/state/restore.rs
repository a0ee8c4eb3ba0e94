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

/// The highest sequence number kept for each source in [`WINDOWS_FILE`] of `dir` (none when
/// the file is missing), and how many damaged records were skipped.
pub fn restore_windows(dir: &Path) -> Result<(HashMap<String, u64>, u64), Error> {
    let path = dir.join(WINDOWS_FILE);
    let mut out = HashMap::new();
    let Some(bytes) = read_file(&path)? else {
        return Ok((out, 0));
    };
    let (_, mut records) = open_records(&path, &bytes, WINDOWS_MAGIC)?;
    let mut damaged = 0;
    while let Some(r) = records.next_as::<WindowRecord<'_>>() {
        match r {
            Ok(rec) => {
                out.insert(rec.source.to_owned(), rec.highest);
            }
            Err(at) => {
                damaged += 1;
                tracing::warn!(
                    file = %path.display(),
                    offset = at,
                    "damaged replay window record; the rest of the file is skipped, and those \
                     sources start with empty windows"
                );
                break;
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
