//! Registers: sliding windows of `period` over a fixed ring of buckets.
//!
//! A window of period `P` is cut into [`BUCKETS`] buckets of `P / BUCKETS` each; a sample goes
//! into the bucket of its time, and an aggregate reads the buckets of the last `BUCKETS`
//! bucket-widths up to now. Memory per register is constant whatever the event rate; the price
//! is resolution: a sample leaves the window within one bucket-width of `P`.

use serde::{Deserialize, Serialize};

/// Buckets per window.
pub const BUCKETS: usize = 10;

/// An aggregate, `register.aggregate.<name>` in a rulebook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RegisterFn {
    /// Mean of the samples in the window.
    Avg,
    /// Smallest sample.
    Min,
    /// Largest sample.
    Max,
    /// Sum of the samples.
    Sum,
    /// Number of samples.
    Count,
    /// Samples per second over the window (`count / period`).
    Rate,
    /// The latest sample.
    Last,
    /// Latest sample minus the oldest one in the window.
    Delta,
}

/// One bucket of a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Bucket {
    /// Bucket number: `time / width`. Only meaningful when `count > 0`.
    epoch: u64,
    count: u32,
    sum: f64,
    min: f64,
    max: f64,
    first: f64,
    last: f64,
}

const EMPTY: Bucket = Bucket {
    epoch: 0,
    count: 0,
    sum: 0.0,
    min: 0.0,
    max: 0.0,
    first: 0.0,
    last: 0.0,
};

/// A sliding window over a ring of [`BUCKETS`] buckets.
///
/// ```
/// use reflex_core::register::{RegisterFn, Window};
/// let mut w = Window::new(10_000);
/// w.push(1_000, 10.0);
/// w.push(2_000, 30.0);
/// assert_eq!(w.value(RegisterFn::Avg, 2_000), Some(20.0));
/// assert_eq!(w.value(RegisterFn::Avg, 20_000), None); // both samples left the window
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    width_ms: u64,
    buckets: [Bucket; BUCKETS],
}

impl Window {
    /// A window of `period_ms` milliseconds (at least one per bucket).
    pub fn new(period_ms: u32) -> Window {
        let width_ms = (u64::from(period_ms) / BUCKETS as u64).max(1);
        Window {
            width_ms,
            buckets: [EMPTY; BUCKETS],
        }
    }

    /// The window's period in milliseconds (rounded down to whole buckets).
    pub fn period_ms(&self) -> u64 {
        self.width_ms * BUCKETS as u64
    }

    /// Adds a sample taken at `now_ms`. Samples older than the bucket they would land in are
    /// folded into it; non-finite samples are ignored.
    pub fn push(&mut self, now_ms: u64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let epoch = now_ms / self.width_ms;
        let b = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if b.count == 0 || b.epoch != epoch {
            if b.count > 0 && b.epoch > epoch {
                // A sample from a past that has already been overwritten: too old to count.
                return;
            }
            *b = Bucket {
                epoch,
                count: 1,
                sum: value,
                min: value,
                max: value,
                first: value,
                last: value,
            };
            return;
        }
        b.count = b.count.saturating_add(1);
        b.sum += value;
        b.min = b.min.min(value);
        b.max = b.max.max(value);
        b.last = value;
    }

