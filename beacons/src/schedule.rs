//! When a beacon runs, and which of its samples are sent.
//!
//! A [`Schedule`] holds a beacon's interval and, optionally, an on-change filter: send only
//! when a field differs from the last event sent (numbers by at least a minimum delta), but
//! still at least once per heartbeat. It keeps no copy of the last event, only a fingerprint
//! of each field (24 bytes a field), so it fits on a device.

use heapless::Vec;
use reflex_core::event::MAX_FIELDS;
use reflex_core::{Error, Event, Value};

use crate::{Beacon, BeaconError, Emit};

/// A beacon's timing and change filter.
///
/// ```
/// use reflex_beacons::Schedule;
///
/// // Sample every 10 s; send when a number moves by 5 or more, and at least every minute.
/// let mut s = Schedule::every(10_000).min_delta(5.0).heartbeat(60_000);
/// assert!(s.is_due(0));
/// s.mark_sampled(0);
/// assert!(!s.is_due(9_999));
/// assert_eq!(s.due_in_ms(4_000), 6_000);
/// assert!(s.is_due(10_000));
/// ```
#[derive(Debug, Clone)]
pub struct Schedule {
    interval_ms: u64,
    on_change: bool,
    min_delta: f64,
    heartbeat_ms: Option<u64>,
    next_due_ms: Option<u64>,
    last_emit_ms: Option<u64>,
    last: Vec<Seen, MAX_FIELDS>,
}

/// What the filter remembers of one field of the last event sent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    name: u64,
    value: SeenValue,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SeenValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// FNV-1a hash of the string.
    Str(u64),
}

impl Schedule {
    /// Samples every `interval_ms` milliseconds and sends every sample. An interval of 0
    /// makes the beacon due at every poll. The first sample is due at once.
    pub const fn every(interval_ms: u64) -> Schedule {
        Schedule {
            interval_ms,
            on_change: false,
            min_delta: 0.0,
            heartbeat_ms: None,
            next_due_ms: None,
            last_emit_ms: None,
            last: Vec::new(),
        }
    }

    /// Sends a sample only when one of its fields differs from the last event sent: a field
    /// appeared or disappeared, or its value changed. The first sample is always sent.
    pub const fn on_change(mut self) -> Schedule {
        self.on_change = true;
        self
    }

    /// Like [`on_change`](Schedule::on_change), but numbers (integers and floats) count as
    /// changed only when they moved by at least `delta` from the last event sent. Strings and
    /// booleans count as changed on any difference. A `delta` of 0 or less is any change.
    pub const fn min_delta(mut self, delta: f64) -> Schedule {
        self.on_change = true;
        self.min_delta = delta;
        self
    }

    /// With an on-change filter, still sends a sample when `every_ms` milliseconds have passed
    /// since the last event sent, so silence means "unchanged", not "gone".
    pub const fn heartbeat(mut self, every_ms: u64) -> Schedule {
        self.heartbeat_ms = Some(every_ms);
        self
    }

    /// The interval, in milliseconds.
    pub const fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// Whether the beacon should be sampled at `now_ms`.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.next_due_ms.is_none_or(|due| now_ms >= due)
    }

    /// How long a runner may sleep before this beacon is due: 0 when it is due now.
    pub fn due_in_ms(&self, now_ms: u64) -> u64 {
        self.next_due_ms.map_or(0, |due| due.saturating_sub(now_ms))
    }

    /// Records a sample taken at `now_ms` and moves the next due time one interval on. The
    /// schedule keeps its phase when a sample is a little late, and starts afresh from `now_ms`
    /// when a whole interval was missed, rather than sampling in a burst to catch up.
    pub fn mark_sampled(&mut self, now_ms: u64) {
        let next = match self.next_due_ms {
            Some(due) => due.saturating_add(self.interval_ms),
            None => now_ms.saturating_add(self.interval_ms),
        };
        self.next_due_ms = Some(if next <= now_ms {
            now_ms.saturating_add(self.interval_ms)
        } else {
            next
        });
    }

    /// Decides whether a sampled event is sent, and if so remembers it as the last event
    /// sent. Without an on-change filter, every sample is sent.
    pub fn filter(&mut self, now_ms: u64, event: &Event) -> Emit {
        let send = match self.last_emit_ms {
            None => true,
            Some(_) if !self.on_change => true,
            Some(last) => {
                self.changed(event)
                    || self
                        .heartbeat_ms
                        .is_some_and(|hb| now_ms.saturating_sub(last) >= hb)
            }
        };
        if !send {
            return Emit::Skip;
        }
        self.last_emit_ms = Some(now_ms);
        if self.on_change {
            self.last.clear();
            for f in &event.data {
                // Cannot fail: both hold at most MAX_FIELDS.
                let _ = self.last.push(Seen {
                    name: fnv1a(f.name.as_bytes()),
                    value: seen(&f.value),
                });
            }
        }
        Emit::Event
    }

    /// Runs `beacon` if it is due: sets the event's tag, clears its data, samples, and
    /// filters. Returns [`Emit::Skip`] when the beacon is not due, when the beacon itself
    /// skipped, or when the filter held the sample back. A failed sample still counts as a
    /// sample, so a broken beacon is retried at its interval, not in a loop.
    pub fn run<B: Beacon + ?Sized>(
        &mut self,
        beacon: &mut B,
        now_ms: u64,
        event: &mut Event,
    ) -> Result<Emit, BeaconError> {
        if !self.is_due(now_ms) {
            return Ok(Emit::Skip);
        }
        self.mark_sampled(now_ms);
        event.tag.clear();
        event
            .tag
            .push_str(beacon.tag())
            .map_err(|_| Error::TagTooLong)?;
        event.data.clear();
        match beacon.sample(now_ms, event)? {
            Emit::Event => Ok(self.filter(now_ms, event)),
            Emit::Skip => Ok(Emit::Skip),
        }
    }

    fn changed(&self, event: &Event) -> bool {
        if event.data.len() != self.last.len() {
            return true;
        }
        event.data.iter().any(|f| {
            let name = fnv1a(f.name.as_bytes());
            match self.last.iter().find(|s| s.name == name) {
                None => true,
                Some(old) => self.differs(old.value, seen(&f.value)),
            }
        })
    }

    fn differs(&self, old: SeenValue, new: SeenValue) -> bool {
        let exact = self.min_delta <= 0.0;
        match (old, new) {
            (SeenValue::Int(a), SeenValue::Int(b)) if exact => a != b,
            (SeenValue::Int(a), SeenValue::Int(b)) => self.moved(a as f64, b as f64),
            (SeenValue::Float(a), SeenValue::Float(b)) if exact => a != b,
            (SeenValue::Float(a), SeenValue::Float(b)) => self.moved(a, b),
            // Booleans, strings, and a change of type.
            _ => old != new,
        }
    }

    fn moved(&self, a: f64, b: f64) -> bool {
        let d = a - b;
        let d = if d < 0.0 { -d } else { d };
        // A NaN reading counts as moved.
        d.is_nan() || d >= self.min_delta
    }
}

