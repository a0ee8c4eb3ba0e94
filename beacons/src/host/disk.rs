//! Disk use of a mounted filesystem, from `statvfs`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use reflex_core::event::Tag;
use reflex_core::{Event, Value};

use super::{client_tag, round2};
use crate::text::push_str;
use crate::{Beacon, BeaconError, Emit};

const STATVFS: &str = "the disk path (statvfs)";

/// Reports the use of the filesystem holding a path, under `/client/disk/<source>`:
///
/// * `used_pct`: used share of the space, as `df` computes it (float, 0 to 100, two
///   decimals): `used / (used + available to unprivileged users)`;
/// * `free_mb`: space available to unprivileged users, in MiB (integer);
/// * `mount`: the configured path (string, truncated to the string capacity), so that several
///   disk beacons on one host can be told apart.
///
/// ```
/// use reflex_beacons::host::Disk;
/// use reflex_beacons::{Beacon, Emit};
/// use reflex_core::Event;
///
/// let mut root = Disk::new("web-1", "/").unwrap();
/// let mut event = Event::new(root.tag(), "web-1").unwrap();
/// assert_eq!(root.sample(0, &mut event), Ok(Emit::Event));
/// assert!(event.get("free_mb").is_some());
/// ```
#[derive(Debug)]
pub struct Disk {
    tag: Tag,
    path: CString,
}

impl Disk {
    /// A disk beacon for the host `source_id`, reporting the filesystem that holds `path`
    /// (absolute). The path need not exist yet: until it does, samples fail.
    pub fn new(source_id: &str, path: impl AsRef<Path>) -> Result<Disk, BeaconError> {
        let path = path.as_ref();
        if !path.is_absolute() {
            return Err(BeaconError::InvalidConfig("the disk path must be absolute"));
        }
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| BeaconError::InvalidConfig("the disk path must not contain NUL"))?;
        Ok(Disk {
            tag: client_tag("disk", source_id)?,
            path,
        })
    }
}

impl Beacon for Disk {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        let usage = statvfs(&self.path)?;
        event.push("used_pct", Value::Float(round2(usage.used_pct())))?;
        event.push("free_mb", Value::Int(usage.free_mb()))?;
        push_str(event, "mount", &self.path.to_string_lossy())?;
        Ok(Emit::Event)
    }
}

/// What `statvfs` says about a filesystem, in blocks of `frsize` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    blocks: u64,
    free: u64,
    available: u64,
    frsize: u64,
}

impl Usage {
    /// `df`'s use percentage: the blocks reserved for root count neither as used nor as
    /// available.
    fn used_pct(&self) -> f64 {
        let used = self.blocks.saturating_sub(self.free);
        let usable = used.saturating_add(self.available);
        if usable == 0 {
            return 0.0;
        }
        (used as f64 * 100.0 / usable as f64).clamp(0.0, 100.0)
    }

    /// Space available to unprivileged users, in MiB.
    fn free_mb(&self) -> i64 {
        let bytes = u128::from(self.available) * u128::from(self.frsize);
        i64::try_from(bytes / (1024 * 1024)).unwrap_or(i64::MAX)
    }
}

#[allow(unsafe_code, clippy::useless_conversion)]
fn statvfs(path: &CString) -> Result<Usage, BeaconError> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and outlives the call; `st` points to writable memory
    // of the right type, which statvfs fills completely when it returns 0.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(BeaconError::Unreadable(STATVFS));
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(Usage {
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
    fn computes_like_df() {
        // 1000 blocks, 100 free of which 50 reserved for root: used 900 of 950 usable.
        let u = Usage {
            blocks: 1000,
            free: 100,
            available: 50,
            frsize: 4096,
        };
        assert_eq!(round2(u.used_pct()), 94.74);
        assert_eq!(
            Usage {
                available: 256 * 1024,
                ..u
            }
            .free_mb(),
            1024
        );
        let empty = Usage {
            blocks: 0,
            free: 0,
            available: 0,
            frsize: 0,
        };
        assert_eq!(empty.used_pct(), 0.0);
        assert_eq!(empty.free_mb(), 0);
        // Odd numbers from a strange filesystem stay in range.
        let odd = Usage {
            blocks: 10,
            free: 20,
            available: 30,
            frsize: u64::MAX,
        };
        assert_eq!(odd.used_pct(), 0.0);
        assert_eq!(
            Usage {
                available: u64::MAX,
                ..odd
            }
            .free_mb(),
            i64::MAX
        );
    }

    #[test]
    fn path_must_be_absolute() {
        assert!(matches!(
            Disk::new("h", "var"),
            Err(BeaconError::InvalidConfig(_))
        ));
        assert!(matches!(
            Disk::new("a/b", "/"),
            Err(BeaconError::InvalidConfig(_))
        ));
    }

    #[test]
    fn live_sample_is_plausible() {
        let mut d = Disk::new("test-host", "/").unwrap();
        assert_eq!(d.tag(), "/client/disk/test-host");
        let mut e = Event::new(d.tag(), "test-host").unwrap();
        assert_eq!(d.sample(0, &mut e), Ok(Emit::Event));
        let Some(Value::Float(used)) = e.get("used_pct") else {
            panic!("{e:?}")
        };
        assert!((0.0..=100.0).contains(used), "used_pct {used}");
        let Some(Value::Int(free)) = e.get("free_mb") else {
            panic!("{e:?}")
        };
        assert!(*free >= 0);
        assert_eq!(e.get("mount"), Some(&Value::str("/").unwrap()));
    }

    #[test]
    fn missing_path_is_unreadable() {
        let mut d = Disk::new("h", "/no/such/path/for/reflex").unwrap();
        let mut e = Event::new(d.tag(), "h").unwrap();
        assert_eq!(d.sample(0, &mut e), Err(BeaconError::Unreadable(STATVFS)));
    }
}
