//! Uptime: how long the device has been running.

use reflex_core::event::Tag;
use reflex_core::{Event, Value};

use crate::text::{check_id, tag};
use crate::{Beacon, BeaconError, Emit};

/// Reports `uptime_s`, whole seconds since boot, under `/device/uptime/<id>`.
///
/// The runner's `now_ms` must be the time since boot (a device's monotonic clock).
///
/// ```
/// use reflex_beacons::{device::Uptime, Beacon, Emit};
/// use reflex_core::{Event, Value};
///
/// let mut uptime = Uptime::new("node-7").unwrap();
/// let mut event = Event::new(uptime.tag(), "node-7").unwrap();
/// assert_eq!(uptime.sample(90_500, &mut event), Ok(Emit::Event));
/// assert_eq!(event.get("uptime_s"), Some(&Value::Int(90)));
/// ```
#[derive(Debug, Clone)]
pub struct Uptime {
    tag: Tag,
}

impl Uptime {
    /// An uptime beacon for the device `device_id`.
    pub fn new(device_id: &str) -> Result<Uptime, BeaconError> {
        check_id(
            device_id,
            "the device id must be an id: 1 to 32 bytes, not starting with '.', with no '/', '\\', whitespace, control or glob characters",
        )?;
        Ok(Uptime {
            tag: tag(format_args!("/device/uptime/{device_id}"))?,
        })
    }
}

impl Beacon for Uptime {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        let secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        event.push("uptime_s", Value::Int(secs))?;
        Ok(Emit::Event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_since_boot() {
        let mut u = Uptime::new("d1").unwrap();
        assert_eq!(u.tag(), "/device/uptime/d1");
        let mut e = Event::new(u.tag(), "d1").unwrap();
        assert_eq!(u.sample(999, &mut e), Ok(Emit::Event));
        assert_eq!(e.get("uptime_s"), Some(&Value::Int(0)));
        assert_eq!(u.sample(u64::MAX, &mut e), Ok(Emit::Event));
        assert_eq!(
            e.get("uptime_s"),
            Some(&Value::Int((u64::MAX / 1000) as i64))
        );
    }

    #[test]
    fn rejects_ids_that_break_the_tag() {
        assert!(matches!(
            Uptime::new("a/b"),
            Err(BeaconError::InvalidConfig(_))
        ));
        assert!(matches!(
            Uptime::new(""),
            Err(BeaconError::InvalidConfig(_))
        ));
    }
}
