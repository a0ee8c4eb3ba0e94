//! The wall clock: milliseconds and microseconds since the Unix epoch, the local time of day.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `HH:MM:SS.mmm` of a time in milliseconds since the epoch, in the local time zone (UTC when
/// the zone cannot be read).
///
/// ```
/// let t = reflex_core::host::clock::time_of_day(0);
/// assert_eq!(t.len(), 12);
/// assert_eq!(&t[8..], ".000");
/// ```
pub fn time_of_day(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let millis = ms % 1000;
    let (h, m, s) = super::sys::local_hms(secs).unwrap_or_else(|| {
        let day = secs.rem_euclid(86_400);
        (day / 3600, day / 60 % 60, day % 60)
    });
    format!("{h:02}:{m:02}:{s:02}.{millis:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward() {
        let a = now_ms();
        assert!(a > 1_600_000_000_000);
        assert!(now_us() / 1000 >= a);
        let t = time_of_day(a);
        assert_eq!(t.as_bytes()[2], b':');
        assert_eq!(t.as_bytes()[5], b':');
    }
}
