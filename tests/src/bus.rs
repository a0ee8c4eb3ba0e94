//! For the Actor's cross-process tests: the test plays Manager and Publisher with real ZeroMQ
//! sockets ([`Bus`]), and runs the real `reflex-agent` binary against them ([`Agent`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reflex_core::Value;
use reflex_core::wire::{self, Action, ActionResult, Body, Envelope, MAX_ENVELOPE_LEN};

use crate::{Scratch, binary};

/// Generous: these are waits for something that should happen, never timing assertions.
pub const WAIT: Duration = Duration::from_secs(20);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The Manager's PULL socket and the Publisher's socket, bound on free loopback ports. The
/// publisher is an XPUB (a PUB that also shows the subscriptions it receives), so a test knows
/// when the agent listens and to what.
pub struct Bus {
    /// The sockets' context.
    pub ctx: zmq::Context,
    /// The Manager's PULL socket.
    pub pull: zmq::Socket,
    /// The Publisher's XPUB socket.
    pub publisher: zmq::Socket,
    /// Where the PULL socket is bound.
    pub manager_endpoint: String,
    /// Where the XPUB socket is bound.
    pub publisher_endpoint: String,
    /// Subscriptions seen on the publisher since it was (re)bound.
    pub subscriptions: Vec<Vec<u8>>,
}

impl Bus {
    /// Both sockets, bound on free loopback ports.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Bus {
        let ctx = zmq::Context::new();
        let pull = ctx.socket(zmq::PULL).unwrap();
        pull.set_linger(0).unwrap();
        pull.bind("tcp://127.0.0.1:*").unwrap();
        let manager_endpoint = pull.get_last_endpoint().unwrap().unwrap();
        let publisher = xpub(&ctx);
        publisher.bind("tcp://127.0.0.1:*").unwrap();
        let publisher_endpoint = publisher.get_last_endpoint().unwrap().unwrap();
        Bus {
            ctx,
            pull,
            publisher,
            manager_endpoint,
            publisher_endpoint,
            subscriptions: Vec::new(),
        }
    }

    /// Closes the publisher socket and binds a new one on the same port, as a restarted
    /// Publisher would.
    pub fn restart_publisher(&mut self) {
        // Replacing the socket closes the old one, which frees the port.
        self.publisher = xpub(&self.ctx);
        self.subscriptions.clear();
        let deadline = Instant::now() + WAIT;
        loop {
            match self.publisher.bind(&self.publisher_endpoint) {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebind: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.publisher_endpoint),
            }
        }
    }

    /// Closes the PULL socket and binds a new one on the same port, as a restarted Manager
    /// would.
    pub fn restart_manager(&mut self) {
        self.pull = self.ctx.socket(zmq::PULL).unwrap();
        self.pull.set_linger(0).unwrap();
        let deadline = Instant::now() + WAIT;
        while let Err(e) = self.pull.bind(&self.manager_endpoint) {
            assert!(
                Instant::now() < deadline,
                "cannot rebind {}: {e}",
                self.manager_endpoint
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the agent has subscribed to `topic` (such as `b"web-1\0"`).
    pub fn wait_subscribed(&mut self, topic: &[u8]) {
        let deadline = Instant::now() + WAIT;
        let mut wanted = vec![1u8];
        wanted.extend_from_slice(topic);
        while !self.subscriptions.contains(&wanted) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no subscription to {topic:?}; saw {:?}",
                self.subscriptions
            );
            if self.publisher.poll(zmq::POLLIN, 100).unwrap() > 0 {
                let msg = self.publisher.recv_bytes(0).unwrap();
                self.subscriptions.push(msg);
            }
        }
    }

    /// Publishes `action` under `topic` (the target and a NUL).
    pub fn publish(&self, topic: &str, action: &Action) {
        let mut buf = [0u8; MAX_ENVELOPE_LEN];
        let n = wire::encode(&Envelope::new(action.clone()), &mut buf).unwrap();
        let mut t = topic.as_bytes().to_vec();
        t.push(0);
        self.publisher
            .send_multipart([t, buf[..n].to_vec()], 0)
            .unwrap();
    }

    /// Publishes raw frames.
    pub fn publish_raw(&self, frames: &[&[u8]]) {
        self.publisher
            .send_multipart(frames.iter().copied(), 0)
            .unwrap();
    }

    /// Receives bodies until `want` returns `Some`, for at most `within`.
    pub fn recv_until<T>(
        &self,
        within: Duration,
        mut want: impl FnMut(Body) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if self
                .pull
                .poll(zmq::POLLIN, left.as_millis().max(1) as i64)
                .unwrap()
                == 0
            {
                continue;
            }
            let bytes = self.pull.recv_bytes(0).unwrap();
            let env = wire::decode(&bytes)
                .expect("the agent sends valid envelopes")
                .envelope;
            if let Some(t) = want(env.body) {
                return Some(t);
            }
        }
    }

    /// Waits for the result of action `id`.
    pub fn result(&self, id: u64) -> ActionResult {
        self.try_result(id, WAIT)
            .unwrap_or_else(|| panic!("no result for action {id}"))
    }

    /// Waits up to `within` for the result of action `id`.
    pub fn try_result(&self, id: u64, within: Duration) -> Option<ActionResult> {
        self.recv_until(within, |b| match b {
            Body::Result(r) if r.id == id => Some(r),
            _ => None,
        })
    }

    /// Publishes `action` to its target and waits for its result.
    pub fn perform(&self, action: &Action) -> ActionResult {
        self.publish(&action.target, action);
        self.result(action.id)
    }
}

