//! Signal handling: flags set by SIGINT, SIGTERM and SIGHUP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// A flag set by SIGINT, SIGTERM or SIGHUP, for a clean stop. Installs the process's signal
/// handler, so call it once per process.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    if let Err(e) = ctrlc::set_handler(move || set.store(true, Relaxed)) {
        tracing::warn!(error = %e, "cannot install the signal handler");
    }
    flag
}

/// The Manager's signals: SIGINT and SIGTERM set the first flag (stop), SIGHUP the second
/// (reload the rulebook). A second SIGINT or SIGTERM while stopping exits at once (status 1).
pub fn manager_signals() -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        let conditional = signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone());
        let plain = signal_hook::flag::register(sig, stop.clone());
        if let Err(e) = conditional.and(plain) {
            tracing::warn!(error = %e, signal = sig, "cannot install the signal handler");
        }
    }
    if let Err(e) = signal_hook::flag::register(SIGHUP, hup.clone()) {
        tracing::warn!(error = %e, "cannot install the SIGHUP handler; reload with POST /reload");
    }
    (stop, hup)
}
