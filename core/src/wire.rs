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
pub const WIRE_VERSION: u8 = 2;
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

/// The [`ActionResult::code`] of an action an Actor refused without performing it.
pub const CODE_REFUSED: i32 = -1;
/// The [`ActionResult::code`] of an action an Actor could not start yet (every worker busy):
/// not an outcome. The Manager sends the action again, as it does an unanswered one.
pub const CODE_BUSY: i32 = -2;

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
    /// How many reactions separate the action from the first event of its chain: one more
    /// than the event whose rule made it. The result and any event the Actor fires for it
    /// carry it on, so a loop through Actors stops at [`crate::event::MAX_HOPS`] as a local one
    /// does.
    pub hops: u8,
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
            hops: 0,
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
    /// The action's [`Action::hops`], carried back: the result's event is that many hops
    /// from the first event of its chain.
    pub hops: u8,
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
            hops: 0,
        })
    }

    /// Sets the output text. A result is a report, so text over [`MAX_OUTPUT_LEN`] bytes is
    /// truncated at the last character boundary that fits rather than refused. Returns
    /// whether it was truncated.
    pub fn set_output(&mut self, output: &str) -> bool {
        self.output.clear();
        let kept = crate::text::clip(output, MAX_OUTPUT_LEN);
        // Cannot fail: the clipped text fits the capacity.
        let _ = self.output.push_str(kept);
        kept.len() < output.len()
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

/// Strategies for valid envelopes, shared by the wire and frame tests.
#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::event::MAX_FIELDS;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    /// Any value, strings up to `MAX_STR_LEN` bytes, floats of every kind but NaN (which
    /// would not compare equal to itself).
    pub fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
                .prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
            "[ -~]{0,64}".prop_map(|s| Value::str(&s).unwrap()),
            // Up to 16 chars of up to 4 bytes each: at most MAX_STR_LEN bytes.
            "\\PC{0,16}".prop_map(|s| Value::str(&s).unwrap()),
        ]
    }

    pub fn source() -> impl Strategy<Value = SourceId> {
        "[a-z0-9.-]{0,32}".prop_map(|s| make_source(&s).unwrap())
    }

    pub fn event() -> impl Strategy<Value = Event> {
        (
            "/[a-z/]{0,40}",
            source(),
            any::<u64>(),
            any::<u64>(),
            any::<u8>(),
            btree_map("[a-z_][a-z0-9_]{0,31}", value(), 0..=MAX_FIELDS),
        )
            .prop_map(|(tag, source, time, seq, hops, data)| {
                let mut e = Event::new(&tag, "").unwrap();
                e.source = source;
                e.time = time;
                e.seq = seq;
                e.hops = hops;
                for (name, value) in data {
                    e.push(&name, value).unwrap();
                }
                e
            })
    }

    pub fn action() -> impl Strategy<Value = Action> {
        (
            (
                any::<u64>(),
                source(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
            ),
            "[a-z0-9*?-]{0,64}",
            "[a-z.]{0,64}",
            // Few names, so repeated names (lists) are common.
            vec(("[a-c]{1,2}", value()), 0..=MAX_ARGS),
            any::<u8>(),
        )
            .prop_map(
                |((id, source, seq, time, expires), target, function, args, hops)| {
                    let mut a = Action::new(id, &function, &target).unwrap();
                    a.hops = hops;
                    a.source = source;
                    a.seq = seq;
                    a.time = time;
                    a.expires = expires;
                    for (name, value) in args {
                        a.push_arg(&name, value).unwrap();
                    }
                    a
                },
            )
    }

    pub fn result() -> impl Strategy<Value = ActionResult> {
        (
            (any::<u64>(), source(), any::<u64>(), any::<u64>()),
            "[a-z.]{0,64}",
            any::<bool>(),
            any::<i32>(),
            // Sometimes longer than MAX_OUTPUT_LEN, to exercise truncation.
            "\\PC{0,100}",
            any::<u8>(),
        )
            .prop_map(
                |((id, source, seq, time), function, ok, code, output, hops)| {
                    let mut r = ActionResult::new(id, &function, "", ok, code).unwrap();
                    r.hops = hops;
                    r.source = source;
                    r.seq = seq;
                    r.time = time;
                    r.set_output(&output);
                    r
                },
            )
    }

    pub fn heartbeat() -> impl Strategy<Value = Heartbeat> {
        (source(), any::<u64>(), any::<u64>()).prop_map(|(source, seq, time)| Heartbeat {
            source,
            seq,
            time,
        })
    }

    pub fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            event().prop_map(Body::Event),
            action().prop_map(Body::Action),
            result().prop_map(Body::Result),
            heartbeat().prop_map(Body::Heartbeat),
        ]
    }

    /// Any valid envelope, with an authentication tag half of the time.
    pub fn envelope() -> impl Strategy<Value = Envelope> {
        (
            body(),
            prop_oneof![Just(Vec::new()), vec(any::<u8>(), 1..=MAX_AUTH_LEN)],
        )
            .prop_map(|(body, auth)| {
                let mut env = Envelope::new(body);
                env.set_auth(&auth).unwrap();
                env
            })
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::envelope;
    use super::*;
    use crate::event::{MAX_FIELDS, MAX_SOURCE_LEN};
    use crate::value::{MAX_NAME_LEN, MAX_STR_LEN};
    use proptest::prelude::*;

    fn sample() -> Envelope {
        let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
        e.push("load_avg", Value::Float(3.5)).unwrap();
        e.push("state", Value::str("up").unwrap()).unwrap();
        Envelope::new(e)
    }

    fn encoded(env: &Envelope) -> Vec<u8> {
        let mut buf = [0u8; MAX_ENVELOPE_LEN];
        let n = encode(env, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    /// The largest action the types can hold.
    fn largest_action() -> Action {
        let long = |n: usize| "x".repeat(n);
        let mut a = Action::new(u64::MAX, &long(MAX_KEY_LEN), &long(MAX_TARGET_LEN)).unwrap();
        a.source = make_source(&long(MAX_SOURCE_LEN)).unwrap();
        a.seq = u64::MAX;
        a.time = u64::MAX;
        a.expires = u64::MAX;
        a.hops = u8::MAX;
        for _ in 0..MAX_ARGS {
            a.push_arg(&long(MAX_NAME_LEN), Value::str(&long(MAX_STR_LEN)).unwrap())
                .unwrap();
        }
        a
    }

    #[test]
    fn layout_is_version_kind_body_auth() {
        let bytes = encoded(&sample());
        assert_eq!(bytes[0], WIRE_VERSION);
        assert_eq!(
            bytes[1], 0,
            "the body's discriminant is the kind; events are 0"
        );
        assert_eq!(
            *bytes.last().unwrap(),
            0,
            "an empty tag is one zero length byte"
        );
        let hb = encoded(&Envelope::new(Heartbeat::new("m").unwrap()));
        assert_eq!(hb[1], 3);
        // The tag is appended exactly as postcard encodes it.
        let mut env = sample();
        env.set_auth(&[0xAA; 10]).unwrap();
        let bytes = encoded(&env);
        let signed = decode(&bytes).unwrap().signed_len;
        let auth = postcard::to_allocvec(&env.auth).unwrap();
        assert_eq!(&bytes[signed..], &auth[..]);
    }

    #[test]
    fn every_envelope_fits() {
        let mut env = Envelope::new(largest_action());
        env.set_auth(&[0xFF; MAX_AUTH_LEN]).unwrap();
        let n = encoded(&env).len();
        assert!(n <= MAX_ENVELOPE_LEN, "{n}");
        eprintln!("largest envelope: {n} bytes");
        assert_eq!(decode(&encoded(&env)).unwrap().envelope, env);
    }

    #[test]
    fn sign_then_append() {
        let env = sample();
        let mut buf = [0u8; 256];
        let signed = encode_body(&env.body, &mut buf).unwrap();
        let tag = [7u8; 32]; // stands in for a signature over buf[..signed]
        let n = append_auth(&mut buf, signed, &tag).unwrap();
        let d = decode(&buf[..n]).unwrap();
        assert_eq!(d.signed_len, signed);
        assert_eq!(&d.envelope.auth[..], &tag[..]);
        assert_eq!(d.envelope.body, env.body);
    }

    #[test]
    fn version_mismatch() {
        let mut bytes = encoded(&sample());
        bytes[0] = WIRE_VERSION + 1;
        assert_eq!(
            decode(&bytes),
            Err(Error::UnsupportedVersion(WIRE_VERSION + 1))
        );
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = encoded(&sample());
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(Error::TrailingBytes));
    }

    #[test]
    fn oversized() {
        let mut bytes = encoded(&sample());
        bytes.resize(MAX_ENVELOPE_LEN + 1, 0);
        assert_eq!(decode(&bytes), Err(Error::EnvelopeTooLarge));
        // Encoding refuses to go past the limit even into a larger buffer.
        let mut buf = vec![0u8; MAX_ENVELOPE_LEN + 100];
        assert_eq!(
            append_auth(&mut buf, MAX_ENVELOPE_LEN, &[]),
            Err(Error::EnvelopeTooLarge)
        );
        assert_eq!(
            append_auth(&mut buf, MAX_ENVELOPE_LEN - 4, &[1; 8]),
            Err(Error::EnvelopeTooLarge)
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(decode(&[]), Err(Error::UnexpectedEnd));
        assert_eq!(decode(&[WIRE_VERSION]), Err(Error::UnexpectedEnd));
        let bytes = encoded(&sample());
        for n in 1..bytes.len() {
            assert_eq!(decode(&bytes[..n]), Err(Error::UnexpectedEnd), "cut at {n}");
        }
    }

    #[test]
    fn small_buffers_are_buffer_full() {
        let bytes = encoded(&sample());
        for n in 0..bytes.len() {
            let mut buf = vec![0u8; n];
            assert_eq!(
                encode(&sample(), &mut buf),
                Err(Error::BufferFull),
                "size {n}"
            );
        }
        let mut buf = vec![0u8; bytes.len()];
        assert_eq!(encode(&sample(), &mut buf), Ok(bytes.len()));
        assert_eq!(
            append_auth(&mut buf, bytes.len() + 1, &[]),
            Err(Error::BufferFull)
        );
    }

    #[test]
    fn bad_auth_and_bad_events_are_refused() {
        // A tag longer than MAX_AUTH_LEN.
        let env = sample();
        let mut buf = [0u8; 512];
        let signed = encode_body(&env.body, &mut buf).unwrap();
        assert_eq!(
            append_auth(&mut buf, signed, &[1; MAX_AUTH_LEN + 1]),
            Err(Error::AuthTooLong)
        );
        buf[signed] = (MAX_AUTH_LEN + 1) as u8;
        let n = signed + 1 + MAX_AUTH_LEN + 1;
        assert_eq!(decode(&buf[..n]), Err(Error::AuthTooLong));

        // Events are validated: tag shape and unique field names.
        let mut e = Event::new("/ok", "h").unwrap();
        e.tag = crate::event::Tag::try_from("no-slash").unwrap();
        assert_eq!(decode(&encoded(&Envelope::new(e))), Err(Error::TagInvalid));
        let mut e = Event::new("/ok", "h").unwrap();
        let field = Field {
            name: crate::value::name("x").unwrap(),
            value: Value::Int(1),
        };
        e.data.push(field.clone()).unwrap();
        e.data.push(field).unwrap();
        assert_eq!(decode(&encoded(&Envelope::new(e))), Err(Error::Malformed));
    }

    #[test]
    fn over_capacity_on_the_wire_is_malformed() {
        // A body claiming MAX_FIELDS + 1 fields decodes to an error, not an overflow.
        let mut e = Event::new("/t", "h").unwrap();
        for i in 0..MAX_FIELDS {
            e.push(&format!("f{i}"), Value::Int(0)).unwrap();
        }
        let mut bytes = encoded(&Envelope::new(e));
        let count_at = bytes
            .iter()
            .position(|&b| b == MAX_FIELDS as u8)
            .expect("field count byte");
        bytes[count_at] += 1;
        assert!(matches!(
            decode(&bytes),
            Err(Error::Malformed | Error::UnexpectedEnd)
        ));
    }

    #[test]
    fn action_helpers() {
        assert_eq!(
            Action::new(1, &"k".repeat(MAX_KEY_LEN + 1), "*").unwrap_err(),
            Error::TextTooLong
        );
        assert_eq!(
            Action::new(1, "k", &"t".repeat(MAX_TARGET_LEN + 1)).unwrap_err(),
            Error::TextTooLong
        );
        let mut a = Action::new(1, "reactions.actor.run", "*").unwrap();
        assert_eq!(
            a.push_arg(&"n".repeat(MAX_NAME_LEN + 1), Value::Int(0)),
            Err(Error::NameTooLong)
        );
        a.push_arg("cmd", Value::str("uptime").unwrap()).unwrap();
        for i in 0..MAX_ARGS - 1 {
            a.push_arg("argv", Value::Int(i as i64)).unwrap();
        }
        assert_eq!(a.push_arg("argv", Value::Int(0)), Err(Error::TooManyArgs));
        let argv: Vec<i64> = a
            .args_named("argv")
            .map(|v| match v {
                Value::Int(i) => *i,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(argv, (0..MAX_ARGS as i64 - 1).collect::<Vec<_>>());
        assert_eq!(a.arg("cmd"), Some(&Value::str("uptime").unwrap()));
        assert_eq!(a.arg("missing"), None);
        assert!(!a.is_expired(u64::MAX));
        a.expires = 100;
        assert!(!a.is_expired(99));
        assert!(a.is_expired(100));
    }

    #[test]
    fn result_output_is_truncated_at_a_char_boundary() {
        let mut r = ActionResult::new(1, "reactions.actor.run", "web-1", false, 2).unwrap();
        assert!(!r.set_output("short"));
        assert_eq!(r.output, "short");
        // 255 ASCII bytes then a 3-byte char: the char does not fit and is dropped whole.
        let text = format!("{}€", "a".repeat(MAX_OUTPUT_LEN - 1));
        assert!(r.set_output(&text));
        assert_eq!(r.output.len(), MAX_OUTPUT_LEN - 1);
        assert!(r.output.chars().all(|c| c == 'a'));
        assert_eq!(
            ActionResult::new(1, "k", &"s".repeat(MAX_SOURCE_LEN + 1), true, 0).unwrap_err(),
            Error::SourceTooLong
        );
    }

    #[test]
    fn body_accessors() {
        let mut a = Action::new(1, "k", "*").unwrap();
        a.source = make_source("manager").unwrap();
        a.seq = 9;
        a.time = 5;
        let b = Body::from(a);
        assert_eq!(
            (b.kind(), b.source(), b.seq(), b.time()),
            (Kind::Action, "manager", 9, 5)
        );
        assert_eq!(Kind::Heartbeat.to_string(), "heartbeat");
        let env = Envelope::new(sample().body);
        assert!(!env.is_authenticated());
    }

    proptest! {
        #[test]
        fn envelopes_round_trip(env in envelope()) {
            let mut buf = [0u8; MAX_ENVELOPE_LEN];
            let n = encode(&env, &mut buf).unwrap();
            let mut body_buf = [0u8; MAX_ENVELOPE_LEN];
            let signed = encode_body(&env.body, &mut body_buf).unwrap();
            prop_assert_eq!(&buf[..signed], &body_buf[..signed]);
            let d = decode(&buf[..n]).unwrap();
            prop_assert_eq!(d.signed_len, signed);
            prop_assert_eq!(d.envelope, env);
        }

        #[test]
        fn prefixes_are_truncated(env in envelope(), cut in any::<prop::sample::Index>()) {
            let bytes = encoded(&env);
            let n = cut.index(bytes.len());
            prop_assert_eq!(decode(&bytes[..n]), Err(Error::UnexpectedEnd));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2100)) {
            let _ = decode(&bytes);
            let mut versioned = bytes;
            versioned.insert(0, WIRE_VERSION);
            let _ = decode(&versioned);
        }

        #[test]
        fn damaged_envelopes_never_panic(
            env in envelope(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = encoded(&env);
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(d) = decode(&bytes) {
                if let Body::Event(e) = &d.envelope.body {
                    prop_assert!(e.validate().is_ok());
                }
            }
        }
    }
}
