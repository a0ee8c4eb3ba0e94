//! The beacon runner: a thread that samples each configured host beacon when it is due.
//!
//! Between samples the thread sleeps until the earliest due time (parked, so stopping the agent
//! wakes it at once); an agent whose beacons run every ten seconds wakes once every ten
//! seconds. Events carry the agent's id as source and the wall-clock time of the sample;
//! failed samples are counted and logged once per beacon and error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use reflex_beacons::host::HostBeaconSpec;
use reflex_beacons::{Beacon, BeaconError, Emit, Schedule};
use reflex_core::Event;

use crate::Error;
use crate::sender::Outbox;
use crate::stats::Stats;

/// How long the runner sleeps when it has no beacon at all: it only waits to be stopped.
const IDLE: Duration = Duration::from_secs(3600);

/// One configured beacon, built, with its schedule.
pub(crate) struct Built {
    kind: &'static str,
    beacon: Box<dyn Beacon + Send>,
    schedule: Schedule,
    /// The last error logged, so a beacon failing the same way is logged once.
    last_error: Option<BeaconError>,
}

/// Builds every configured beacon for the agent `id`; the first that fails is the error.
pub(crate) fn build(id: &str, specs: &[HostBeaconSpec]) -> Result<Vec<Built>, Error> {
    specs
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let beacon = spec.build(id).map_err(|source| Error::Beacon {
                index,
                kind: spec.kind().to_owned(),
                source,
            })?;
            Ok(Built {
                kind: spec.kind(),
                beacon,
                schedule: spec.schedule(),
                last_error: None,
            })
        })
        .collect()
}

/// Starts the runner thread. It stops when `shutdown` is set and the thread is unparked.
pub(crate) fn start(
    id: &str,
    beacons: Vec<Built>,
    outbox: Outbox,
    shutdown: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Result<JoinHandle<()>, Error> {
    let event = Event::new("/", id).map_err(|_| Error::id_too_long(id))?;
    thread::Builder::new()
        .name("reflex-beacons".into())
        .spawn(move || run(beacons, event, &outbox, &shutdown, &stats))
        .map_err(|source| Error::Thread {
            what: "beacon runner",
            source,
        })
}

fn run(
    mut beacons: Vec<Built>,
    mut event: Event,
    outbox: &Outbox,
    shutdown: &AtomicBool,
    stats: &Stats,
) {
    let start = Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    while !shutdown.load(Ordering::Relaxed) {
        let now = now_ms();
        for b in &mut beacons {
            if !b.schedule.is_due(now) {
                continue;
            }
            match b.schedule.run(&mut b.beacon, now, &mut event) {
                Ok(Emit::Event) => {
                    event.time = reflex_core::host::clock::now_ms();
                    if outbox.send(event.clone()) {
                        Stats::bump(&stats.beacon_events);
                    }
                    b.last_error = None;
                }
                Ok(Emit::Skip) => b.last_error = None,
                Err(e) => {
                    Stats::bump(&stats.beacon_errors);
                    if b.last_error != Some(e) {
                        tracing::warn!("beacon {} ({}): {e}", b.kind, b.beacon.tag());
                        b.last_error = Some(e);
                    }
                }
            }
        }
        let now = now_ms();
        let sleep = beacons
            .iter()
            .map(|b| Duration::from_millis(b.schedule.due_in_ms(now)))
            .min()
            .unwrap_or(IDLE);
        if !sleep.is_zero() {
            // Wakes early when the agent stops; a spurious wake-up only re-checks the schedules.
            thread::park_timeout(sleep);
        }
    }
}
