//! Wall-clock helpers: milliseconds since the Unix epoch and the local time of day.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `HH:MM:SS.mmm` of a time in milliseconds since the epoch, in the local time zone (UTC when
/// the zone cannot be read).
pub fn time_of_day(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let millis = ms % 1000;
    let (h, m, s) = local_hms(secs).unwrap_or_else(|| {
        let day = secs.rem_euclid(86_400);
        (
            (day / 3600) as i32,
            (day / 60 % 60) as i32,
            (day % 60) as i32,
        )
    });
    format!("{h:02}:{m:02}:{s:02}.{millis:03}")
}

fn local_hms(secs: i64) -> Option<(i32, i32, i32)> {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers are valid for the
    // duration of the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    Some((tm.tm_hour, tm.tm_min, tm.tm_sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_example() {
        let t = time_of_day(0);
        assert_eq!(t.len(), 12);
        assert_eq!(&t[8..], ".000");
    }

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
