//! The wire envelope: the same bytes on ZeroMQ and, framed by [`crate::frame`], on a serial
//! line.
//!
//! # Layout
//!
//! ```text
//! [WIRE_VERSION] [postcard(Body)] [postcard(auth)]
//! \________ signed part ________/
//! ```
//!
//! The body's enum discriminant is the envelope's kind (0 event, 1 action, 2 result,
//! 3 heartbeat). The authentication tag (a signature or a MAC) covers the signed part: the
//! version byte and the encoded body. A signer calls [`encode_body`], signs `buf[..n]` and
//! completes the envelope with [`append_auth`]; a verifier calls [`decode`] and checks the tag
//! over `bytes[..signed_len]`. [`encode`] is those two steps with a tag already in hand, so
//! there is one encode path whether or not the envelope is signed.
//!
//! Decoding untrusted bytes never panics and never allocates: every string and list decodes
//! into a fixed-capacity container, and anything over capacity is an [`Error`].

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::event::{Event, Field, SourceId, make_source};
use crate::value::Value;

/// The envelope version this build speaks. Bumped whenever the layout or the meaning of a
/// field changes; a peer with another version is refused with
/// [`Error::UnsupportedVersion`].
pub const WIRE_VERSION: u8 = 1;
/// Most arguments in one action (a list argument counts once per element).
pub const MAX_ARGS: usize = 16;
/// Longest authentication tag, in bytes (room for an Ed25519 signature).
pub const MAX_AUTH_LEN: usize = 64;
/// Largest encoded envelope, in bytes, authentication tag included. Every envelope the types
/// below can hold fits; the limit bounds what a receiver accepts.
pub const MAX_ENVELOPE_LEN: usize = 2048;
/// Longest function key, in bytes, such as `reactions.actor.run`.
pub const MAX_KEY_LEN: usize = 64;
/// Longest action target, in bytes: an actor id glob, `*` for all actors.
pub const MAX_TARGET_LEN: usize = 64;
/// Longest result output text, in bytes. Longer output is truncated, not refused.
pub const MAX_OUTPUT_LEN: usize = 256;

/// A function key such as `reactions.actor.run`.
pub type Key = heapless::String<MAX_KEY_LEN>;
/// An action target: an actor id glob.
pub type Target = heapless::String<MAX_TARGET_LEN>;
/// A result's output text.
pub type Output = heapless::String<MAX_OUTPUT_LEN>;
/// An authentication tag.
pub type Auth = heapless::Vec<u8, MAX_AUTH_LEN>;

/// A reaction the Manager hands to Actors.
///
/// Arguments are named values. A list argument is carried as several fields with the same
/// name, in list order: [`Action::push_arg`] appends and never replaces, and
/// [`Action::args_named`] yields the elements back in order.
///
/// ```
/// use reflex_core::Value;
/// use reflex_core::wire::Action;
/// let mut a = Action::new(7, "reactions.actor.run", "web-*").unwrap();
/// a.push_arg("argv", Value::str("systemctl").unwrap()).unwrap();
/// a.push_arg("argv", Value::str("restart").unwrap()).unwrap();
/// a.push_arg("argv", Value::str("nginx").unwrap()).unwrap();
/// let argv: Vec<String> = a.args_named("argv").map(|v| v.to_string()).collect();
/// assert_eq!(argv, ["systemctl", "restart", "nginx"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Action id, unique per issuer; the result carries it back, and Actors remember recent
    /// ids so a retried action runs at most once.
    pub id: u64,
    /// The issuer: the Manager's id.
    pub source: SourceId,
    /// Per-issuer sequence number; Actors refuse one they have already seen (replay).
    pub seq: u64,
    /// When the action was issued, in milliseconds since the Unix epoch.
    pub time: u64,
    /// When the action expires, in milliseconds since the Unix epoch; 0 means never.
    pub expires: u64,
    /// Which Actors perform it: an actor id glob, `*` for all.
    pub target: Target,
    /// The function key, such as `reactions.actor.run`.
    pub function: Key,
    /// Named arguments, at most [`MAX_ARGS`]; a repeated name is a list, in order.
    pub args: heapless::Vec<Field, MAX_ARGS>,
}

