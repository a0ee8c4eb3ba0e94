//! Watch publishing: the XPUB socket on which everything the Manager sees and does is
//! published, and the subscriptions it hears, so nothing is encoded or sent while nobody
//! watches.
//!
//! Subscriptions are tag prefixes, kept in a hash set: whether some watcher covers a tag takes
//! one lookup per prefix of the tag (at most [`MAX_TAG_LEN`] + 1), however many subscriptions
//! there are, so watchers cannot slow the event thread down by subscribing a lot. At most
//! [`MAX_WATCH_SUBSCRIPTIONS`] distinct prefixes are served in all; further ones are refused
//! (never matched) and counted in `reflex_watch_subscriptions_refused_total`. A subscription
//! frame is at most a byte and a tag long (the socket's message-size limit).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use reflex_core::Event;
use reflex_core::event::MAX_TAG_LEN;
use reflex_core::wire::{self, Envelope};

use crate::metrics::Metrics;

/// Most distinct subscriptions (tag prefixes) served at once, over every watcher.
pub const MAX_WATCH_SUBSCRIPTIONS: usize = 4096;

/// The watch socket and the topics (tag prefixes) someone subscribes to on it.
pub struct Watchers {
    socket: zmq::Socket,
    /// Empty: nobody watches.
    topics: HashSet<Vec<u8>>,
    /// The lengths of the prefixes held, so a tag is looked up only at those lengths.
    lengths: [u32; MAX_TAG_LEN + 1],
    metrics: Option<Arc<Metrics>>,
}

impl Watchers {
    /// Watchers of the bound XPUB `socket`; none yet.
    pub fn new(socket: zmq::Socket) -> Watchers {
        Watchers {
            socket,
            topics: HashSet::new(),
            lengths: [0; MAX_TAG_LEN + 1],
            metrics: None,
        }
    }

    /// Counts subscriptions in `metrics`.
    pub fn counted(mut self, metrics: Arc<Metrics>) -> Watchers {
        self.metrics = Some(metrics);
        self
    }

    /// The socket, to poll.
    pub fn socket(&self) -> &zmq::Socket {
        &self.socket
    }

    /// Whether some watcher's subscription covers `tag`.
    pub fn covers(&self, tag: &str) -> bool {
        if self.topics.is_empty() {
            return false;
        }
        let tag = tag.as_bytes();
        (0..=tag.len().min(MAX_TAG_LEN))
            .any(|n| self.lengths[n] > 0 && self.topics.contains(&tag[..n]))
    }

    /// Takes in the subscriptions and unsubscriptions the socket heard (`[1|0][topic]`).
    pub fn update(&mut self) {
        while let Ok(msg) = self.socket.recv_bytes(zmq::DONTWAIT) {
            match msg.split_first() {
                Some((1, topic)) if topic.len() <= MAX_TAG_LEN => {
                    if self.topics.contains(topic) {
                        continue;
                    }
                    if self.topics.len() >= MAX_WATCH_SUBSCRIPTIONS {
                        if let Some(m) = &self.metrics {
                            m.watch_subscriptions_refused.fetch_add(1, Relaxed);
                        }
                        continue;
                    }
                    self.lengths[topic.len()] += 1;
                    self.topics.insert(topic.to_vec());
                }
                Some((0, topic)) if self.topics.remove(topic) => {
                    self.lengths[topic.len()] -= 1;
                }
                _ => {}
            }
        }
        if let Some(m) = &self.metrics {
            m.watch_subscriptions
                .store(self.topics.len() as u64, Relaxed);
        }
    }

    /// Publishes an envelope already encoded (`bytes`) under `tag`, when someone watches it.
    pub fn forward(&self, tag: &str, bytes: &[u8]) {
        if self.covers(tag) {
            self.send(tag, bytes);
        }
    }

    /// Encodes `e` into `out` and publishes it, when someone watches its tag.
    pub fn publish(&self, e: &Event, out: &mut [u8]) {
        if !self.covers(&e.tag) {
            return;
        }
        let env = Envelope::new(e.clone());
        if let Ok(n) = wire::encode(&env, out) {
            self.send(&e.tag, &out[..n]);
        }
    }

    fn send(&self, tag: &str, bytes: &[u8]) {
        let _ = self
            .socket
            .send(tag.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
        let _ = self.socket.send(bytes, zmq::DONTWAIT);
    }
}
