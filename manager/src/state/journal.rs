//! The action journal (`actions.journal`): every action to one Actor from the moment it is
//! made until its result, its expiry or its eviction, so that a Manager restarted on the same
//! `--state` (cleanly or after `kill -9`) sends again what was still unanswered, or reports it
//! expired.
//!
//! Records follow the header (magic `RFLXACTS`): `Add` holds the signed bytes of one copy and
//! what its expiry report names, and is synced to disk before the copy is handed to the
//! Publisher; `Done` closes it and is written without a sync (losing one costs a resend, which
//! the Actor answers from its memory without running the action again). At open, the journal
//! is read, its open actions are kept, and the file is rewritten with only those.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dir::sync_dir;
use super::format::{
    ACTIONS_MAGIC, BadHeader, JOURNAL_FILE, MAX_RECORD_LEN, header, open_records, push_record,
};
use super::restore::{read_file, warn_bad_header, warn_skipped};
use crate::Error;

/// One journalled copy of an action, addressed to one Actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The action's id.
    pub id: u64,
    /// The Actor it is for.
    pub target: String,
    /// When it expires, milliseconds since the Unix epoch (0: never).
    pub expires_ms: u64,
    /// The rule that made it.
    pub rule: String,
    /// Its function key.
    pub function: String,
    /// Its hops.
    pub hops: u8,
    /// The encoded, authenticated envelope, as the Publisher broadcasts it.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Add(Saved),
    Done { id: u64, target: String },
}

/// Records appended after which the journal is rewritten with only its open actions, when
/// they are fewer than a quarter of them.
const COMPACT_AFTER: usize = 10_000;

/// The open action journal of a state directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    appended: usize,
    scratch: Vec<u8>,
    out: Vec<u8>,
}

impl Journal {
    /// Opens the journal of `dir`: returns it, the actions still open in it (in the order
    /// they were made), and how many damaged records were skipped (each logged).
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Saved>, u64), Error> {
        let path = dir.join(JOURNAL_FILE);
        let mut open: HashMap<(u64, String), Saved> = HashMap::new();
        let mut skipped = 0;
        if let Some(bytes) = read_file(&path)? {
            match open_records(&path, &bytes, ACTIONS_MAGIC)? {
                Ok((_, mut records)) => {
                    while let Some(r) = records.next_as::<Record>() {
                        match r {
                            Ok(Record::Add(s)) => {
                                open.insert((s.id, s.target.clone()), s);
                            }
                            Ok(Record::Done { id, target }) => {
                                open.remove(&(id, target));
                            }
                            Err((at, reason)) => {
                                skipped += 1;
                                warn_skipped(&path, at, reason);
                            }
                        }
                    }
                }
                Err(BadHeader(why)) => {
                    skipped += 1;
                    warn_bad_header(&path, &why);
                }
            }
        }
        let mut saved: Vec<Saved> = open.into_values().collect();
        saved.sort_by_key(|s| s.id);
        let file =
            rewrite(dir, &saved).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        let journal = Journal {
            dir: dir.to_owned(),
            file,
            appended: saved.len(),
            scratch: vec![0u8; MAX_RECORD_LEN],
            out: Vec::new(),
        };
        Ok((journal, saved, skipped))
    }

    /// Records `saved` and syncs it to disk.
    pub fn add(&mut self, saved: &Saved) -> io::Result<()> {
        self.append(&Record::Add(saved.clone()))?;
        self.file.sync_data()
    }

    /// Records that action `id` to `target` is closed (answered, expired or evicted).
    pub fn done(&mut self, id: u64, target: &str) -> io::Result<()> {
        self.append(&Record::Done {
            id,
            target: target.to_owned(),
        })
    }

    /// Whether enough has been appended that [`Journal::compact`] with `open` actions
    /// would shrink the file.
    pub fn wants_compaction(&self, open: usize) -> bool {
        self.appended >= COMPACT_AFTER && open.saturating_mul(4) < self.appended
    }

    /// Rewrites the journal with only the `open` actions.
    pub fn compact(&mut self, open: &[Saved]) -> io::Result<()> {
        self.file = rewrite(&self.dir, open)?;
        self.appended = open.len();
        Ok(())
    }

    fn append(&mut self, record: &Record) -> io::Result<()> {
        self.out.clear();
        if !push_record(record, &mut self.scratch, &mut self.out) {
            return Err(io::Error::other(
                "an action record larger than a state record",
            ));
        }
        self.file.write_all(&self.out)?;
        self.appended += 1;
        Ok(())
    }
}

/// Writes a journal holding `open` to a temporary file, syncs it, renames it over the journal
/// and syncs the directory; returns the new journal opened for appending.
fn rewrite(dir: &Path, open: &[Saved]) -> io::Result<File> {
    let path = dir.join(JOURNAL_FILE);
    let tmp = dir.join(format!("{JOURNAL_FILE}.tmp"));
    let mut out = Vec::new();
    out.extend_from_slice(&header(ACTIONS_MAGIC, 0));
    let mut scratch = vec![0u8; MAX_RECORD_LEN];
    for s in open {
        push_record(&Record::Add(s.clone()), &mut scratch, &mut out);
    }
    let mut f = File::create(&tmp)?;
    f.write_all(&out)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    OpenOptions::new().append(true).open(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(id: u64, target: &str) -> Saved {
        Saved {
            id,
            target: target.into(),
            expires_ms: 9,
            rule: "r".into(),
            function: "reactions.actor.run".into(),
            hops: 1,
            bytes: vec![1, 2, 3, id as u8],
        }
    }

    #[test]
    fn open_actions_survive_and_closed_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("reflex-journal-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (mut j, open, skipped) = Journal::open(&dir).unwrap();
        assert!(open.is_empty());
        assert_eq!(skipped, 0);
        j.add(&saved(1, "a")).unwrap();
        j.add(&saved(2, "a")).unwrap();
        j.add(&saved(2, "b")).unwrap();
        j.done(2, "a").unwrap();
        drop(j);
        let (mut j, open, _) = Journal::open(&dir).unwrap();
        assert_eq!(open, [saved(1, "a"), saved(2, "b")]);
        j.done(1, "a").unwrap();
        // A torn last record (a crash in the middle of a write) costs only itself.
        drop(j);
        let path = dir.join(JOURNAL_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[40, 0, 0, 0, 1]);
        fs::write(&path, bytes).unwrap();
        let (_, open, skipped) = Journal::open(&dir).unwrap();
        assert_eq!(open, [saved(2, "b")]);
        assert_eq!(skipped, 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
