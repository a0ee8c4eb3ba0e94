//! Message authentication: who may put what on the bus.
//!
//! Every envelope carries an authentication tag over its signed part (see [`crate::wire`]):
//! `[WIRE_VERSION][postcard(body)]`. Two kinds of tag exist, told apart by their length:
//!
//! * an **Ed25519 signature** ([`SIGNATURE_LEN`] bytes, feature `ed25519`): the Manager signs
//!   its actions, host agents sign their events, results and heartbeats. Verifying needs only
//!   the signer's public key, so no secret is shared;
//! * an **HMAC-SHA256 tag** truncated to [`MAC_LEN`] bytes ([`MacKey`]): devices tag what they
//!   send with a key they share with the Manager. A Cortex-M computes one in microseconds with
//!   a few hundred bytes of code, where an Ed25519 signature costs tens of kilobytes of flash
//!   and milliseconds of cycles.
//!
//! A [`Signer`] makes tags and a [`Verifier`] checks them; [`encode`] is the one encode path
//! for signed and unsigned envelopes, and [`verify`] checks a decoded one. Keys live in small
//! text files ([`keyfile`]); replays are refused with a per-source [`ReplayWindow`].
//!
//! ```
//! use reflex_core::auth::{self, MacKey, Signer, Verifier};
//! use reflex_core::wire::{self, Body, MAX_ENVELOPE_LEN};
//! use reflex_core::Event;
//!
//! let key = MacKey::from_bytes([7; 32]);
//! let body = Body::Event(Event::new("/sensor/temp", "node-7").unwrap());
//! let mut buf = [0u8; MAX_ENVELOPE_LEN];
//! let n = auth::encode(&body, Some(&Signer::Mac(key.clone())), &mut buf).unwrap();
//!
//! let decoded = wire::decode(&buf[..n]).unwrap();
//! assert!(auth::verify(&decoded, &buf[..n], &Verifier::Mac(key)).is_ok());
//! let other = Verifier::Mac(MacKey::from_bytes([8; 32]));
//! assert_eq!(auth::verify(&decoded, &buf[..n], &other), Err(auth::AuthError::BadTag));
//! ```

use core::fmt;

use crate::Error;
use crate::wire::{self, Auth, Body, Decoded};

pub mod keyfile;
mod mac;
mod replay;
#[cfg(feature = "ed25519")]
mod sign;

pub use keyfile::{KeyFile, KeyKind};
pub use mac::MacKey;
pub use replay::{REPLAY_WINDOW, Replay, ReplayWindow};
#[cfg(feature = "ed25519")]
pub use sign::{PublicKey, SecretKey};

/// Length of every key: an Ed25519 secret seed, an Ed25519 public key, an HMAC key.
pub const KEY_LEN: usize = 32;
/// Length of a device's tag: HMAC-SHA256 truncated to its first 16 bytes.
pub const MAC_LEN: usize = 16;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why an envelope's tag is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AuthError {
    /// The envelope carries no tag.
    Unauthenticated,
    /// The tag does not verify with the key: forged, tampered with, or made with another key.
    BadTag,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::Unauthenticated => "no authentication tag",
            AuthError::BadTag => "authentication tag does not verify",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AuthError {}

/// What a sender tags its envelopes with.
#[derive(Clone)]
pub enum Signer {
    /// A device's shared HMAC key.
    Mac(MacKey),
    /// A host's Ed25519 secret key.
    #[cfg(feature = "ed25519")]
    Ed25519(SecretKey),
}

impl Signer {
    /// The tag for the signed part `signed`.
    pub fn tag(&self, signed: &[u8]) -> Auth {
        match self {
            Signer::Mac(k) => Auth::from_slice(&k.tag(signed)).unwrap_or_default(),
            #[cfg(feature = "ed25519")]
            Signer::Ed25519(k) => Auth::from_slice(&k.sign(signed)).unwrap_or_default(),
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Mac(k) => f.debug_tuple("Mac").field(k).finish(),
            #[cfg(feature = "ed25519")]
            Signer::Ed25519(k) => f.debug_tuple("Ed25519").field(k).finish(),
        }
    }
}

/// What a receiver checks a sender's tags with.
#[derive(Clone, Debug)]
pub enum Verifier {
    /// A device's shared HMAC key.
    Mac(MacKey),
    /// A host's Ed25519 public key.
    #[cfg(feature = "ed25519")]
    Ed25519(PublicKey),
}

impl Verifier {
    /// Checks `tag` over the signed part `signed`.
    ///
    /// Errors: [`AuthError::Unauthenticated`] for an empty tag, [`AuthError::BadTag`] for any
    /// other tag that does not verify (including one of the wrong length).
    pub fn check(&self, signed: &[u8], tag: &[u8]) -> Result<(), AuthError> {
        if tag.is_empty() {
            return Err(AuthError::Unauthenticated);
        }
        let ok = match self {
            Verifier::Mac(k) => k.verify(signed, tag),
            #[cfg(feature = "ed25519")]
            Verifier::Ed25519(k) => k.verify(signed, tag),
        };
        if ok { Ok(()) } else { Err(AuthError::BadTag) }
    }
}

