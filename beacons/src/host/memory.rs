//! Memory use, from `/proc/meminfo`.

use reflex_core::event::Tag;
use reflex_core::{Event, Value};

use super::{client_tag, read_into, round2};
use crate::{Beacon, BeaconError, Emit};

const MEMINFO: &str = "/proc/meminfo";

/// Reports memory use under `/client/mem/<source>`:
///
/// * `used_pct`: the share of memory not available to new programs (float, 0 to 100, two
///   decimals): `(MemTotal - MemAvailable) / MemTotal`;
/// * `available_mb`, `total_mb`: `MemAvailable` and `MemTotal` in MiB (integers).
///
/// Kernels older than 3.14 have no `MemAvailable`; there it is estimated as
/// `MemFree + Buffers + Cached`.
///
/// ```no_run
/// use reflex_beacons::host::Memory;
/// use reflex_beacons::{Beacon, Emit};
/// use reflex_core::Event;
///
/// let mut mem = Memory::new("web-1").unwrap();
/// let mut event = Event::new(mem.tag(), "web-1").unwrap();
/// assert_eq!(mem.sample(0, &mut event), Ok(Emit::Event));
/// println!("{:?}", event.get("used_pct"));
/// ```
#[derive(Debug)]
pub struct Memory {
    tag: Tag,
    buf: String,
}

impl Memory {
    /// A memory beacon for the host `source_id`.
    pub fn new(source_id: &str) -> Result<Memory, BeaconError> {
        Ok(Memory {
            tag: client_tag("mem", source_id)?,
            buf: String::new(),
        })
    }
}

impl Beacon for Memory {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        read_into(&mut self.buf, MEMINFO)?;
        let m = parse_meminfo(&self.buf)?;
        let used = m.total_kb - m.available_kb;
        event.push(
            "used_pct",
            Value::Float(round2(used as f64 * 100.0 / m.total_kb as f64)),
        )?;
        event.push("available_mb", Value::Int((m.available_kb / 1024) as i64))?;
        event.push("total_mb", Value::Int((m.total_kb / 1024) as i64))?;
        Ok(Emit::Event)
    }
}

/// Total and available memory, in KiB; available never exceeds total, total is never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemInfo {
    total_kb: u64,
    available_kb: u64,
}

/// Parses `/proc/meminfo` (`MemTotal:  16318412 kB` lines).
fn parse_meminfo(text: &str) -> Result<MemInfo, BeaconError> {
    let mut total = None;
    let mut available = None;
    let mut free_buffers_cached = [None; 3];
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "MemFree" => &mut free_buffers_cached[0],
            "Buffers" => &mut free_buffers_cached[1],
            "Cached" => &mut free_buffers_cached[2],
            _ => continue,
        };
        let kb = rest
            .split_ascii_whitespace()
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .ok_or(BeaconError::Malformed(MEMINFO))?;
        *slot = Some(kb);
    }
    let total_kb = total
        .filter(|t| *t > 0)
        .ok_or(BeaconError::Malformed(MEMINFO))?;
    let available_kb = match (available, free_buffers_cached) {
        (Some(a), _) => a,
        (None, [Some(f), Some(b), Some(c)]) => f.saturating_add(b).saturating_add(c),
        _ => return Err(BeaconError::Malformed(MEMINFO)),
    };
    Ok(MemInfo {
        total_kb,
        available_kb: available_kb.min(total_kb),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "MemTotal:       16384000 kB\n\
        MemFree:         1024000 kB\n\
        MemAvailable:    4096000 kB\n\
        Buffers:          512000 kB\n\
        Cached:          2048000 kB\n\
        SwapCached:            0 kB\n\
        HugePages_Total:       0\n";

    #[test]
    fn parses_meminfo() {
        assert_eq!(
            parse_meminfo(FIXTURE),
            Ok(MemInfo {
                total_kb: 16_384_000,
                available_kb: 4_096_000
            })
        );
        // Without MemAvailable: free + buffers + cached.
        let old = FIXTURE.replace("MemAvailable:    4096000 kB\n", "");
        assert_eq!(parse_meminfo(&old).unwrap().available_kb, 3_584_000);
        // Available above total is clamped.
        let odd = "MemTotal: 100 kB\nMemAvailable: 200 kB\n";
        assert_eq!(parse_meminfo(odd).unwrap().available_kb, 100);
    }

    #[test]
    fn odd_meminfo_is_an_error() {
        for bad in [
            "",
            "MemTotal: 0 kB\nMemAvailable: 0 kB\n",
            "MemTotal: x kB\nMemAvailable: 1 kB\n",
            "MemTotal: 100 kB\n",
            "MemTotal:\nMemAvailable: 1 kB\n",
            "MemAvailable: 1 kB\n",
        ] {
            assert_eq!(
                parse_meminfo(bad),
                Err(BeaconError::Malformed(MEMINFO)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn live_sample_is_plausible() {
        let mut m = Memory::new("test-host").unwrap();
        assert_eq!(m.tag(), "/client/mem/test-host");
        let mut e = Event::new(m.tag(), "test-host").unwrap();
        assert_eq!(m.sample(0, &mut e), Ok(Emit::Event));
        let Some(Value::Float(used)) = e.get("used_pct") else {
            panic!("{e:?}")
        };
        assert!((0.0..=100.0).contains(used), "used_pct {used}");
        let Some(Value::Int(total)) = e.get("total_mb") else {
            panic!("{e:?}")
        };
        let Some(Value::Int(avail)) = e.get("available_mb") else {
            panic!("{e:?}")
        };
        assert!(*total >= 64, "total_mb {total}");
        assert!(*avail > 0 && avail <= total, "available_mb {avail}");
    }
}
