//! Every call into the C library of the host parts, so that `unsafe` lives in this one
//! module, each block with its safety argument.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The signals reflex sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ask a process to stop.
    Term,
    /// Ask a Manager to reload its rulebook.
    Hangup,
    /// End a process at once.
    Kill,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Hangup => libc::SIGHUP,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// A process id as the C library takes it; ids that do not fit, and 0 (which would name our
/// own group), are refused.
fn pid(id: u32) -> io::Result<libc::pid_t> {
    match libc::pid_t::try_from(id) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a process id",
        )),
    }
}

/// Sends `signal` to the process `id`.
pub fn signal(id: u32, signal: Signal) -> io::Result<()> {
    let p = pid(id)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let r = unsafe { libc::kill(p, signal.raw()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `signal` to the process group `id` (a command started as its group's leader, and
/// whatever it started that stayed in its group).
pub fn signal_group(id: u32, signal: Signal) -> io::Result<()> {
    let p = pid(id)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid
    // names the group, which exists while any of its members does.
    let r = unsafe { libc::kill(-p, signal.raw()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The id of this process's parent.
pub fn parent_pid() -> u32 {
    // SAFETY: getppid(2) has no preconditions and cannot fail.
    let p = unsafe { libc::getppid() };
    u32::try_from(p).unwrap_or(0)
}

/// Asks the kernel to send `signal` to this process when its parent ends (Linux; elsewhere
/// nothing happens and the caller relies on polling [`parent_pid`]).
pub fn signal_on_parent_exit(signal: Signal) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, signal.raw());
    }
    #[cfg(not(target_os = "linux"))]
    let _ = signal;
}

/// Takes the exclusive lock of `file` without waiting; `false` when another process holds it.
pub fn try_lock(file: &impl AsRawFd) -> bool {
    // SAFETY: flock(2) on a descriptor the caller owns for the duration of the call; no
    // memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// This host's name, as the kernel gives it; `None` when it cannot be read or is empty.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for writes over its whole length, which is passed along.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// Hours, minutes and seconds of `secs` since the epoch in the local time zone.
pub fn local_hms(secs: i64) -> Option<(i64, i64, i64)> {
    let t = libc::time_t::try_from(secs).ok()?;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: both pointers are valid for the duration of the call; `tm` is plain data that
    // localtime_r fills in when it returns non-null.
    let r = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if r.is_null() {
        return None;
    }
    // SAFETY: zeroed is a valid `tm` (plain integers and a pointer that may be null), and
    // localtime_r succeeded, filling it.
    let tm = unsafe { tm.assume_init() };
    Some((
        i64::from(tm.tm_hour),
        i64::from(tm.tm_min),
        i64::from(tm.tm_sec),
    ))
}

/// Sizes of a mounted file system, in its fragment size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Size of the file system, in fragments.
    pub blocks: u64,
    /// Free fragments, including those reserved for root.
    pub free: u64,
    /// Free fragments available to unprivileged users.
    pub available: u64,
    /// The fragment size, in bytes.
    pub frsize: u64,
}

/// The usage of the file system holding `path`, from statvfs(3).
#[allow(clippy::useless_conversion)]
pub fn statvfs(path: &Path) -> io::Result<FsUsage> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and outlives the call; `st` points to writable memory
    // of the right type, which statvfs fills completely when it returns 0.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(FsUsage {
        blocks: u64::from(st.f_blocks),
        free: u64::from(st.f_bfree),
        available: u64::from(st.f_bavail),
        frsize: u64::from(st.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_answer() {
        assert!(parent_pid() > 0);
        assert!(hostname().is_some_and(|h| !h.is_empty()));
        assert!(local_hms(0).is_some());
        let root = statvfs(Path::new("/")).unwrap();
        assert!(root.blocks > 0 && root.frsize > 0);
        assert!(statvfs(Path::new("/nonexistent/reflex")).is_err());
        assert_eq!(
            signal(0, Signal::Term).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let lock = std::fs::File::open("/").unwrap();
        assert!(try_lock(&lock));
    }
}
