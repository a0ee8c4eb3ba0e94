//! CPU load by idle-loop measurement.
//!
//! The firmware's idle loop counts its iterations in an [`IdleCounter`]. The busier the CPU,
//! the fewer idle iterations fit in an interval: comparing the count with the count of a fully
//! idle interval gives the load. The fully idle rate is either known (measured once and
//! stored) or measured by the beacon during a first, idle-only window.

use core::sync::atomic::{AtomicU32, Ordering};

use reflex_core::event::Tag;
use reflex_core::{Event, Value};

use crate::text::{check_id, tag};
use crate::{Beacon, BeaconError, Emit};

/// Idle-loop iterations, counted by the firmware's idle loop and read by [`CpuLoad`].
///
/// Meant to live in a `static`. Only one context (the idle loop) may count; any context may
/// read. It uses plain atomic loads and stores, so it works on cores without compare-and-swap
/// (Cortex-M0). The count wraps: a beacon must sample before 2³² iterations pass.
///
/// ```
/// use reflex_beacons::device::IdleCounter;
///
/// static IDLE: IdleCounter = IdleCounter::new();
/// // In the idle loop: one tick per iteration (then `wfi`, or a fixed amount of spinning).
/// IDLE.tick();
/// assert_eq!(IDLE.count(), 1);
/// ```
#[derive(Debug, Default)]
pub struct IdleCounter(AtomicU32);

impl IdleCounter {
    /// A counter at zero.
    pub const fn new() -> IdleCounter {
        IdleCounter(AtomicU32::new(0))
    }

    /// Counts one idle iteration.
    #[inline]
    pub fn tick(&self) {
        self.add(1);
    }

    /// Counts `n` idle iterations.
    #[inline]
    pub fn add(&self, n: u32) {
        // Single writer: a load and a store need no read-modify-write instruction.
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// The count so far (wrapping).
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reports `cpu_pct`, the share of time the CPU was not idle since the previous sample
/// (0 to 100, rounded to one decimal), under `/device/cpu/<id>`.
///
/// The first sample only sets a baseline and sends nothing. If a sample ever sees more idle
/// iterations per second than the calibration, the calibration is raised to match (that
/// interval reports 0).
///
/// ```
/// use reflex_beacons::device::{CpuLoad, IdleCounter};
/// use reflex_beacons::{Beacon, Emit};
/// use reflex_core::{Event, Value};
///
/// static IDLE: IdleCounter = IdleCounter::new();
/// // Fully idle, this firmware's loop runs 1000 times a second.
/// let mut cpu = CpuLoad::new(&IDLE, "node-7", 1000).unwrap();
/// let mut event = Event::new(cpu.tag(), "node-7").unwrap();
/// assert_eq!(cpu.sample(0, &mut event), Ok(Emit::Skip)); // baseline
/// IDLE.add(250); // one second in which the loop ran a quarter of the time
/// assert_eq!(cpu.sample(1000, &mut event), Ok(Emit::Event));
/// assert_eq!(event.get("cpu_pct"), Some(&Value::Float(75.0)));
/// ```
#[derive(Debug)]
pub struct CpuLoad<'a> {
    counter: &'a IdleCounter,
    tag: Tag,
    /// Idle iterations per second of a fully idle CPU; `None` while calibrating.
    idle_per_s: Option<u64>,
    /// Time and count of the previous sample.
    baseline: Option<(u64, u32)>,
}

impl<'a> CpuLoad<'a> {
    /// A CPU load beacon for `device_id`, calibrated: `idle_per_s` is the number of idle
    /// iterations per second when the CPU does nothing else (see
    /// [`calibrating`](CpuLoad::calibrating) to measure it).
    pub fn new(
        counter: &'a IdleCounter,
        device_id: &str,
        idle_per_s: u32,
    ) -> Result<CpuLoad<'a>, BeaconError> {
        if idle_per_s == 0 {
            return Err(BeaconError::InvalidConfig("idle_per_s must be positive"));
        }
        let mut beacon = CpuLoad::calibrating(counter, device_id)?;
        beacon.idle_per_s = Some(u64::from(idle_per_s));
        Ok(beacon)
    }

    /// A CPU load beacon that measures its calibration first: the interval between its first
    /// two samples must be idle-only (start sampling before the application's tasks). Neither
    /// sample sends anything. Read the result with [`idle_per_s`](CpuLoad::idle_per_s) to
    /// store it and use [`new`](CpuLoad::new) on the next boot.
    pub fn calibrating(
        counter: &'a IdleCounter,
        device_id: &str,
    ) -> Result<CpuLoad<'a>, BeaconError> {
        check_id(
            device_id,
            "the device id must be an id: 1 to 32 bytes, not starting with '.', with no '/', '\\', whitespace, control or glob characters",
        )?;
        Ok(CpuLoad {
            counter,
            tag: tag(format_args!("/device/cpu/{device_id}"))?,
            idle_per_s: None,
            baseline: None,
        })
    }

    /// The calibration in use: idle iterations per second of a fully idle CPU, or `None` while
    /// still calibrating.
    pub fn idle_per_s(&self) -> Option<u32> {
        self.idle_per_s
            .map(|r| u32::try_from(r).unwrap_or(u32::MAX))
    }
}

