//! Host signatures: Ed25519 (RFC 8032), verified strictly.

use core::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::{KEY_LEN, SIGNATURE_LEN};

/// An Ed25519 secret key: the Manager's (it signs actions) or an agent's (it signs events,
/// results and heartbeats). Wiped from memory when dropped; `Debug` does not show it.
///
/// ```
/// use reflex_core::auth::SecretKey;
/// let secret = SecretKey::from_seed([1; 32]);
/// let sig = secret.sign(b"signed part");
/// assert!(secret.public().verify(b"signed part", &sig));
/// assert!(!secret.public().verify(b"signed part!", &sig));
/// ```
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// The key of a 32-byte seed (what a secret key file holds).
    pub fn from_seed(seed: [u8; KEY_LEN]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// The seed (to write the key to a file).
    pub fn seed(&self) -> [u8; KEY_LEN] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature of `data`.
    pub fn sign(&self, data: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(data).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// An Ed25519 public key: what a receiver verifies a host's signatures with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The key of its 32 bytes; `None` when they are not a valid curve point.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Option<PublicKey> {
        VerifyingKey::from_bytes(bytes).ok().map(PublicKey)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0.to_bytes()
    }

    /// Whether `sig` is this key's signature of `data`. Strict verification: a signature of
    /// another length, a malleable one or one made with a weak key is refused.
    pub fn verify(&self, data: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(sig) else {
            return false;
        };
        self.0.verify_strict(data, &sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.to_bytes()[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_1() {
        // RFC 8032, section 7.1, TEST 1 (empty message).
        let seed = hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let secret = SecretKey::from_seed(seed);
        assert_eq!(
            secret.public().to_bytes(),
            hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let sig = secret.sign(b"");
        assert_eq!(
            &sig[..32],
            &hex32("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155")
        );
        assert!(secret.public().verify(b"", &sig));
        assert!(!secret.public().verify(b"", &sig[..63]));
        assert_eq!(secret.seed(), seed);
        assert_eq!(format!("{secret:?}"), "SecretKey(..)");
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
