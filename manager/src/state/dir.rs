//! The state directory: one Manager per directory (a lock), and its pid file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::Error;

/// The file holding the running Manager's pid.
pub const PID_FILE: &str = "manager.pid";
/// The file the running Manager holds a lock on.
pub const LOCK_FILE: &str = "lock";

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
            if !reflex_core::host::sys::try_lock(&lock) {
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
        Ok(f) => !reflex_core::host::sys::try_lock(&f),
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

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
