//! Watch publishing: the XPUB socket on which everything the Manager sees and does is
//! published, and the subscriptions it hears, so nothing is encoded or sent while nobody
//! watches.

use reflex_core::Event;
use reflex_core::wire::{self, Envelope};

/// The watch socket and the topics (tag prefixes) someone subscribes to on it.
pub struct Watchers {
    socket: zmq::Socket,
    /// Empty: nobody watches.
    topics: Vec<Vec<u8>>,
}

impl Watchers {
    /// Watchers of the bound XPUB `socket`; none yet.
    pub fn new(socket: zmq::Socket) -> Watchers {
        Watchers {
            socket,
            topics: Vec::new(),
        }
    }

    /// The socket, to poll.
    pub fn socket(&self) -> &zmq::Socket {
        &self.socket
    }

    /// Whether some watcher's subscription covers `tag`.
    pub fn covers(&self, tag: &str) -> bool {
        self.topics.iter().any(|t| tag.as_bytes().starts_with(t))
    }

    /// Takes in the subscriptions and unsubscriptions the socket heard (`[1|0][topic]`).
    pub fn update(&mut self) {
        while let Ok(msg) = self.socket.recv_bytes(zmq::DONTWAIT) {
            match msg.split_first() {
                Some((1, topic)) if !self.topics.iter().any(|t| t == topic) => {
                    self.topics.push(topic.to_vec())
                }
                Some((0, topic)) => self.topics.retain(|t| t != topic),
                _ => {}
            }
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
