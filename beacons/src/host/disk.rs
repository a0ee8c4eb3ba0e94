//! Disk use of a mounted filesystem, from `statvfs`.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use reflex_core::event::Tag;
use reflex_core::host::sys::{self, FsUsage as Usage};
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
    path: PathBuf,
}

impl Disk {
    /// A disk beacon for the host `source_id`, reporting the filesystem that holds `path`
    /// (absolute). The path need not exist yet: until it does, samples fail.
    pub fn new(source_id: &str, path: impl AsRef<Path>) -> Result<Disk, BeaconError> {
        let path = path.as_ref();
        if !path.is_absolute() {
            return Err(BeaconError::InvalidConfig("the disk path must be absolute"));
        }
        if path.as_os_str().as_bytes().contains(&0) {
            return Err(BeaconError::InvalidConfig(
                "the disk path must not contain NUL",
            ));
        }
        Ok(Disk {
            tag: client_tag("disk", source_id)?,
            path: path.to_owned(),
        })
    }
}

impl Beacon for Disk {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        let usage = sys::statvfs(&self.path).map_err(|_| BeaconError::Unreadable(STATVFS))?;
        event.push("used_pct", Value::Float(round2(used_pct(&usage))))?;
        event.push("free_mb", Value::Int(free_mb(&usage)))?;
        push_str(event, "mount", &self.path.to_string_lossy())?;
        Ok(Emit::Event)
    }
}

/// `df`'s use percentage: the blocks reserved for root count neither as used nor as
/// available.
fn used_pct(u: &Usage) -> f64 {
    let used = u.blocks.saturating_sub(u.free);
    let usable = used.saturating_add(u.available);
    if usable == 0 {
        return 0.0;
    }
    (used as f64 * 100.0 / usable as f64).clamp(0.0, 100.0)
}

/// Space available to unprivileged users, in MiB.
fn free_mb(u: &Usage) -> i64 {
    let bytes = u128::from(u.available) * u128::from(u.frsize);
    i64::try_from(bytes / (1024 * 1024)).unwrap_or(i64::MAX)
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
        assert_eq!(round2(used_pct(&u)), 94.74);
        assert_eq!(
            free_mb(&Usage {
                available: 256 * 1024,
                ..u
            }),
            1024
        );
        let empty = Usage {
            blocks: 0,
            free: 0,
            available: 0,
            frsize: 0,
        };
        assert_eq!(used_pct(&empty), 0.0);
        assert_eq!(free_mb(&empty), 0);
        // Odd numbers from a strange filesystem stay in range.
        let odd = Usage {
            blocks: 10,
            free: 20,
            available: 30,
            frsize: u64::MAX,
        };
        assert_eq!(used_pct(&odd), 0.0);
        assert_eq!(
            free_mb(&Usage {
                available: u64::MAX,
                ..odd
            }),
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
