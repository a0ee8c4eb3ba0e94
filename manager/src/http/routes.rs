//! What each address answers. The metrics address ([`Control`]): `GET /metrics`, the
//! dashboard (`GET /`, `GET /api/dashboard`) and `POST /reload` (with the admin token when
//! the Manager has a trust directory). The ingest address ([`Ingest`], `--http`):
//! `POST /events` and `POST /alertmanager`, each with a source's bearer token.

use std::sync::{Arc, Mutex};

use reflex_core::Event;
use reflex_core::wire::{self, Envelope, MAX_ENVELOPE_LEN};

use crate::metrics::{HttpRefusal, Metrics};
use reflex_core::host::clock;

use super::dashboard::{Board, PAGE};
use super::ingest::{self, IngestError};
use super::request::{Request, Response};
use super::tokens::{ADMIN, Tokens};

/// What answers `POST /reload`: asks for a reload, waits for its outcome, and returns the HTTP
/// status and body.
pub type ReloadRoute = Box<dyn Fn() -> (u16, String) + Send + Sync>;

/// The answer to `POST /reload` on an endpoint without a reload route.
pub fn no_reload() -> (u16, String) {
    (404, "this endpoint does not reload a rulebook\n".into())
}

/// The routes of the metrics address.
pub struct Control {
    /// The counters shown at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The dashboard's last view.
    pub board: Arc<Board>,
    /// `POST /reload`, when the Manager reloads.
    pub reload: Option<ReloadRoute>,
    /// The tokens of the trust directory (`admin.token` authorizes reloads).
    pub tokens: Arc<Tokens>,
}

impl Control {
    /// Answers one request.
    pub fn answer(&self, r: &Request) -> Response {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/metrics") => Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.metrics.render().into_bytes(),
            },
            ("GET", "/") => Response {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: PAGE.as_bytes().to_vec(),
            },
            ("GET", "/api/dashboard") => Response {
                status: 200,
                content_type: "application/json",
                body: self.board.json(clock::now_ms()).into_bytes(),
            },
            ("POST", "/reload") => {
                if let Err(refused) = self.admin(r) {
                    return refused;
                }
                let (status, body) = self.reload.as_ref().map_or_else(no_reload, |route| route());
                Response::text(status, body)
            }
            ("GET", _) => Response::text(404, "try /metrics, or / for the dashboard\n"),
            _ => Response::text(405, "only GET /metrics, GET / and POST /reload\n"),
        }
    }

    /// Checks the admin token of a state-changing request. A Manager without a trust
    /// directory (lab mode) takes reloads from anyone who reaches its metrics address.
    fn admin(&self, r: &Request) -> Result<(), Response> {
        if !self.tokens.configured() {
            return Ok(());
        }
        let counters = &self.metrics.http;
        let Some(token) = r.bearer() else {
            counters.refused(HttpRefusal::Unauthorized);
            return Err(Response::text(
                401,
                "reloading needs the admin token: `reflex reload --token TRUST_DIR/admin.token` \
                 (make one with `reflex keys gen --token --name admin --out TRUST_DIR`)\n",
            ));
        };
        match self.tokens.holder(token) {
            Some(holder) if holder == ADMIN => Ok(()),
            Some(_) => {
                counters.refused(HttpRefusal::Forbidden);
                Err(Response::text(403, "only the admin token reloads\n"))
            }
            None => {
                counters.refused(HttpRefusal::Unauthorized);
                Err(Response::text(401, "unknown token\n"))
            }
        }
    }
}

/// Hands events to the event thread over its inproc socket.
pub struct Inject {
    socket: Mutex<zmq::Socket>,
}

impl Inject {
    /// Sends through `socket`, a PUSH socket connected to the event thread's inproc socket.
    pub fn new(socket: zmq::Socket) -> Inject {
        Inject {
            socket: Mutex::new(socket),
        }
    }

    /// Queues `e` for the event thread without waiting.
    fn send(&self, e: &Event) -> Result<(), HttpRefusal> {
        let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
        let n =
            wire::encode(&Envelope::new(e.clone()), &mut buf).map_err(|_| HttpRefusal::Invalid)?;
        let socket = self.socket.lock().map_err(|_| HttpRefusal::QueueFull)?;
        socket
            .send(&buf[..n], zmq::DONTWAIT)
            .map_err(|_| HttpRefusal::QueueFull)
    }
}

/// How a route turns a body from a holder at a time into events.
type Parse = fn(&[u8], &str, u64) -> Result<Vec<Event>, IngestError>;

/// The routes of the ingest address.
pub struct Ingest {
    /// Who may send.
    pub tokens: Arc<Tokens>,
    /// Where accepted events go.
    pub inject: Inject,
    /// The counters.
    pub metrics: Arc<Metrics>,
}

impl Ingest {
    /// Answers one request.
    pub fn answer(&self, r: &Request) -> Response {
        let parse: Parse = match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/events") => ingest::events,
            ("POST", "/alertmanager") => ingest::alerts,
            (_, "/events" | "/alertmanager") => {
                return Response::error(405, "use POST");
            }
            _ => return Response::error(404, "try POST /events or POST /alertmanager"),
        };
        let counters = &self.metrics.http;
        let refuse = |reason: HttpRefusal, status: u16, message: String| {
            counters.refused(reason);
            tracing::info!(peer = %r.peer, path = %r.path, reason = reason.as_str(), "http request refused: {message}");
            Response::error(status, message)
        };
        let Some(token) = r.bearer() else {
            return refuse(
                HttpRefusal::Unauthorized,
                401,
                "send `Authorization: Bearer TOKEN` with a token made by `reflex keys gen --token`"
                    .into(),
            );
        };
        let Some(holder) = self.tokens.holder(token) else {
            return refuse(HttpRefusal::Unauthorized, 401, "unknown token".into());
        };
        if holder == ADMIN {
            return refuse(
                HttpRefusal::Forbidden,
                403,
                "the admin token reloads; it sends no events".into(),
            );
        }
        if let Some(ct) = r.header("content-type") {
            if !ct.to_ascii_lowercase().starts_with("application/json") {
                return refuse(
                    HttpRefusal::Invalid,
                    415,
                    format!("Content-Type `{ct}`: send application/json"),
                );
            }
        }
        let events = match parse(&r.body, &holder, clock::now_ms()) {
            Ok(events) => events,
            Err(e @ IngestError::Reserved(_)) => {
                return refuse(HttpRefusal::ReservedTag, 403, e.to_string());
            }
            Err(e @ IngestError::Source { .. }) => {
                return refuse(HttpRefusal::Forbidden, 403, e.to_string());
            }
            Err(e) => return refuse(HttpRefusal::Invalid, 422, e.to_string()),
        };
        let mut accepted = 0u64;
        for e in &events {
            if let Err(reason) = self.inject.send(e) {
                counters
                    .events
                    .fetch_add(accepted, std::sync::atomic::Ordering::Relaxed);
                return refuse(
                    reason,
                    503,
                    format!(
                        "the Manager's queue is full: {accepted} of {} events taken; retry the rest",
                        events.len()
                    ),
                );
            }
            accepted += 1;
        }
        counters
            .events
            .fetch_add(accepted, std::sync::atomic::Ordering::Relaxed);
        Response::json(202, &serde_json::json!({ "accepted": accepted }))
    }
}
