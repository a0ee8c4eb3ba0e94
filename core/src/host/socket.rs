//! ZeroMQ sockets set up one way for the Manager, the Publisher, the Actor and the gateway
//! (feature `sockets`): a [`SocketSpec`] says the kind, the linger, the queue bounds, the
//! largest message and the reconnect intervals; [`SocketSpec::bind`] and
//! [`SocketSpec::connect`] make the socket and say which step failed.
//!
//! ```
//! use reflex_core::host::socket::SocketSpec;
//! let ctx = zmq::Context::new();
//! let pull = SocketSpec::new(zmq::PULL, "events").hwm(100).bind(&ctx, "inproc://doc").unwrap();
//! let push = SocketSpec::new(zmq::PUSH, "sender").send_hwm(10).connect(&ctx, "inproc://doc");
//! push.unwrap().send("hello", 0).unwrap();
//! assert_eq!(pull.recv_bytes(0).unwrap(), b"hello");
//! ```

use core::fmt;

/// How to make one socket. Unset options keep ZeroMQ's defaults, except the linger, which is
/// 0: a socket never holds its process back at close unless told to.
#[derive(Debug, Clone, Copy)]
pub struct SocketSpec {
    kind: zmq::SocketType,
    role: &'static str,
    linger_ms: i32,
    send_hwm: Option<i32>,
    recv_hwm: Option<i32>,
    max_msg_size: Option<i64>,
    reconnect_ms: Option<(i32, i32)>,
    send_timeout_ms: Option<i32>,
    immediate: bool,
}

/// Which step of making a socket failed, and what ZeroMQ said.
#[derive(Debug)]
pub enum SocketError {
    /// The socket could not be created.
    Create {
        /// The socket's role, such as `events`.
        role: &'static str,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// An option could not be set.
    Configure {
        /// The socket's role.
        role: &'static str,
        /// The option, such as `SNDHWM`.
        option: &'static str,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// The endpoint could not be bound.
    Bind {
        /// The endpoint.
        endpoint: String,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// The endpoint could not be connected to.
    Connect {
        /// The endpoint.
        endpoint: String,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketError::Create { role, source } => {
                write!(f, "cannot create the {role} socket: {source}")
            }
            SocketError::Configure {
                role,
                option,
                source,
            } => write!(f, "cannot set {option} on the {role} socket: {source}"),
            SocketError::Bind { endpoint, source } => {
                write!(f, "cannot bind {endpoint}: {source}")
            }
            SocketError::Connect { endpoint, source } => {
                write!(f, "cannot connect {endpoint}: {source}")
            }
        }
    }
}

impl std::error::Error for SocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SocketError::Create { source, .. }
            | SocketError::Configure { source, .. }
            | SocketError::Bind { source, .. }
            | SocketError::Connect { source, .. } => Some(source),
        }
    }
}

impl SocketSpec {
    /// A socket of `kind`, named `role` in errors, with linger 0 and ZeroMQ's other defaults.
    pub const fn new(kind: zmq::SocketType, role: &'static str) -> SocketSpec {
        SocketSpec {
            kind,
            role,
            linger_ms: 0,
            send_hwm: None,
            recv_hwm: None,
            max_msg_size: None,
            reconnect_ms: None,
            send_timeout_ms: None,
            immediate: false,
        }
    }

    /// How long closing waits for unsent messages, in milliseconds (-1: forever).
    pub const fn linger_ms(mut self, ms: i32) -> SocketSpec {
        self.linger_ms = ms;
        self
    }

    /// At most `messages` queued for sending; past it a non-blocking send is refused.
    pub const fn send_hwm(mut self, messages: i32) -> SocketSpec {
        self.send_hwm = Some(messages);
        self
    }

    /// At most `messages` queued on receipt.
    pub const fn recv_hwm(mut self, messages: i32) -> SocketSpec {
        self.recv_hwm = Some(messages);
        self
    }

    /// Both queue bounds at `messages`.
    pub const fn hwm(self, messages: i32) -> SocketSpec {
        self.send_hwm(messages).recv_hwm(messages)
    }

    /// Refuses (and drops the connection of) a peer that sends a message over `bytes`.
    pub const fn max_msg_size(mut self, bytes: i64) -> SocketSpec {
        self.max_msg_size = Some(bytes);
        self
    }

    /// Reconnects after `first_ms`, backing off to at most `max_ms`.
    pub const fn reconnect_ms(mut self, first_ms: i32, max_ms: i32) -> SocketSpec {
        self.reconnect_ms = Some((first_ms, max_ms));
        self
    }