impl Action {
    /// A new action with no arguments, an empty source and zero `seq`, `time` and `expires`.
    ///
    /// Errors: [`Error::TextTooLong`] when `function` exceeds [`MAX_KEY_LEN`] or `target`
    /// exceeds [`MAX_TARGET_LEN`].
    pub fn new(id: u64, function: &str, target: &str) -> Result<Action, Error> {
        Ok(Action {
            id,
            source: SourceId::new(),
            seq: 0,
            time: 0,
            expires: 0,
            target: text(target)?,
            function: text(function)?,
            args: heapless::Vec::new(),
        })
    }

    /// Appends an argument. A name already present is not replaced: repeated names carry a
    /// list, in the order they were pushed.
    ///
    /// Errors: [`Error::NameTooLong`], [`Error::TooManyArgs`].
    pub fn push_arg(&mut self, name: &str, value: Value) -> Result<(), Error> {
        let name = crate::value::name(name)?;
        self.args
            .push(Field { name, value })
            .map_err(|_| Error::TooManyArgs)
    }

    /// Every value of the argument `name`, in order: one for a scalar, each element for a
    /// list, none when absent.
    pub fn args_named(&self, name: &str) -> impl Iterator<Item = &Value> {
        self.args
            .iter()
            .filter(move |f| f.name == name)
            .map(|f| &f.value)
    }

    /// The first value of the argument `name`, if present.
    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.args_named(name).next()
    }

    /// Whether the action has expired at `now_ms` (milliseconds since the Unix epoch). An
    /// action with `expires == 0` never expires.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires != 0 && now_ms >= self.expires
    }
}

/// What an Actor reports after performing an [`Action`].
///
/// ```
/// use reflex_core::wire::{ActionResult, MAX_OUTPUT_LEN};
/// let mut r = ActionResult::new(7, "reactions.actor.run", "web-1", true, 0).unwrap();
/// let long = "é".repeat(MAX_OUTPUT_LEN); // two bytes per char
/// assert!(r.set_output(&long));          // truncated, not refused
/// assert_eq!(r.output.len(), MAX_OUTPUT_LEN);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The id of the action this reports on.
    pub id: u64,
    /// The Actor that performed it.
    pub source: SourceId,
    /// Per-Actor sequence number.
    pub seq: u64,
    /// When the action finished, in milliseconds since the Unix epoch.
    pub time: u64,
    /// The action's function key.
    pub function: Key,
    /// Whether the action succeeded.
    pub ok: bool,
    /// Exit status or function-specific code; 0 for success.
    pub code: i32,
    /// Output text, at most [`MAX_OUTPUT_LEN`] bytes; longer output is truncated.
    pub output: Output,
}

impl ActionResult {
    /// A result for action `id` performed by Actor `source`, with no output and zero `seq`
    /// and `time`.
    ///
    /// Errors: [`Error::TextTooLong`] when `function` exceeds [`MAX_KEY_LEN`],
    /// [`Error::SourceTooLong`] when `source` exceeds
    /// [`MAX_SOURCE_LEN`](crate::event::MAX_SOURCE_LEN).
    pub fn new(
        id: u64,
        function: &str,
        source: &str,
        ok: bool,
        code: i32,
    ) -> Result<ActionResult, Error> {
        Ok(ActionResult {
            id,
            source: make_source(source)?,
            seq: 0,
            time: 0,
            function: text(function)?,
            ok,
            code,
            output: Output::new(),
        })
    }

    /// Sets the output text. A result is a report, so text over [`MAX_OUTPUT_LEN`] bytes is
    /// truncated at the last character boundary that fits rather than refused. Returns
    /// whether it was truncated.
    pub fn set_output(&mut self, output: &str) -> bool {
        self.output.clear();
        let mut end = output.len().min(MAX_OUTPUT_LEN);
        while !output.is_char_boundary(end) {
            end -= 1;
        }
        // Cannot fail: `end` is at most the capacity and lies on a character boundary.
        let _ = self.output.push_str(output.get(..end).unwrap_or(""));
        end < output.len()
    }
}

/// A liveness signal from an agent, device or the Manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Who is alive.
    pub source: SourceId,
    /// Per-source sequence number.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch (or since boot on a device without a clock).
    pub time: u64,
}

impl Heartbeat {
    /// A heartbeat from `source` with zero `seq` and `time`.
    ///
    /// Errors: [`Error::SourceTooLong`].
    pub fn new(source: &str) -> Result<Heartbeat, Error> {
        Ok(Heartbeat {
            source: make_source(source)?,
            seq: 0,
            time: 0,
        })
    }
}

