//! Load average and iowait, from `/proc/loadavg` and `/proc/stat`.

use reflex_core::event::Tag;
use reflex_core::{Event, Value};

use super::{client_tag, read_into, round2};
use crate::{Beacon, BeaconError, Emit};

const LOADAVG: &str = "/proc/loadavg";
const STAT: &str = "/proc/stat";

/// Reports the load averages and the share of CPU time spent waiting for I/O, under
/// `/client/load/<source>`:
///
/// * `load_avg`, `load5`, `load15`: the 1-, 5- and 15-minute load averages (floats, as the
///   kernel reports them, not divided by the number of CPUs);
/// * `io_avg`: the percentage of CPU time in iowait since the previous sample (float, 0 to
///   100, two decimals); since boot on the first sample.
///
/// ```no_run
/// use reflex_beacons::host::Load;
/// use reflex_beacons::{Beacon, Schedule};
/// use reflex_core::Event;
///
/// let mut load = Load::new("web-1").unwrap();
/// let mut event = Event::new(load.tag(), "web-1").unwrap();
/// Schedule::every(10_000).run(&mut load, 0, &mut event).unwrap();
/// println!("{:?}", event.get("load_avg"));
/// ```
#[derive(Debug)]
pub struct Load {
    tag: Tag,
    previous: Option<CpuTimes>,
    buf: String,
}

impl Load {
    /// A load beacon for the host `source_id`.
    pub fn new(source_id: &str) -> Result<Load, BeaconError> {
        Ok(Load {
            tag: client_tag("load", source_id)?,
            previous: None,
            buf: String::new(),
        })
    }
}

impl Beacon for Load {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        read_into(&mut self.buf, LOADAVG)?;
        let load = parse_loadavg(&self.buf)?;
        read_into(&mut self.buf, STAT)?;
        let times = parse_cpu_times(&self.buf)?;
        let io = times.iowait_pct_since(self.previous.as_ref());
        self.previous = Some(times);
        event.push("load_avg", Value::Float(load.one))?;
        event.push("load5", Value::Float(load.five))?;
        event.push("load15", Value::Float(load.fifteen))?;
        event.push("io_avg", Value::Float(round2(io)))?;
        Ok(Emit::Event)
    }
}

/// The three load averages of `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LoadAvg {
    one: f64,
    five: f64,
    fifteen: f64,
}

/// Parses `/proc/loadavg`: `0.52 0.58 0.59 1/467 12345`.
fn parse_loadavg(text: &str) -> Result<LoadAvg, BeaconError> {
    let mut it = text.split_ascii_whitespace().map(|w| {
        w.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or(BeaconError::Malformed(LOADAVG))
    });
    let mut next = || it.next().unwrap_or(Err(BeaconError::Malformed(LOADAVG)));
    Ok(LoadAvg {
        one: next()?,
        five: next()?,
        fifteen: next()?,
    })
}

/// Cumulative CPU time of all CPUs, in clock ticks: the total and the part in iowait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    total: u64,
    iowait: u64,
}

impl CpuTimes {
    /// Percentage of CPU time in iowait between `earlier` and `self` (since boot without
    /// `earlier`). The kernel's iowait counter may step back on idle CPUs: such intervals
    /// count as 0, and the result stays within 0 to 100.
    fn iowait_pct_since(&self, earlier: Option<&CpuTimes>) -> f64 {
        let (total, iowait) = match earlier {
            Some(e) => (
                self.total.saturating_sub(e.total),
                self.iowait.saturating_sub(e.iowait),
            ),
            None => (self.total, self.iowait),
        };
        if total == 0 {
            return 0.0;
        }
        (iowait as f64 * 100.0 / total as f64).clamp(0.0, 100.0)
    }
}