    /// The aggregate over the window ending at `now_ms`, or `None` when it holds no sample.
    pub fn value(&self, f: RegisterFn, now_ms: u64) -> Option<f64> {
        let now = now_ms / self.width_ms;
        let oldest = now.saturating_sub(BUCKETS as u64 - 1);
        let live = |b: &&Bucket| b.count > 0 && b.epoch >= oldest && b.epoch <= now;
        let mut count: u64 = 0;
        let mut sum = 0.0;
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        let mut first: Option<(u64, f64)> = None;
        let mut last: Option<(u64, f64)> = None;
        for b in self.buckets.iter().filter(live) {
            count += u64::from(b.count);
            sum += b.sum;
            min = min.min(b.min);
            max = max.max(b.max);
            if first.is_none_or(|(e, _)| b.epoch < e) {
                first = Some((b.epoch, b.first));
            }
            if last.is_none_or(|(e, _)| b.epoch > e) {
                last = Some((b.epoch, b.last));
            }
        }
        if count == 0 {
            return None;
        }
        Some(match f {
            RegisterFn::Avg => sum / count as f64,
            RegisterFn::Min => min,
            RegisterFn::Max => max,
            RegisterFn::Sum => sum,
            RegisterFn::Count => count as f64,
            RegisterFn::Rate => count as f64 * 1000.0 / self.period_ms() as f64,
            RegisterFn::Last => last.map_or(0.0, |(_, v)| v),
            RegisterFn::Delta => last.map_or(0.0, |(_, v)| v) - first.map_or(0.0, |(_, v)| v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_aggregate() {
        let mut w = Window::new(10_000);
        for (t, v) in [(0, 4.0), (1_500, 1.0), (1_600, 7.0), (9_999, 2.0)] {
            w.push(t, v);
        }
        let at = 9_999;
        assert_eq!(w.value(RegisterFn::Count, at), Some(4.0));
        assert_eq!(w.value(RegisterFn::Sum, at), Some(14.0));
        assert_eq!(w.value(RegisterFn::Avg, at), Some(3.5));
        assert_eq!(w.value(RegisterFn::Min, at), Some(1.0));
        assert_eq!(w.value(RegisterFn::Max, at), Some(7.0));
        assert_eq!(w.value(RegisterFn::Last, at), Some(2.0));
        assert_eq!(w.value(RegisterFn::Delta, at), Some(-2.0));
        assert_eq!(w.value(RegisterFn::Rate, at), Some(0.4));
        // One bucket-width later the first sample has left the window.
        assert_eq!(w.value(RegisterFn::Count, 10_000), Some(3.0));
        assert_eq!(w.value(RegisterFn::Delta, 10_000), Some(1.0));
    }

    #[test]
    fn ignores_non_finite_and_stale() {
        let mut w = Window::new(1_000);
        w.push(5_000, f64::NAN);
        assert_eq!(w.value(RegisterFn::Count, 5_000), None);
        w.push(5_000, 1.0);
        w.push(3_000, 9.0); // same ring slot as 5_000? no: 300 vs 500; older than the window
        assert_eq!(w.value(RegisterFn::Max, 5_000), Some(1.0));
    }

    /// Naive recomputation: every sample whose bucket is within the window.
    fn naive(samples: &[(u64, f64)], f: RegisterFn, now: u64, width: u64) -> Option<f64> {
        let nowb = now / width;
        let oldest = nowb.saturating_sub(BUCKETS as u64 - 1);
        // A later sample in a ring slot evicts older buckets of that slot, exactly as the ring
        // does: keep only samples whose bucket was not overwritten by a newer epoch.
        let newest_in_slot = |slot: u64| {
            samples
                .iter()
                .map(|(t, _)| t / width)
                .filter(|e| e % BUCKETS as u64 == slot)
                .max()
        };
        let live: std::vec::Vec<(u64, f64)> = samples
            .iter()
            .copied()
            .filter(|(t, _)| {
                let e = t / width;
                e >= oldest && e <= nowb && newest_in_slot(e % BUCKETS as u64) == Some(e)
            })
            .collect();
        if live.is_empty() {
            return None;
        }
        let n = live.len() as f64;
        let sum: f64 = live.iter().map(|s| s.1).sum();
        Some(match f {
            RegisterFn::Avg => sum / n,
            RegisterFn::Min => live.iter().map(|s| s.1).fold(f64::INFINITY, f64::min),
            RegisterFn::Max => live.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max),
            RegisterFn::Sum => sum,
            RegisterFn::Count => n,
            RegisterFn::Rate => n * 1000.0 / (width * BUCKETS as u64) as f64,
            RegisterFn::Last => live.last().unwrap().1,
            RegisterFn::Delta => live.last().unwrap().1 - live.first().unwrap().1,
        })
    }

    proptest! {
        #[test]
        fn ring_matches_naive(
            period in 10u32..100_000,
            steps in proptest::collection::vec((0u64..5_000, -1e6f64..1e6), 1..200),
            query_ahead in 0u64..200_000,
        ) {
            let mut w = Window::new(period);
            let width = w.period_ms() / BUCKETS as u64;
            let mut t = 0u64;
            let mut samples = std::vec::Vec::new();
            for (dt, v) in steps {
                t += dt;
                w.push(t, v);
                samples.push((t, v));
            }
            let now = t + query_ahead;
            for f in [RegisterFn::Avg, RegisterFn::Min, RegisterFn::Max, RegisterFn::Sum,
                      RegisterFn::Count, RegisterFn::Rate, RegisterFn::Last, RegisterFn::Delta] {
                let got = w.value(f, now);
                let want = naive(&samples, f, now, width);
                match (got, want) {
                    (None, None) => {}
                    (Some(a), Some(b)) => prop_assert!(
                        (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                        "{f:?}: ring {a} vs naive {b}"
                    ),
                    _ => prop_assert!(false, "{f:?}: ring {got:?} vs naive {want:?}"),
                }
            }
        }
    }
}
