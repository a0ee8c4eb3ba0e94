//! The pool of worker threads that perform local reactions and hand the events they make
//! (fired events, reaction reports) back to the event thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use reflex_core::wire::{self, Envelope, MAX_ENVELOPE_LEN};
use reflex_core::{Event, event::MAX_HOPS};

use crate::Error;
use crate::metrics::{DropReason, Metrics};
use reflex_core::host::socket::SocketSpec;
use reflex_core::text::clip;

use super::{Job, Outcome, Table, report_event};

/// The pool of worker threads performing local reactions.
pub struct Pool {
    tx: Option<Sender<Job>>,
    rx: Receiver<Job>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads taking jobs from a queue of `queue` slots. Events they make
    /// (fired events and reaction reports) are pushed to the inproc `endpoint` of `ctx`.
    pub fn start(
        workers: usize,
        queue: usize,
        table: Arc<Table>,
        metrics: Arc<Metrics>,
        ctx: &zmq::Context,
        endpoint: &str,
    ) -> Result<Pool, Error> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue.max(1));
        let mut handles = Vec::new();
        for n in 0..workers.max(1) {
            let push = SocketSpec::new(zmq::PUSH, "worker")
                .send_hwm(queue.try_into().unwrap_or(i32::MAX))
                .connect(ctx, endpoint)?;
            let worker = Worker {
                rx: rx.clone(),
                table: table.clone(),
                metrics: metrics.clone(),
                push,
            };
            let handle = std::thread::Builder::new()
                .name(format!("reaction-{n}"))
                .spawn(move || worker.run())
                .map_err(|e| Error::io("start a reaction worker", e))?;
            handles.push(handle);
        }
        Ok(Pool {
            tx: Some(tx),
            rx,
            workers: handles,
        })
    }

    /// Queues a job without waiting; `false` when the queue is full (the job is dropped).
    pub fn try_send(&self, job: Job) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.try_send(job).is_ok())
    }

    /// Jobs waiting for a worker.
    pub fn depth(&self) -> usize {
        self.rx.len()
    }

    /// Stops taking jobs, kills running programs, and waits up to `grace` for the workers.
    pub fn stop(mut self, grace: std::time::Duration) {
        self.tx = None;
        while self.rx.try_recv().is_ok() {}
        reflex_core::host::exec::kill_all();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for w in self.workers.drain(..).filter(|w| w.is_finished()) {
            let _ = w.join();
        }
    }
}

struct Worker {
    rx: Receiver<Job>,
    table: Arc<Table>,
    metrics: Arc<Metrics>,
    push: zmq::Socket,
}

impl Worker {
    fn run(self) {
        let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
        for job in self.rx.iter() {
            let key = self.table.key(job.func);
            let outcome = match self.table.handler(job.func) {
                Some(h) => catch_unwind(AssertUnwindSafe(|| h.perform(&job)))
                    .unwrap_or_else(|_| Outcome::failed(-1, "the reaction panicked")),
                None => Outcome::failed(-1, "no local handler"),
            };
            self.metrics.reaction(job.func, outcome.ok);
            self.metrics
                .reaction_latency
                .observe(job.received.elapsed());
            let shown = clip(outcome.output.trim_end(), 200);
            if outcome.ok {
                tracing::info!(
                    reaction = key, rule = %job.rule, source = %job.event.source,
                    code = outcome.code, output = shown, "reaction done"
                );
            } else {
                tracing::warn!(
                    reaction = key, rule = %job.rule, source = %job.event.source,
                    code = outcome.code, output = shown, "reaction failed"
                );
            }
            if let Some(e) = &outcome.emit {
                if e.hops > MAX_HOPS {
                    // A loop through the rules: stopped here, named by its rule and its tags.
                    self.metrics.dropped(DropReason::Loop, 1);
                    tracing::warn!(
                        rule = %job.rule, tag = %e.tag, cause = %job.event.tag,
                        reaction = key, hops = e.hops,
                        "reaction loop stopped at the hop limit; event not fired"
                    );
                } else {
                    self.inject(e, &mut buf);
                }
            }
            match report_event(
                key,
                &job.event,
                &job.rule,
                outcome.ok,
                outcome.code,
                &outcome.output,
                None,
            ) {
                Ok(e) => self.inject(&e, &mut buf),
                Err(e) => tracing::debug!(error = %e, "reaction report not made"),
            }
        }
    }

    /// Hands an event to the event thread. Events past the hop limit are refused there.
    fn inject(&self, e: &Event, buf: &mut [u8]) {
        if e.hops > MAX_HOPS {
            // Counted here so the event thread's queue is not flooded by a loop.
            self.metrics.dropped(DropReason::Loop, 1);
            tracing::debug!(tag = %e.tag, hops = e.hops, "reaction loop stopped at the hop limit");
            return;
        }
        let env = Envelope::new(e.clone());
        let Ok(n) = wire::encode(&env, buf) else {
            return;
        };
        if self.push.send(&buf[..n], zmq::DONTWAIT).is_err() {
            self.metrics.dropped(DropReason::InternalQueueFull, 1);
        }
    }
}