/// What an envelope carries. The variant order is the wire's kind discriminant: never
/// reorder; new kinds go at the end with a new [`WIRE_VERSION`].
// Variants differ in size and the crate does not allocate, so none of them is boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// An event from a beacon, a reaction or the CLI.
    Event(Event),
    /// An action for Actors.
    Action(Action),
    /// An Actor's report on an action.
    Result(ActionResult),
    /// A liveness signal.
    Heartbeat(Heartbeat),
}

/// The kind of a [`Body`], without its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// [`Body::Event`].
    Event,
    /// [`Body::Action`].
    Action,
    /// [`Body::Result`].
    Result,
    /// [`Body::Heartbeat`].
    Heartbeat,
}

impl Kind {
    /// The kind's lowercase name: `event`, `action`, `result` or `heartbeat`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Action => "action",
            Kind::Result => "result",
            Kind::Heartbeat => "heartbeat",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Body {
    /// The body's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Event(_) => Kind::Event,
            Body::Action(_) => Kind::Action,
            Body::Result(_) => Kind::Result,
            Body::Heartbeat(_) => Kind::Heartbeat,
        }
    }

    /// Who sent it: the event's source, the issuing Manager, the reporting Actor, or the
    /// heartbeat's source. Authentication keys are looked up by this id.
    pub fn source(&self) -> &str {
        match self {
            Body::Event(e) => &e.source,
            Body::Action(a) => &a.source,
            Body::Result(r) => &r.source,
            Body::Heartbeat(h) => &h.source,
        }
    }

    /// The sender's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Body::Event(e) => e.seq,
            Body::Action(a) => a.seq,
            Body::Result(r) => r.seq,
            Body::Heartbeat(h) => h.seq,
        }
    }

    /// When it was sent, in milliseconds.
    pub fn time(&self) -> u64 {
        match self {
            Body::Event(e) => e.time,
            Body::Action(a) => a.time,
            Body::Result(r) => r.time,
            Body::Heartbeat(h) => h.time,
        }
    }
}

impl From<Event> for Body {
    fn from(e: Event) -> Body {
        Body::Event(e)
    }
}

impl From<Action> for Body {
    fn from(a: Action) -> Body {
        Body::Action(a)
    }
}

impl From<ActionResult> for Body {
    fn from(r: ActionResult) -> Body {
        Body::Result(r)
    }
}

impl From<Heartbeat> for Body {
    fn from(h: Heartbeat) -> Body {
        Body::Heartbeat(h)
    }
}

/// A body and its authentication tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// What is carried.
    pub body: Body,
    /// Authentication tag (signature or MAC) over the signed part, `[WIRE_VERSION]` followed by
    /// the encoded body; empty when unauthenticated.
    pub auth: Auth,
}

impl Envelope {
    /// An unauthenticated envelope around `body`.
    pub fn new(body: impl Into<Body>) -> Envelope {
        Envelope {
            body: body.into(),
            auth: Auth::new(),
        }
    }

    /// Sets the authentication tag. Errors: [`Error::AuthTooLong`].
    pub fn set_auth(&mut self, auth: &[u8]) -> Result<(), Error> {
        self.auth = Auth::from_slice(auth).map_err(|_| Error::AuthTooLong)?;
        Ok(())
    }

    /// Whether the envelope carries an authentication tag. It says nothing about whether the
    /// tag is valid.
    pub fn is_authenticated(&self) -> bool {
        !self.auth.is_empty()
    }
}

/// A decoded envelope and where its signed part ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The envelope.
    pub envelope: Envelope,
    /// Length of the signed part: verify [`Envelope::auth`] over `bytes[..signed_len]`.
    pub signed_len: usize,
}

/// Encodes an envelope into `buf` and returns its length.
///
/// Errors: [`Error::BufferFull`] when `buf` is too small, [`Error::EnvelopeTooLarge`] when the
/// encoding would exceed [`MAX_ENVELOPE_LEN`].
///
/// ```
/// use reflex_core::{Event, Value};
/// use reflex_core::wire::{self, Envelope, MAX_ENVELOPE_LEN};
/// let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
/// e.push("load_avg", Value::Float(3.5)).unwrap();
/// let env = Envelope::new(e);
///
/// let mut buf = [0u8; MAX_ENVELOPE_LEN];
/// let n = wire::encode(&env, &mut buf).unwrap();
/// let decoded = wire::decode(&buf[..n]).unwrap();
/// assert_eq!(decoded.envelope, env);
/// assert_eq!(decoded.signed_len, n - 1); // an empty tag encodes as one length byte
/// ```
pub fn encode(env: &Envelope, buf: &mut [u8]) -> Result<usize, Error> {
    let signed_len = encode_body(&env.body, buf)?;
    append_auth(buf, signed_len, &env.auth)
}

