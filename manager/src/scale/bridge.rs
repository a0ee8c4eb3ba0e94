//! The NATS thread: the only place tokio and the NATS client run. The synchronous loops of
//! `reflex ingest` and `reflex manager --nats` hand it futures ([`Bridge::call`] waits for the
//! answer, [`Bridge::spawn`] does not) and get answers back over channels, so the engine and
//! the event loops never run async code.

use std::future::Future;
use std::thread::JoinHandle;

use async_nats::jetstream;

use super::ScaleError;

/// A connection to NATS and the thread that drives it.
pub struct Bridge {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The JetStream context of the connection.
    pub js: jetstream::Context,
}

impl Bridge {
    /// Connects to `url` on a new thread named `nats`.
    pub fn connect(url: &str) -> Result<Bridge, ScaleError> {
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let url = url.to_string();
        let thread = std::thread::Builder::new()
            .name("nats".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ScaleError::nats("start the runtime", e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let options = async_nats::ConnectOptions::new()
                        .retry_on_initial_connect()
                        .max_reconnects(None);
                    let connected = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        options.connect(url.as_str()),
                    )
                    .await;
                    let client = match connected {
                        Ok(Ok(c)) => c,
                        Ok(Err(e)) => {
                            let _ =
                                ready_tx.send(Err(ScaleError::nats(format!("connect {url}"), e)));
                            return;
                        }
                        Err(_) => {
                            let _ = ready_tx
                                .send(Err(ScaleError::nats(format!("connect {url}"), "timed out")));
                            return;
                        }
                    };
                    let js = jetstream::new(client.clone());
                    let _ = ready_tx.send(Ok((tokio::runtime::Handle::current(), js)));
                    let _ = stop_rx.await;
                    let _ = client.flush().await;
                });
            })
            .map_err(|e| ScaleError::nats("start the NATS thread", e))?;
        let (handle, js) = ready_rx.recv().map_err(|_| ScaleError::Stopped)??;
        Ok(Bridge {
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
            js,
        })
    }

    /// Runs `fut` on the NATS thread and waits for its output.
    pub fn call<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, ScaleError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| ScaleError::Stopped)
    }

    /// Runs `fut` on the NATS thread without waiting; returns a handle that cancels it.
    pub fn spawn(
        &self,
        fut: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::AbortHandle {
        self.handle.spawn(fut).abort_handle()
    }

    /// Runs `fut` on the NATS thread without waiting; returns its join handle, to be awaited
    /// in another future handed to [`Bridge::call`].
    pub fn spawn_joinable(
        &self,
        fut: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        self.handle.spawn(fut)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