/// Parses the aggregate `cpu` line of `/proc/stat`:
/// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`. The total is the
/// sum of the first eight columns (guest time is already part of user time); columns an older
/// kernel lacks count as 0, but the first four must be there.
fn parse_cpu_times(text: &str) -> Result<CpuTimes, BeaconError> {
    let line = text
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some("cpu"))
        .ok_or(BeaconError::Malformed(STAT))?;
    let mut columns = [0u64; 8];
    let mut n = 0;
    for word in line.split_ascii_whitespace().skip(1).take(columns.len()) {
        columns[n] = word.parse().map_err(|_| BeaconError::Malformed(STAT))?;
        n += 1;
    }
    if n < 4 {
        return Err(BeaconError::Malformed(STAT));
    }
    let total = columns.iter().fold(0u64, |a, c| a.saturating_add(*c));
    Ok(CpuTimes {
        total,
        iowait: columns[4],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_FIXTURE: &str = "cpu  100 10 50 800 40 0 0 0 5 0\n\
        cpu0 50 5 25 400 20 0 0 0 5 0\n\
        intr 12345 0 0\n\
        ctxt 999\n";

    #[test]
    fn parses_loadavg() {
        assert_eq!(
            parse_loadavg("0.52 1.58 20.59 1/467 12345\n"),
            Ok(LoadAvg {
                one: 0.52,
                five: 1.58,
                fifteen: 20.59
            })
        );
        for bad in [
            "",
            "0.5 0.6",
            "a b c",
            "0.1 -1 0.2 1/2 3",
            "NaN 1 1",
            "inf 1 1",
        ] {
            assert_eq!(
                parse_loadavg(bad),
                Err(BeaconError::Malformed(LOADAVG)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parses_cpu_times() {
        let t = parse_cpu_times(STAT_FIXTURE).unwrap();
        assert_eq!(
            t,
            CpuTimes {
                total: 1000,
                iowait: 40
            }
        );
        // Older kernels: four columns, no iowait.
        assert_eq!(
            parse_cpu_times("cpu 1 2 3 4\n"),
            Ok(CpuTimes {
                total: 10,
                iowait: 0
            })
        );
        for bad in [
            "",
            "cpu0 1 2 3 4 5",
            "cpu 1 2 3",
            "cpu 1 2 x 4 5",
            "cpu -1 2 3 4",
        ] {
            assert_eq!(
                parse_cpu_times(bad),
                Err(BeaconError::Malformed(STAT)),
                "{bad:?}"
            );
        }
        // Huge counters saturate instead of overflowing.
        let huge = format!("cpu {} {} 0 0 0", u64::MAX, u64::MAX);
        assert_eq!(parse_cpu_times(&huge).unwrap().total, u64::MAX);
    }

    #[test]
    fn iowait_share_between_samples() {
        let a = CpuTimes {
            total: 1000,
            iowait: 40,
        };
        assert_eq!(a.iowait_pct_since(None), 4.0);
        let b = CpuTimes {
            total: 1400,
            iowait: 140,
        };
        assert_eq!(b.iowait_pct_since(Some(&a)), 25.0);
        // No time passed, or the counter stepped back.
        assert_eq!(a.iowait_pct_since(Some(&a)), 0.0);
        let back = CpuTimes {
            total: 1100,
            iowait: 30,
        };
        assert_eq!(back.iowait_pct_since(Some(&a)), 0.0);
        assert_eq!(
            CpuTimes {
                total: 0,
                iowait: 0
            }
            .iowait_pct_since(None),
            0.0
        );
    }

    #[test]
    fn live_sample_is_plausible() {
        let mut load = Load::new("test-host").unwrap();
        assert_eq!(load.tag(), "/client/load/test-host");
        let mut e = Event::new(load.tag(), "test-host").unwrap();
        for _ in 0..2 {
            assert_eq!(load.sample(0, &mut e), Ok(Emit::Event));
            for field in ["load_avg", "load5", "load15"] {
                match e.get(field) {
                    Some(Value::Float(x)) => assert!(*x >= 0.0 && *x < 10_000.0, "{field} {x}"),
                    other => panic!("{field}: {other:?}"),
                }
            }
            match e.get("io_avg") {
                Some(Value::Float(x)) => assert!((0.0..=100.0).contains(x), "io_avg {x}"),
                other => panic!("io_avg: {other:?}"),
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