/// Encodes the signed part, `[WIRE_VERSION][postcard(body)]`, into `buf` and returns its
/// length. Complete the envelope with [`append_auth`].
///
/// Errors: as [`encode`].
pub fn encode_body(body: &Body, buf: &mut [u8]) -> Result<usize, Error> {
    let (first, rest) = buf.split_first_mut().ok_or(Error::BufferFull)?;
    *first = WIRE_VERSION;
    let limit = rest.len().min(MAX_ENVELOPE_LEN - 1);
    let capped = rest.len() > limit;
    let used = postcard::to_slice(body, &mut rest[..limit])
        .map_err(|e| ser_error(e, capped))?
        .len();
    Ok(1 + used)
}

/// Appends the encoded authentication tag after the signed part in `buf[..signed_len]`, as
/// written by [`encode_body`], and returns the envelope's total length. Pass an empty `auth`
/// for an unauthenticated envelope.
///
/// Errors: [`Error::AuthTooLong`], [`Error::BufferFull`] (also when `signed_len` lies beyond
/// `buf`), [`Error::EnvelopeTooLarge`].
pub fn append_auth(buf: &mut [u8], signed_len: usize, auth: &[u8]) -> Result<usize, Error> {
    if auth.len() > MAX_AUTH_LEN {
        return Err(Error::AuthTooLong);
    }
    if signed_len > MAX_ENVELOPE_LEN {
        return Err(Error::EnvelopeTooLarge);
    }
    let rest = buf.get_mut(signed_len..).ok_or(Error::BufferFull)?;
    let limit = rest.len().min(MAX_ENVELOPE_LEN - signed_len);
    let capped = rest.len() > limit;
    let used = postcard::to_slice(auth, &mut rest[..limit])
        .map_err(|e| ser_error(e, capped))?
        .len();
    Ok(signed_len + used)
}

/// Decodes an envelope from untrusted bytes. Never panics and never allocates.
///
/// Errors: [`Error::UnexpectedEnd`] (empty or truncated), [`Error::EnvelopeTooLarge`] (over
/// [`MAX_ENVELOPE_LEN`]), [`Error::UnsupportedVersion`], [`Error::Malformed`] (including any
/// string or list over its capacity), [`Error::AuthTooLong`], [`Error::TrailingBytes`], and
/// whatever [`Event::validate`] reports for an event.
///
/// See [`encode`] for an example.
pub fn decode(bytes: &[u8]) -> Result<Decoded, Error> {
    let (&version, payload) = bytes.split_first().ok_or(Error::UnexpectedEnd)?;
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(Error::EnvelopeTooLarge);
    }
    if version != WIRE_VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    let (body, rest) = postcard::take_from_bytes::<Body>(payload).map_err(de_error)?;
    let signed_len = bytes.len() - rest.len();
    let (auth, rest) = postcard::take_from_bytes::<&[u8]>(rest).map_err(de_error)?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes);
    }
    let auth = Auth::from_slice(auth).map_err(|_| Error::AuthTooLong)?;
    if let Body::Event(event) = &body {
        event.validate()?;
    }
    Ok(Decoded {
        envelope: Envelope { body, auth },
        signed_len,
    })
}

fn text<const N: usize>(s: &str) -> Result<heapless::String<N>, Error> {
    let mut out = heapless::String::new();
    out.push_str(s).map_err(|_| Error::TextTooLong)?;
    Ok(out)
}

fn ser_error(e: postcard::Error, capped: bool) -> Error {
    match e {
        postcard::Error::SerializeBufferFull if capped => Error::EnvelopeTooLarge,
        postcard::Error::SerializeBufferFull => Error::BufferFull,
        _ => Error::Malformed,
    }
}

fn de_error(e: postcard::Error) -> Error {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => Error::UnexpectedEnd,
        _ => Error::Malformed,
    }
}
