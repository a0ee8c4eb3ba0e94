//! Reloading the rulebook while the Manager runs, and `reflex reload`.
//!
//! A reload is asked for by SIGHUP or by `POST /reload` on the metrics endpoint (which is
//! what `reflex reload` sends by default; it waits for the outcome). A reloader thread
//! recompiles the rulebook from the same path, against the reaction catalog found at start,
//! so the event thread never waits for a compilation. A rulebook with errors is refused: each
//! error is logged as `file:line:col: message`, `reflex_reloads_total{result="error"}` counts
//! it, and the running rulebook goes on. A good one is handed to the event thread, which
//! swaps it in between two events: register slots follow their rules by name (see
//! [`crate::state::renumber`]), and `reflex_reloads_total{result="ok"}` counts it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use reflex_rules::{Catalog, Compiled};

use crate::Error;
use crate::reactions::Table;

/// How long `POST /reload` and `reflex reload` wait for the outcome.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// The outcome of a reload: the new rulebook's summary, or its errors, one per line.
pub type Answer = Result<String, String>;

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

/// `reflex_reloads_total{result}`.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    /// Reloads swapped in.
    pub ok: AtomicU64,
    /// Reloads refused (the rulebook has errors).
    pub error: AtomicU64,
}

impl ReloadCounters {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "reflex_reloads_total";
        let _ = writeln!(
            out,
            "# HELP {name} Rulebook reloads, by result.\n# TYPE {name} counter"
        );
        let _ = writeln!(out, "{name}{{result=\"ok\"}} {}", self.ok.load(Relaxed));
        let _ = writeln!(
            out,
            "{name}{{result=\"error\"}} {}",
            self.error.load(Relaxed)
        );
    }
}

/// Compiles the rulebook at `rules` against `catalog`, as a reload does: the program must
/// validate and every local reaction have a handler.
pub fn compile(rules: &std::path::Path, catalog: &Catalog) -> Result<Compiled, Error> {
    let compiled = reflex_rules::compile_path(rules, catalog)?;
    compiled
        .program()
        .validate()
        .map_err(|e| Error::core("compiled rulebook", e))?;
    Table::build(catalog, &compiled.program())?;
    Ok(compiled)
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
                match compile(&rules, &catalog) {
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
                        let text = match &e {
                            Error::Rulebook(errors) => {
                                for d in errors.iter() {
                                    tracing::error!("{d}");
                                }
                                errors.to_string()
                            }
                            other => {
                                tracing::error!("{other}");
                                other.to_string()
                            }
                        };
                        tracing::error!("rulebook reload failed; the running rulebook is kept");
                        if let Some(a) = answer {
                            let _ = a.send(Err(text));
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
pub fn answer_http(requests: Option<&Sender<Request>>) -> (&'static str, String) {
    let Some(requests) = requests else {
        return (
            "404 Not Found",
            "this endpoint does not reload a rulebook\n".into(),
        );
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    if requests.try_send(Request { answer: Some(tx) }).is_err() {
        return (
            "503 Service Unavailable",
            "too many reloads waiting; try again\n".into(),
        );
    }
    match rx.recv_timeout(ANSWER_WITHIN) {
        Ok(Ok(summary)) => ("200 OK", format!("reloaded: {summary}\n")),
        Ok(Err(errors)) => (
            "422 Unprocessable Entity",
            format!("{errors}\nreload refused; the running rulebook is kept\n"),
        ),
        Err(_) => (
            "504 Gateway Timeout",
            "no outcome in time; see the Manager's log\n".into(),
        ),
    }
}

/// Arguments of `reflex reload`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReloadArgs {
    /// Send SIGHUP to this process id (the outcome is in the Manager's log).
    #[arg(long, value_name = "PID", conflicts_with_all = ["state", "metrics"])]
    pub pid: Option<u32>,
    /// Send SIGHUP to the Manager whose `--state` is DIR (it writes `DIR/manager.pid`).
    #[arg(long, value_name = "DIR", conflicts_with = "metrics")]
    pub state: Option<PathBuf>,
    /// Ask the Manager whose metrics endpoint is HOST:PORT, and print the outcome (the
    /// default).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
}

/// The default of `reflex reload --metrics`: the Manager's default metrics address.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9510";

/// Runs `reflex reload`: exit 0 when the reload was asked for (signal) or done (metrics), 1
/// when it was refused or the Manager cannot be reached.
pub fn main(args: &ReloadArgs) -> ExitCode {
    let result = match (&args.pid, &args.state) {
        (Some(pid), _) => hangup(*pid),
        (None, Some(dir)) => crate::state::read_pid(dir).and_then(hangup),
        (None, None) => over_http(args.metrics.as_deref().unwrap_or(DEFAULT_METRICS)),
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reflex reload: {}", e.to_string().trim_end());
            ExitCode::FAILURE
        }
    }
}

fn hangup(pid: u32) -> Result<String, Error> {
    let pid_t = libc::pid_t::try_from(pid).unwrap_or(0);
    if pid_t <= 0 {
        return Err(Error::io(
            format!("signal process {pid}"),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a process id"),
        ));
    }
    // SAFETY: kill(2) with a positive pid and SIGHUP; no memory is involved.
    let r = unsafe { libc::kill(pid_t, libc::SIGHUP) };
    if r != 0 {
        return Err(Error::io(
            format!("send SIGHUP to process {pid}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(format!(
        "sent SIGHUP to {pid}; the Manager logs the outcome (`rulebook reloaded` or the errors)"
    ))
}

fn over_http(addr: &str) -> Result<String, Error> {
    let what = || format!("ask the Manager at {addr} to reload");
    let mut s = TcpStream::connect(addr).map_err(|e| Error::io(what(), e))?;
    let _ = s.set_read_timeout(Some(ANSWER_WITHIN + Duration::from_secs(5)));
    s.write_all(
        format!(
            "POST /reload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .map_err(|e| Error::io(what(), e))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| Error::io(what(), e))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split(' ').nth(1) == Some("200"));
    if ok {
        Ok(body.to_string())
    } else {
        Err(Error::io(
            what(),
            std::io::Error::other(if body.is_empty() { head } else { body }.to_string()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render() {
        let c = ReloadCounters::default();
        c.error.fetch_add(2, Relaxed);
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("reflex_reloads_total{result=\"ok\"} 0"));
        assert!(out.contains("reflex_reloads_total{result=\"error\"} 2"));
    }

    #[test]
    fn without_a_reloader_the_endpoint_says_so() {
        assert_eq!(answer_http(None).0, "404 Not Found");
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
        assert_eq!(status, "422 Unprocessable Entity");
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
        assert_eq!(
            asker.join().unwrap(),
            ("200 OK", "reloaded: 1 rule\n".into())
        );
        shutdown.store(true, Relaxed);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