fn seen(value: &Value) -> SeenValue {
    match value {
        Value::Int(i) => SeenValue::Int(*i),
        Value::Float(x) => SeenValue::Float(*x),
        Value::Bool(b) => SeenValue::Bool(*b),
        Value::Str(s) => SeenValue::Str(fnv1a(s.as_bytes())),
    }
}

/// 64-bit FNV-1a: small, no tables, good enough to tell short strings apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fields: &[(&str, Value)]) -> Event {
        let mut e = Event::new("/t", "h").unwrap();
        for (n, v) in fields {
            e.push(n, v.clone()).unwrap();
        }
        e
    }

    fn f(x: f64) -> Value {
        Value::Float(x)
    }

    #[test]
    fn due_at_once_then_every_interval() {
        let mut s = Schedule::every(1_000);
        assert!(s.is_due(5));
        assert_eq!(s.due_in_ms(5), 0);
        s.mark_sampled(5);
        assert!(!s.is_due(1_004));
        assert_eq!(s.due_in_ms(500), 505);
        assert!(s.is_due(1_005));
        // A little late: the phase is kept.
        s.mark_sampled(1_300);
        assert!(!s.is_due(2_004));
        assert!(s.is_due(2_005));
        // More than a whole interval late: restart from now, no burst.
        s.mark_sampled(9_000);
        assert!(!s.is_due(9_999));
        assert!(s.is_due(10_000));
    }

    #[test]
    fn zero_interval_is_always_due() {
        let mut s = Schedule::every(0);
        s.mark_sampled(10);
        assert!(s.is_due(10));
        s.mark_sampled(10);
        assert!(s.is_due(10));
    }

    #[test]
    fn without_on_change_every_sample_is_sent() {
        let mut s = Schedule::every(1);
        let e = event(&[("x", f(1.0))]);
        for t in 0..5 {
            assert_eq!(s.filter(t, &e), Emit::Event);
        }
    }

    #[test]
    fn on_change_sends_first_and_changes_only() {
        let mut s = Schedule::every(1).on_change();
        assert_eq!(s.filter(0, &event(&[("x", f(1.0))])), Emit::Event);
        assert_eq!(s.filter(1, &event(&[("x", f(1.0))])), Emit::Skip);
        assert_eq!(s.filter(2, &event(&[("x", f(1.5))])), Emit::Event);
        assert_eq!(s.filter(3, &event(&[("x", f(1.5))])), Emit::Skip);
        // A new field, a missing field, a different type: all changes.
        assert_eq!(
            s.filter(4, &event(&[("x", f(1.5)), ("y", Value::Bool(true))])),
            Emit::Event
        );
        assert_eq!(s.filter(5, &event(&[("x", f(1.5))])), Emit::Event);
        assert_eq!(s.filter(6, &event(&[("x", Value::Int(1))])), Emit::Event);
        // Same number of fields, different name.
        assert_eq!(s.filter(7, &event(&[("z", Value::Int(1))])), Emit::Event);
    }

    #[test]
    fn strings_and_bools_compare_exactly() {
        let mut s = Schedule::every(1).min_delta(100.0);
        let up =
            |b, out: &str| event(&[("running", Value::Bool(b)), ("o", Value::str(out).unwrap())]);
        assert_eq!(s.filter(0, &up(true, "ok")), Emit::Event);
        assert_eq!(s.filter(1, &up(true, "ok")), Emit::Skip);
        assert_eq!(s.filter(2, &up(false, "ok")), Emit::Event);
        assert_eq!(s.filter(3, &up(false, "ko")), Emit::Event);
        assert_eq!(s.filter(4, &up(false, "ko")), Emit::Skip);
    }

    #[test]
    fn min_delta_compares_with_the_last_event_sent() {
        let mut s = Schedule::every(1).min_delta(5.0);
        assert_eq!(s.filter(0, &event(&[("x", f(10.0))])), Emit::Event);
        assert_eq!(s.filter(1, &event(&[("x", f(13.0))])), Emit::Skip);
        // Drift accumulates against the last event sent, not the last sample.
        assert_eq!(s.filter(2, &event(&[("x", f(14.9))])), Emit::Skip);
        assert_eq!(s.filter(3, &event(&[("x", f(15.0))])), Emit::Event);
        assert_eq!(s.filter(4, &event(&[("x", f(10.0))])), Emit::Event);
        // Integers use the delta too.
        let mut s = Schedule::every(1).min_delta(3.0);
        assert_eq!(s.filter(0, &event(&[("n", Value::Int(1))])), Emit::Event);
        assert_eq!(s.filter(1, &event(&[("n", Value::Int(3))])), Emit::Skip);
        assert_eq!(s.filter(2, &event(&[("n", Value::Int(-2))])), Emit::Event);
        // NaN always counts as changed.
        assert_eq!(s.filter(3, &event(&[("n", f(f64::NAN))])), Emit::Event);
        assert_eq!(s.filter(4, &event(&[("n", f(f64::NAN))])), Emit::Event);
    }

    #[test]
    fn heartbeat_sends_unchanged_samples_now_and_then() {
        let mut s = Schedule::every(10).on_change().heartbeat(30);
        let e = event(&[("x", f(1.0))]);
        assert_eq!(s.filter(0, &e), Emit::Event);
        assert_eq!(s.filter(10, &e), Emit::Skip);
        assert_eq!(s.filter(20, &e), Emit::Skip);
        assert_eq!(s.filter(30, &e), Emit::Event);
        assert_eq!(s.filter(40, &e), Emit::Skip);
        // A change resets the heartbeat.
        assert_eq!(s.filter(50, &event(&[("x", f(2.0))])), Emit::Event);
        assert_eq!(s.filter(70, &event(&[("x", f(2.0))])), Emit::Skip);
        assert_eq!(s.filter(80, &event(&[("x", f(2.0))])), Emit::Event);
    }

    struct Counter {
        n: i64,
        skip_first: bool,
        fail: bool,
    }

    impl Beacon for Counter {
        fn tag(&self) -> &str {
            "/device/counter/d1"
        }
        fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
            if self.fail {
                return Err(BeaconError::SensorFailed);
            }
            self.n += 1;
            event.push("n", Value::Int(self.n / 2))?;
            if self.skip_first {
                self.skip_first = false;
                return Ok(Emit::Skip);
            }
            Ok(Emit::Event)
        }
    }

    #[test]
    fn run_sets_the_tag_samples_and_filters() {
        let mut b = Counter {
            n: 0,
            skip_first: true,
            fail: false,
        };
        let mut s = Schedule::every(100).on_change();
        let mut e = Event::new("/old", "d1").unwrap();
        e.push("stale", Value::Int(0)).unwrap();
        // The beacon skips its first sample (a baseline).
        assert_eq!(s.run(&mut b, 0, &mut e), Ok(Emit::Skip));
        assert_eq!(s.run(&mut b, 50, &mut e), Ok(Emit::Skip));
        assert_eq!(s.run(&mut b, 100, &mut e), Ok(Emit::Event));
        assert_eq!(e.tag.as_str(), "/device/counter/d1");
        assert_eq!(e.get("stale"), None);
        assert_eq!(e.get("n"), Some(&Value::Int(1)));
        // n / 2 is unchanged at the next sample: filtered.
        assert_eq!(s.run(&mut b, 200, &mut e), Ok(Emit::Skip));
        assert_eq!(s.run(&mut b, 300, &mut e), Ok(Emit::Event));
        assert_eq!(e.get("n"), Some(&Value::Int(2)));
    }

    #[test]
    fn a_failing_beacon_waits_for_its_interval() {
        let mut b = Counter {
            n: 0,
            skip_first: false,
            fail: true,
        };
        let mut s = Schedule::every(100);
        let mut e = Event::new("/t", "d1").unwrap();
        assert_eq!(s.run(&mut b, 0, &mut e), Err(BeaconError::SensorFailed));
        assert_eq!(s.run(&mut b, 1, &mut e), Ok(Emit::Skip));
        assert_eq!(s.run(&mut b, 100, &mut e), Err(BeaconError::SensorFailed));
    }

    #[test]
    fn fingerprint_is_small() {
        assert!(core::mem::size_of::<Seen>() <= 24);
    }
}
