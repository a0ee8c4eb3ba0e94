//! What a host binary's `main` sets up (feature `host-main`): logs to standard error and the
//! signals that stop it or make it reload.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Sends logs (`tracing`) to standard error, filtered by `RUST_LOG` (default `info`), in
/// colour on a terminal. Does nothing when logging is already set up.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .try_init();
}

/// A flag SIGINT and SIGTERM set, for a clean stop. A second SIGINT or SIGTERM while the
/// flag is set exits the process at once with `insist_status`: the user insists.
pub fn stop_flag(insist_status: i32) -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(sig, insist_status, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// Makes SIGHUP set `stop` too, for a program that ends with its terminal (`reflex watch`,
/// the demo, the Publisher) but cleans up first; a second one exits as [`stop_flag`] says.
pub fn stop_on_hangup(stop: &Arc<AtomicBool>, insist_status: i32) -> io::Result<()> {
    signal_hook::flag::register_conditional_shutdown(SIGHUP, insist_status, stop.clone())?;
    signal_hook::flag::register(SIGHUP, stop.clone())?;
    Ok(())
}

/// A flag SIGHUP sets, for a reload; the signal no longer ends the process.
pub fn reload_flag() -> io::Result<Arc<AtomicBool>> {
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGHUP, reload.clone())?;
    Ok(reload)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::host::sys::{self, Signal};

    #[test]
    fn sighup_sets_the_reload_flag() {
        let reload = reload_flag().unwrap();
        assert!(!reload.load(Ordering::SeqCst));
        sys::signal(std::process::id(), Signal::Hangup).unwrap();
        let start = Instant::now();
        while !reload.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(10), "never set");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