/// Encodes `body` into `buf`, tagged by `signer` (unauthenticated when `None`), and returns the
/// envelope's length. The same bytes go on ZeroMQ and, framed, on a serial line.
///
/// Errors: as [`wire::encode`].
pub fn encode(body: &Body, signer: Option<&Signer>, buf: &mut [u8]) -> Result<usize, Error> {
    let signed = wire::encode_body(body, buf)?;
    let tag = match signer {
        Some(s) => s.tag(&buf[..signed]),
        None => Auth::new(),
    };
    wire::append_auth(buf, signed, &tag)
}

/// Checks the tag of `decoded`, which [`wire::decode`] read from `bytes`, with `verifier`.
///
/// Errors: as [`Verifier::check`]; [`AuthError::BadTag`] too when `decoded` does not come from
/// `bytes`.
pub fn verify(decoded: &Decoded, bytes: &[u8], verifier: &Verifier) -> Result<(), AuthError> {
    let signed = bytes.get(..decoded.signed_len).ok_or(AuthError::BadTag)?;
    verifier.check(signed, &decoded.envelope.auth)
}

/// The first sequence number of a device after its `boot`-th boot: the boot count in the high
/// 32 bits. A device counts its messages up from there, so its sequence keeps increasing across
/// reboots (as the Manager's replay window requires) when it keeps the boot count in
/// non-volatile memory.
///
/// ```
/// assert_eq!(reflex_core::auth::boot_seq(3), 3 << 32);
/// ```
pub const fn boot_seq(boot: u32) -> u64 {
    (boot as u64) << 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;
    use crate::wire::{Heartbeat, MAX_AUTH_LEN, MAX_ENVELOPE_LEN};

    fn event_body() -> Body {
        let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
        e.push("load_avg", crate::Value::Float(2.5)).unwrap();
        Body::Event(e)
    }

    fn encoded(body: &Body, signer: Option<&Signer>) -> Vec<u8> {
        let mut buf = [0u8; MAX_ENVELOPE_LEN];
        let n = encode(body, signer, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn unsigned_encoding_is_the_wire_encoding() {
        let body = event_body();
        let mut buf = [0u8; MAX_ENVELOPE_LEN];
        let n = wire::encode(&wire::Envelope::new(body.clone()), &mut buf).unwrap();
        assert_eq!(encoded(&body, None), &buf[..n]);
        let d = wire::decode(&buf[..n]).unwrap();
        let v = Verifier::Mac(MacKey::from_bytes([1; 32]));
        assert_eq!(verify(&d, &buf[..n], &v), Err(AuthError::Unauthenticated));
    }

    #[test]
    fn a_flipped_byte_anywhere_fails() {
        let key = MacKey::from_bytes([9; 32]);
        let signer = Signer::Mac(key.clone());
        let v = Verifier::Mac(key);
        let bytes = encoded(&event_body(), Some(&signer));
        let d = wire::decode(&bytes).unwrap();
        assert_eq!(d.envelope.auth.len(), MAC_LEN);
        assert!(verify(&d, &bytes, &v).is_ok());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            if let Ok(d) = wire::decode(&bad) {
                assert!(verify(&d, &bad, &v).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn every_tag_fits() {
        let body = Body::Heartbeat(Heartbeat::new("node").unwrap());
        let bytes = encoded(&body, Some(&Signer::Mac(MacKey::from_bytes([0; 32]))));
        assert!(wire::decode(&bytes).is_ok());
        const { assert!(MAC_LEN <= MAX_AUTH_LEN && SIGNATURE_LEN <= MAX_AUTH_LEN) };
    }

    #[cfg(feature = "ed25519")]
    #[test]
    fn ed25519_envelopes() {
        let secret = SecretKey::from_seed([5; 32]);
        let public = secret.public();
        let bytes = encoded(&event_body(), Some(&Signer::Ed25519(secret)));
        let d = wire::decode(&bytes).unwrap();
        assert_eq!(d.envelope.auth.len(), SIGNATURE_LEN);
        assert!(verify(&d, &bytes, &Verifier::Ed25519(public.clone())).is_ok());
        let other = SecretKey::from_seed([6; 32]).public();
        assert_eq!(
            verify(&d, &bytes, &Verifier::Ed25519(other)),
            Err(AuthError::BadTag)
        );
        // A MAC where a signature is expected, and the other way round.
        let mac = MacKey::from_bytes([5; 32]);
        let bytes = encoded(&event_body(), Some(&Signer::Mac(mac.clone())));
        let d = wire::decode(&bytes).unwrap();
        assert_eq!(
            verify(&d, &bytes, &Verifier::Ed25519(public)),
            Err(AuthError::BadTag)
        );
        let bytes = encoded(
            &event_body(),
            Some(&Signer::Ed25519(SecretKey::from_seed([5; 32]))),
        );
        let d = wire::decode(&bytes).unwrap();
        assert_eq!(
            verify(&d, &bytes, &Verifier::Mac(mac)),
            Err(AuthError::BadTag)
        );
    }
}