    /// A blocking send gives up (with `EAGAIN`) after `ms` milliseconds.
    pub const fn send_timeout_ms(mut self, ms: i32) -> SocketSpec {
        self.send_timeout_ms = Some(ms);
        self
    }

    /// Queues messages only on connections that are up: with none, a send waits (and times
    /// out) instead of queueing for a peer that may never come.
    pub const fn immediate(mut self) -> SocketSpec {
        self.immediate = true;
        self
    }

    /// The socket, configured, neither bound nor connected (to subscribe first, say).
    pub fn make(&self, ctx: &zmq::Context) -> Result<zmq::Socket, SocketError> {
        let role = self.role;
        let s = ctx
            .socket(self.kind)
            .map_err(|source| SocketError::Create { role, source })?;
        let set = |option, r: zmq::Result<()>| {
            r.map_err(|source| SocketError::Configure {
                role,
                option,
                source,
            })
        };
        set("LINGER", s.set_linger(self.linger_ms))?;
        if let Some(n) = self.send_hwm {
            set("SNDHWM", s.set_sndhwm(n))?;
        }
        if let Some(n) = self.recv_hwm {
            set("RCVHWM", s.set_rcvhwm(n))?;
        }
        if let Some(n) = self.max_msg_size {
            set("MAXMSGSIZE", s.set_maxmsgsize(n))?;
        }
        if let Some((first, max)) = self.reconnect_ms {
            set("RECONNECT_IVL", s.set_reconnect_ivl(first))?;
            set("RECONNECT_IVL_MAX", s.set_reconnect_ivl_max(max))?;
        }
        if let Some(ms) = self.send_timeout_ms {
            set("SNDTIMEO", s.set_sndtimeo(ms))?;
        }
        if self.immediate {
            set("IMMEDIATE", s.set_immediate(true))?;
        }
        Ok(s)
    }

    /// The socket, configured and bound to `endpoint`.
    pub fn bind(&self, ctx: &zmq::Context, endpoint: &str) -> Result<zmq::Socket, SocketError> {
        let s = self.make(ctx)?;
        s.bind(endpoint).map_err(|source| SocketError::Bind {
            endpoint: endpoint.to_owned(),
            source,
        })?;
        Ok(s)
    }

    /// The socket, configured and connected to `endpoint`.
    pub fn connect(&self, ctx: &zmq::Context, endpoint: &str) -> Result<zmq::Socket, SocketError> {
        let s = self.make(ctx)?;
        connect(&s, endpoint)?;
        Ok(s)
    }
}

/// Connects a socket made by [`SocketSpec::make`] to `endpoint`.
pub fn connect(socket: &zmq::Socket, endpoint: &str) -> Result<(), SocketError> {
    socket
        .connect(endpoint)
        .map_err(|source| SocketError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_set_and_failures_say_which_step() {
        let ctx = zmq::Context::new();
        let spec = SocketSpec::new(zmq::SUB, "subscription")
            .linger_ms(500)
            .hwm(7)
            .max_msg_size(1024)
            .reconnect_ms(50, 1000);
        let s = spec.make(&ctx).unwrap();
        assert_eq!(s.get_linger().unwrap(), 500);
        assert_eq!(s.get_sndhwm().unwrap(), 7);
        assert_eq!(s.get_rcvhwm().unwrap(), 7);
        assert_eq!(s.get_maxmsgsize().unwrap(), 1024);
        assert_eq!(s.get_reconnect_ivl().unwrap(), 50);
        assert_eq!(s.get_reconnect_ivl_max().unwrap(), 1000);
        let plain = SocketSpec::new(zmq::PUSH, "p").make(&ctx).unwrap();
        assert_eq!(plain.get_linger().unwrap(), 0);

        let bound = SocketSpec::new(zmq::PULL, "a").bind(&ctx, "inproc://socket-test");
        assert!(bound.is_ok());
        let Err(again) = SocketSpec::new(zmq::PULL, "b").bind(&ctx, "inproc://socket-test") else {
            panic!("bound twice");
        };
        assert!(matches!(again, SocketError::Bind { .. }), "{again}");
        assert!(
            again
                .to_string()
                .starts_with("cannot bind inproc://socket-test: "),
            "{again}"
        );
        let Err(bad) = SocketSpec::new(zmq::PUSH, "p").connect(&ctx, "nonsense") else {
            panic!("connected to nonsense");
        };
        assert!(matches!(bad, SocketError::Connect { .. }), "{bad}");
    }
}