impl Beacon for CpuLoad<'_> {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        let count = self.counter.count();
        let Some((then_ms, then_count)) = self.baseline else {
            self.baseline = Some((now_ms, count));
            return Ok(Emit::Skip);
        };
        let elapsed_ms = now_ms.saturating_sub(then_ms);
        if elapsed_ms == 0 {
            // No time has passed: keep the baseline, nothing to report.
            return Ok(Emit::Skip);
        }
        self.baseline = Some((now_ms, count));
        let idle = u64::from(count.wrapping_sub(then_count));
        // Idle iterations per second over this interval.
        let rate = (idle.saturating_mul(1000) / elapsed_ms).max(1);
        let full = match self.idle_per_s {
            None => {
                self.idle_per_s = Some(rate);
                return Ok(Emit::Skip);
            }
            Some(full) if rate > full => {
                self.idle_per_s = Some(rate);
                rate
            }
            Some(full) => full,
        };
        // Idle share in thousandths, in integers: no float rounding needed on the device.
        let expected = full.saturating_mul(elapsed_ms);
        let idle_permille = (idle.saturating_mul(1_000_000) / expected).min(1000);
        let busy_permille = 1000 - idle_permille;
        event.push("cpu_pct", Value::Float(busy_permille as f64 / 10.0))?;
        Ok(Emit::Event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(e: &Event) -> f64 {
        match e.get("cpu_pct") {
            Some(Value::Float(x)) => *x,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn measures_against_the_known_idle_rate() {
        let counter = IdleCounter::new();
        let mut cpu = CpuLoad::new(&counter, "d1", 2000).unwrap();
        assert_eq!(cpu.tag(), "/device/cpu/d1");
        let mut e = Event::new(cpu.tag(), "d1").unwrap();
        assert_eq!(cpu.sample(1_000, &mut e), Ok(Emit::Skip));
        // 5 s at 2000/s fully idle would be 10 000; 9 000 means 10 % busy.
        counter.add(9_000);
        assert_eq!(cpu.sample(6_000, &mut e), Ok(Emit::Event));
        assert_eq!(pct(&e), 10.0);
        // Nothing idle at all: 100 %.
        assert_eq!(cpu.sample(7_000, &mut e), Ok(Emit::Event));
        assert_eq!(pct(&e), 100.0);
        // One third idle, rounded to a tenth.
        counter.add(666);
        assert_eq!(cpu.sample(8_000, &mut e), Ok(Emit::Event));
        assert_eq!(pct(&e), 66.7);
    }

    #[test]
    fn calibrates_during_a_first_idle_window() {
        let counter = IdleCounter::new();
        let mut cpu = CpuLoad::calibrating(&counter, "d1").unwrap();
        let mut e = Event::new(cpu.tag(), "d1").unwrap();
        assert_eq!(cpu.idle_per_s(), None);
        assert_eq!(cpu.sample(0, &mut e), Ok(Emit::Skip));
        counter.add(4_000);
        assert_eq!(cpu.sample(2_000, &mut e), Ok(Emit::Skip));
        assert_eq!(cpu.idle_per_s(), Some(2_000));
        counter.add(1_000);
        assert_eq!(cpu.sample(3_000, &mut e), Ok(Emit::Event));
        assert_eq!(pct(&e), 50.0);
    }

    #[test]
    fn a_busier_calibration_is_raised() {
        let counter = IdleCounter::new();
        let mut cpu = CpuLoad::new(&counter, "d1", 100).unwrap();
        let mut e = Event::new(cpu.tag(), "d1").unwrap();
        let _ = cpu.sample(0, &mut e);
        counter.add(300);
        assert_eq!(cpu.sample(1_000, &mut e), Ok(Emit::Event));
        assert_eq!(pct(&e), 0.0);
        assert_eq!(cpu.idle_per_s(), Some(300));
    }

    #[test]
    fn survives_wrapping_and_a_stopped_clock() {
        let counter = IdleCounter::new();
        counter.add(u32::MAX - 10);
        let mut cpu = CpuLoad::new(&counter, "d1", 100).unwrap();
        let mut e = Event::new(cpu.tag(), "d1").unwrap();
        let _ = cpu.sample(500, &mut e);
        assert_eq!(cpu.sample(500, &mut e), Ok(Emit::Skip));
        assert_eq!(cpu.sample(400, &mut e), Ok(Emit::Skip));
        counter.add(60);
        assert_eq!(cpu.sample(1_500, &mut e), Ok(Emit::Event));
        assert_eq!(pct(&e), 40.0);
    }

    #[test]
    fn zero_calibration_is_refused() {
        let counter = IdleCounter::new();
        assert!(matches!(
            CpuLoad::new(&counter, "d1", 0),
            Err(BeaconError::InvalidConfig(_))
        ));
    }
}