fn xpub(ctx: &zmq::Context) -> zmq::Socket {
    let s = ctx.socket(zmq::XPUB).unwrap();
    s.set_linger(0).unwrap();
    // Report every subscription, also repeated ones after a reconnect.
    s.set_xpub_verbose(true).unwrap();
    s
}

/// An action from "manager", issued now, expiring in a minute.
pub fn action(id: u64, function: &str, target: &str) -> Action {
    let mut a = Action::new(id, function, target).unwrap();
    a.source = reflex_core::event::make_source("manager").unwrap();
    a.time = now_ms();
    a.expires = a.time + 60_000;
    a
}

/// A `reactions.actor.run` action for `argv`.
pub fn run_action(id: u64, target: &str, argv: &[&str]) -> Action {
    let mut a = action(id, "reactions.actor.run", target);
    for arg in argv {
        a.push_arg("argv", Value::str(arg).unwrap()).unwrap();
    }
    a
}

/// A running `reflex-agent`, killed when dropped.
pub struct Agent {
    /// The process.
    pub child: Child,
    /// Its scratch directory: its configuration, its log, what the test gives it.
    pub dir: Scratch,
    /// Its id.
    pub id: String,
    log: PathBuf,
}

impl Agent {
    /// Starts an agent with id `id`, the bus's endpoints, and `yaml` as its configuration
    /// file, where `$DIR` stands for the agent's own temporary directory. The agent runs
    /// `--insecure`: these tests are about what it does, not about authentication.
    pub fn start(bus: &Bus, id: &str, yaml: &str) -> Agent {
        Agent::start_with(bus, id, yaml, &["--insecure"], |_| {})
    }

    /// As [`Agent::start`], with `flags` instead of `--insecure`, after `prepare` has put
    /// what the agent needs (keys) into its directory; `$DIR` in `flags` is that directory.
    pub fn start_with(
        bus: &Bus,
        id: &str,
        yaml: &str,
        flags: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Agent {
        let dir = Scratch::new(&format!("agent-{id}"));
        prepare(dir.path());
        let dir_text = dir.path().to_str().unwrap();
        let config = dir.path().join("agent.yml");
        std::fs::write(&config, yaml.replace("$DIR", dir.path().to_str().unwrap())).unwrap();
        let log = dir.path().join("agent.log");
        let child = Command::new(binary("reflex-agent"))
            .args(["--id", id, "--manager", &bus.manager_endpoint])
            .args(["--publisher", &bus.publisher_endpoint])
            .arg("--config")
            .arg(&config)
            .args(flags.iter().map(|f| f.replace("$DIR", dir_text)))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent {
            child,
            dir,
            id: id.to_owned(),
            log,
        }
    }

    /// Starts an agent and waits until it is subscribed to its id and to `*`.
    pub fn ready(bus: &mut Bus, id: &str, yaml: &str) -> Agent {
        let agent = Agent::start(bus, id, yaml);
        bus.wait_subscribed(format!("{id}\0").as_bytes());
        bus.wait_subscribed(b"*\0");
        agent
    }

    /// A path in the agent's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- agent {} log ---\n{}", self.id, self.log());
        }
    }
}

/// Writes an executable shell script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
