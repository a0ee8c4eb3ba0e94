//! What comes down the line: actions, decoded into a compact view of
//! [`reflex_core::wire::Action`].
//!
//! [`reflex_core::wire::decode`] decodes any envelope into a [`reflex_core::wire::Body`] of
//! about 2 KiB, and serde's temporaries for the largest action put 10 to 15 KiB on the stack
//! of a Cortex-M: more than a 16 KiB device has. A device only ever acts on actions, with few
//! arguments, so it reads the same bytes into [`DeviceAction`]: the same fields in the same
//! order (postcard is not self-describing: the layout is the field order), with room for
//! [`MAX_DEVICE_ARGS`] arguments. The envelope around it is checked as `wire::decode` does:
//! version byte, the kind (the body's enum discriminant), the authentication tag, nothing
//! after it. The host tests check that every action [`reflex_core::wire::encode`] writes
//! decodes to the same fields here.

use reflex_core::Error;
use reflex_core::auth::MacKey;
use reflex_core::event::{Field, SourceId};
use reflex_core::value::Value;
use reflex_core::wire::{Auth, Key, Target, WIRE_VERSION};
use serde::Deserialize;

/// Most arguments of an action the device accepts; an action with more is
/// [`Error::Malformed`] (counted, not answered).
pub const MAX_DEVICE_ARGS: usize = 4;

/// The kind byte of an action envelope: [`reflex_core::wire::Body::Action`]'s discriminant.
const KIND_ACTION: u8 = 1;

/// An action as the device holds it: [`reflex_core::wire::Action`] with at most
/// [`MAX_DEVICE_ARGS`] arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeviceAction {
    /// Action id; the result carries it back.
    pub id: u64,
    /// The issuer.
    pub source: SourceId,
    /// Per-issuer sequence number.
    pub seq: u64,
    /// When it was issued, in milliseconds since the Unix epoch.
    pub time: u64,
    /// When it expires (0: never). The device has no wall clock: the gateway drops expired
    /// actions before they reach the line, and a device with a key also refuses one that
    /// expired by the Manager's time it learnt from the last authentic action.
    pub expires: u64,
    /// Which devices perform it: this device's id, or `*`.
    pub target: Target,
    /// The function key, such as `reactions.device.set_pin`.
    pub function: Key,
    /// Named arguments.
    pub args: heapless::Vec<Field, MAX_DEVICE_ARGS>,
    /// Hops from the first event of its chain; the result carries it back.
    pub hops: u8,
}

impl DeviceAction {
    /// The first value of the argument `name`, if present.
    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.args.iter().find(|f| f.name == name).map(|f| &f.value)
    }
}

/// What one intact frame held.
// The crate does not allocate, so the action is not boxed; the value lives on the stack of one
// call only.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Downlink {
    /// An action (for this device or not: the caller checks the target).
    Action(DeviceAction),
    /// A valid envelope version holding another kind (event, result, heartbeat), not read
    /// further: the device has nothing to do with it.
    Other,
}

/// Reads one deframed envelope.
///
/// Errors: [`Error::UnexpectedEnd`], [`Error::UnsupportedVersion`], [`Error::Malformed`]
/// (including an action over the device's capacities), [`Error::AuthTooLong`],
/// [`Error::TrailingBytes`].
pub fn decode(bytes: &[u8]) -> Result<Downlink, Error> {
    decode_tagged(bytes).map(|(d, _)| d)
}

/// Where an envelope's authentication tag is: the tag covers `bytes[..signed_len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tagged<'b> {
    /// Length of the signed part: the version byte and the body.
    pub signed_len: usize,
    /// The tag (empty when the envelope is unauthenticated).
    pub tag: &'b [u8],
}

impl Tagged<'_> {
    /// Whether the tag is `key`'s HMAC of `bytes`' signed part (`bytes`: what
    /// [`decode_tagged`] read).
    pub fn verify(&self, key: &MacKey, bytes: &[u8]) -> bool {
        bytes
            .get(..self.signed_len)
            .is_some_and(|signed| key.verify(signed, self.tag))
    }
}

/// Reads one deframed envelope as [`decode`] does, and says where its tag is. An envelope of
/// another kind than an action is not read past its kind: its tag is reported empty.
///
/// Errors: as [`decode`].
pub fn decode_tagged(bytes: &[u8]) -> Result<(Downlink, Tagged<'_>), Error> {
    let (&version, payload) = bytes.split_first().ok_or(Error::UnexpectedEnd)?;
    if version != WIRE_VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    let (&kind, body) = payload.split_first().ok_or(Error::UnexpectedEnd)?;
    if kind != KIND_ACTION {
        return if kind <= 3 {
            let none = Tagged {
                signed_len: bytes.len(),
                tag: &[],
            };
            Ok((Downlink::Other, none))
        } else {
            Err(Error::Malformed)
        };
    }
    let (action, rest) = postcard::take_from_bytes::<DeviceAction>(body).map_err(de_error)?;
    let signed_len = bytes.len() - rest.len();
    let (tag, rest) = postcard::take_from_bytes::<&[u8]>(rest).map_err(de_error)?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes);
    }
    if tag.len() > Auth::new().capacity() {
        return Err(Error::AuthTooLong);
    }
    Ok((Downlink::Action(action), Tagged { signed_len, tag }))
}

fn de_error(e: postcard::Error) -> Error {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => Error::UnexpectedEnd,
        _ => Error::Malformed,
    }
}
