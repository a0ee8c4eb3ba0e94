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
//! | `replay.windows` | the highest sequence number accepted from each allow-listed source |
//! | `actions.journal` | every action to one Actor not yet answered or expired ([`Journal`]) |
//! | `manager.pid` | the running Manager's process id (for `reflex reload --state DIR`) |
//! | `lock` | held (`flock`) by the running Manager: one Manager per directory |
//!
//! Every data file starts with a 21-byte header: 8 magic bytes (`RFLXSNAP`, `RFLXLOG\0`,
//! `RFLXRPLY` or `RFLXACTS`), the format version ([`FORMAT_VERSION`](format::FORMAT_VERSION)), the
//! generation `G` (u64, little endian) and the CRC-32 of those 17 bytes (version 1 files,
//! without it, are still read). Then records, each `[len: u32 LE][crc32(payload): u32 LE][payload]`, the payload
//! postcard-encoded:
//!
//! * snapshot record: rule name, group, the whole slot ([`Slot`](reflex_core::store::Slot));
//! * log record: rule name, group, the evaluation time, the sample pushed, and the slot's
//!   `active`, `last_fired` and `previous` after the evaluation ([`Update::apply`](reflex_core::engine::Update::apply) redoes it).
//!
//! Rules are named, not numbered, so a restart with an edited rulebook maps slots to its rules
//! by name and drops the slots of rules that are gone.
//!
//! # Writing
//!
//! The event thread hands every slot update to a writer thread through a bounded queue
//! ([`QUEUE`](writer::QUEUE)); when the queue is full the update is dropped and counted (the next snapshot
//! covers it again). The writer appends records to the current log and writes them out with
//! `fdatasync` every [`FLUSH_EVERY`](writer::FLUSH_EVERY) or every [`FLUSH_RECORDS`](writer::FLUSH_RECORDS) records, whichever comes first:
//! a `kill -9` loses at most the updates of the last ~100 ms; a power failure the same, if
//! the disk honours `fdatasync`.
//!
//! A snapshot is taken every [`SNAPSHOT_EVERY`](writer::SNAPSHOT_EVERY) (when anything changed), when the log passes
//! [`SNAPSHOT_LOG_BYTES`](writer::SNAPSHOT_LOG_BYTES), after a reload, at start and at a clean stop. The event thread
//! copies the store and passes the copy through the same queue, so it lands between the
//! updates it contains and those it does not: the writer starts log `G+1` at that point and a
//! snapshot thread writes snapshot `G+1` to a temporary file, syncs it, renames it over the
//! old one and syncs the directory; only then are the logs before `G+1` deleted.
//!
//! # Restoring
//!
//! [`restore()`] reads the snapshot (generation `G`, or 0 without one), then replays logs
//! `G`, `G+1`, ... as long as they follow each other. A record with a bad length or CRC (a
//! torn write at a crash, damage on disk) costs only itself: reading resumes at the next good
//! record. A file with a bad header is skipped whole. Every skip is logged and counted by
//! [`SkipReason`]. The writer of the new run always starts a new log, so nothing is ever
//! appended after a torn record.

mod dir;
mod format;
mod journal;
mod restore;
mod writer;

pub use dir::{StateDir, read_pid};
pub use format::SkipReason;
pub use journal::{Journal, Saved};
pub use restore::{Restored, renumber, restore, restore_windows};
pub use writer::Persist;

#[cfg(test)]
mod tests {
    use super::dir::*;
    use super::format::*;
    use super::restore::*;
    use super::writer::*;
    use crate::metrics::StateCounters;
    use reflex_core::store::Store;
    use reflex_core::store::{MapStore, Slot};
    use reflex_core::{Event, Value, engine};
    use reflex_rules::{Catalog, compile_str};
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

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
        // A flipped byte in the first record costs that record only: reading resumes at the
        // next good one.
        let mut bad = bytes.clone();
        bad[HEADER_LEN + 20] ^= 0xFF;
        fs::write(&path, &bad).unwrap();
        let restored = restore(&dir, &compiled.program(), 1000).unwrap();
        assert_eq!((restored.torn, restored.replayed), (1, 79));
        assert_eq!(restored.skipped[SkipReason::Damaged as usize], 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_snapshot_header_or_record_is_skipped_counted_and_the_rest_kept() {
        let dir = scratch("snapshot-damage");
        let (live, _) = run_and_restore(&dir, true);
        let compiled = compile_str("t.yml", BOOK, &Catalog::builtin()).unwrap();
        let path = dir.join(SNAPSHOT_FILE);
        let good = fs::read(&path).unwrap();
        let whole = restore(&dir, &compiled.program(), 1000).unwrap();
        assert_eq!(sorted(&whole.store), sorted(&live));
        assert!(whole.snapshot_slots >= 2, "{}", whole.snapshot_slots);
        // One flipped byte in the first slot's record: only that slot is lost.
        let mut bad = good.clone();
        bad[HEADER_LEN + RECORD_HEAD + 2] ^= 0x40;
        fs::write(&path, &bad).unwrap();
        let r = restore(&dir, &compiled.program(), 1000).unwrap();
        assert_eq!(r.snapshot_slots, whole.snapshot_slots - 1);
        assert_eq!(r.skipped[SkipReason::Damaged as usize], 1);
        // A flipped byte in the header's generation: the header's CRC catches it, the file
        // is skipped and counted, and the logs are replayed from the oldest.
        let mut bad = good.clone();
        bad[10] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        let r = restore(&dir, &compiled.program(), 1000).unwrap();
        assert_eq!(r.skipped[SkipReason::BadHeader as usize], 1);
        assert_eq!(r.snapshot_slots, 0);
        assert!(r.replayed > 0);
        // Empty and cut short get the same answer: skipped and counted, never a refusal.
        for cut in [0, 5, HEADER_LEN - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            let r = restore(&dir, &compiled.program(), 1000).unwrap();
            assert_eq!(r.skipped[SkipReason::BadHeader as usize], 1, "cut at {cut}");
        }
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
