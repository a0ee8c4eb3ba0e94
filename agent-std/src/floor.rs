//! The Actor's replay floor on disk: per issuer, the highest sequence number of an action this
//! Actor performed, written and synced before the action is performed, so that a copy of it
//! arriving after the Actor restarts (within the action's validity) is a replay, never run
//! again.
//!
//! The file is `<state_dir>/floors`, one line per issuer: `<issuer> <seq>`. It is rewritten
//! whole (temporary file, sync, rename, sync of the directory) so it is never half-written.
//! The state directory is created with mode 0700.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;

/// The file of floors in the state directory.
pub const FLOORS_FILE: &str = "floors";

/// The floors kept on disk.
#[derive(Debug)]
pub struct Floors {
    dir: PathBuf,
    floors: HashMap<String, u64>,
}

impl Floors {
    /// Opens the state directory `dir` (creating it, mode 0700) and reads the floors kept
    /// there. A line that is not `<issuer> <seq>` is an error naming the file and line: a
    /// floor silently lost would let a replay run.
    pub fn open(dir: &Path) -> Result<Floors, Error> {
        use std::os::unix::fs::DirBuilderExt;
        let failed = |what: &str, source: std::io::Error| Error::State {
            path: dir.to_owned(),
            what: what.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| failed("create the state directory", e))?;
        let path = dir.join(FLOORS_FILE);
        let mut floors = HashMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    let parsed = line
                        .split_once(' ')
                        .and_then(|(issuer, seq)| Some((issuer, seq.trim().parse::<u64>().ok()?)));
                    let Some((issuer, seq)) = parsed else {
                        return Err(Error::FloorLine { path, line: i + 1 });
                    };
                    floors.insert(issuer.to_owned(), seq);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("read the replay floors", e)),
        }
        Ok(Floors {
            dir: dir.to_owned(),
            floors,
        })
    }

    /// The floors read at start, by issuer.
    pub fn all(&self) -> &HashMap<String, u64> {
        &self.floors
    }

    /// Raises `issuer`'s floor to `seq` and writes it to disk before returning; does nothing
    /// when the floor is already at or above it. An error leaves the file as it was.
    pub fn raise(&mut self, issuer: &str, seq: u64) -> std::io::Result<()> {
        if self.floors.get(issuer).is_some_and(|&f| f >= seq) {
            return Ok(());
        }
        let old = self.floors.insert(issuer.to_owned(), seq);
        let written = self.write();
        if written.is_err() {
            match old {
                Some(f) => self.floors.insert(issuer.to_owned(), f),
                None => self.floors.remove(issuer),
            };
        }
        written
    }

    fn write(&self) -> std::io::Result<()> {
        let mut text = String::new();
        for (issuer, seq) in &self.floors {
            text.push_str(&format!("{issuer} {seq}\n"));
        }
        let tmp = self.dir.join(format!("{FLOORS_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(FLOORS_FILE))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_survive_a_reopen_and_only_rise() {
        let dir = std::env::temp_dir().join(format!("reflex-floors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut f = Floors::open(&dir).unwrap();
        assert!(f.all().is_empty());
        f.raise("manager", 10).unwrap();
        f.raise("manager", 7).unwrap();
        f.raise("other", 3).unwrap();
        let f = Floors::open(&dir).unwrap();
        assert_eq!(f.all().get("manager"), Some(&10));
        assert_eq!(f.all().get("other"), Some(&3));
        std::fs::write(dir.join(FLOORS_FILE), "manager ten\n").unwrap();
        let e = Floors::open(&dir).unwrap_err().to_string();
        assert!(e.contains("floors:1:"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
