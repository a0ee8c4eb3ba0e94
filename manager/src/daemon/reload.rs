//! Reloading the rulebook while the Manager runs (`reflex reload` asks for it).
//!
//! A reload is asked for by SIGHUP or by `POST /reload` on the metrics endpoint (which is
//! what `reflex reload` sends by default; it waits for the outcome). A reloader thread
//! recompiles the rulebook from the same path, against the reaction catalog found at start,
//! so the event thread never waits for a compilation. A rulebook with errors is refused: each
//! error is logged as `file:line:col: message`, `reflex_reloads_total{result="error"}` counts
//! it, and the running rulebook goes on. A good one is handed to the event thread, which
//! swaps it in between two events: register slots follow their rules by name (see
//! [`crate::state::renumber`]), and `reflex_reloads_total{result="ok"}` counts it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use reflex_rules::{Catalog, Compiled};

use crate::Error;
use crate::metrics::ReloadCounters;

/// How long `POST /reload` and `reflex reload` wait for the outcome.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// The outcome of a reload: the new rulebook's summary, or why it was refused (its errors,
/// displayed one per line, or what stopped reading it).
pub type Answer = Result<String, Error>;

/// A request to reload, with where to send the outcome.
#[derive(Debug)]
pub struct Request {
    /// Receives the outcome; `None` when nobody waits (SIGHUP).
    pub answer: Option<Sender<Answer>>,
}

/// A rulebook that compiled, for the event thread to swap in.
pub struct Swap {
    /// The new rulebook.
    pub compiled: Compiled,
    /// Receives the outcome once it is swapped in.
    pub answer: Option<Sender<Answer>>,
}

/// Starts the reloader thread. It reloads when `hup` is set (and clears it) or a
/// [`Request`] arrives, and sends each rulebook that compiles on the returned channel; it
/// stops when `shutdown` is set.
pub fn start(
    rules: PathBuf,
    catalog: Catalog,
    hup: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    counters: Arc<ReloadCounters>,
) -> Result<(Sender<Request>, Receiver<Swap>), Error> {
    let (req_tx, req_rx) = crossbeam_channel::bounded::<Request>(16);
    let (swap_tx, swap_rx) = crossbeam_channel::bounded::<Swap>(1);
    std::thread::Builder::new()
        .name("reloader".into())
        .spawn(move || {
            while !shutdown.load(Relaxed) {
                let answer = match req_rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(r) => Some(r.answer),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                let wanted = match answer {
                    Some(a) => Some(a),
                    None if hup.swap(false, Relaxed) => Some(None),
                    None => None,
                };
                let Some(answer) = wanted else {
                    continue;
                };
                tracing::info!(rules = %rules.display(), "reloading the rulebook");
                match super::load::compile(&rules, &catalog) {
                    Ok(compiled) => {
                        let swap = Swap { compiled, answer };
                        // The event thread takes it at its next tick; give up when it stops.
                        let mut swap = Some(swap);
                        while let Some(s) = swap.take() {
                            match swap_tx.send_timeout(s, Duration::from_millis(200)) {
                                Ok(()) => {}
                                Err(crossbeam_channel::SendTimeoutError::Timeout(s))
                                    if !shutdown.load(Relaxed) =>
                                {
                                    swap = Some(s)
                                }
                                Err(_) => return,
                            }
                        }
                    }
                    Err(e) => {
                        counters.error.fetch_add(1, Relaxed);
                        match &e {
                            Error::Rulebook(errors) => {
                                for d in errors.iter() {
                                    tracing::error!("{d}");
                                }
                            }
                            other => tracing::error!("{other}"),
                        }
                        tracing::error!("rulebook reload failed; the running rulebook is kept");
                        if let Some(a) = answer {
                            let _ = a.send(Err(e));
                        }
                    }
                }
            }
        })
        .map_err(|e| Error::io("start the reloader thread", e))?;
    Ok((req_tx, swap_rx))
}

/// Answers `POST /reload` on the metrics endpoint: asks for a reload and waits for its
/// outcome. Returns the HTTP status and body.
pub fn answer_http(requests: Option<&Sender<Request>>) -> (u16, String) {
    let Some(requests) = requests else {
        return crate::http::no_reload();
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    if requests.try_send(Request { answer: Some(tx) }).is_err() {
        return (503, "too many reloads waiting; try again\n".into());
    }
    match rx.recv_timeout(ANSWER_WITHIN) {
        Ok(Ok(summary)) => (200, format!("reloaded: {summary}\n")),
        Ok(Err(errors)) => (
            422,
            format!("{errors}\nreload refused; the running rulebook is kept\n"),
        ),
        Err(_) => (504, "no outcome in time; see the Manager's log\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_reloader_the_endpoint_says_so() {
        assert_eq!(answer_http(None).0, 404);
    }

    #[test]
    fn errors_and_successes_come_back_to_the_asker() {
        let dir = std::env::temp_dir().join(format!("reflex-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let book = dir.join("rules.yml");
        std::fs::write(&book, "/a:\n  rules:\n    - x:\n        rulez: 1\n").unwrap();
        let counters = Arc::new(ReloadCounters::default());
        let shutdown = Arc::new(AtomicBool::new(false));
        let (req, swaps) = start(
            book.clone(),
            Catalog::builtin(),
            Arc::new(AtomicBool::new(false)),
            shutdown.clone(),
            counters.clone(),
        )
        .unwrap();
        let (status, body) = answer_http(Some(&req));
        assert_eq!(status, 422);
        assert!(body.contains("rules.yml:4:9:"), "{body}");
        assert_eq!(counters.error.load(Relaxed), 1);
        std::fs::write(
            &book,
            "/a:\n  rules:\n    - x:\n        rule: rules.simple.gt\n        threshold: 1\n",
        )
        .unwrap();
        let asker = std::thread::spawn(move || answer_http(Some(&req)));
        let swap = swaps.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(swap.compiled.rule_names(), ["x"]);
        swap.answer.unwrap().send(Ok("1 rule".into())).unwrap();
        assert_eq!(asker.join().unwrap(), (200, "reloaded: 1 rule\n".into()));
        shutdown.store(true, Relaxed);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
