//! Device tags: HMAC-SHA256 truncated to [`MAC_LEN`] bytes.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{KEY_LEN, MAC_LEN};

type HmacSha256 = Hmac<Sha256>;

/// A device's HMAC-SHA256 key, shared by the device and the Manager. `Debug` does not show it.
///
/// ```
/// use reflex_core::auth::{MacKey, MAC_LEN};
/// let key = MacKey::from_bytes([1; 32]);
/// let tag = key.tag(b"signed part");
/// assert_eq!(tag.len(), MAC_LEN);
/// assert!(key.verify(b"signed part", &tag));
/// assert!(!key.verify(b"signed part!", &tag));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey([u8; KEY_LEN]);

impl MacKey {
    /// A key from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> MacKey {
        MacKey(bytes)
    }

    /// The key's bytes (to write it to a key file).
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn hmac(&self, data: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length: a 32-byte key cannot be refused.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(data);
        mac
    }

    /// The tag of `data`: the first [`MAC_LEN`] bytes of HMAC-SHA256.
    pub fn tag(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let full = self.hmac(data).finalize().into_bytes();
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&full[..MAC_LEN]);
        tag
    }

    /// Whether `tag` is the tag of `data`, compared in constant time. A tag of any other length
    /// than [`MAC_LEN`] is refused.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        tag.len() == MAC_LEN && self.hmac(data).verify_truncated_left(tag).is_ok()
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2_truncated() {
        // HMAC-SHA256("Jefe", "what do ya want for nothing?"), with the key padded by HMAC
        // itself: our keys are always 32 bytes, so compare through the same construction.
        let mut key = [0u8; KEY_LEN];
        key[..4].copy_from_slice(b"Jefe");
        let tag = MacKey::from_bytes(key).tag(b"what do ya want for nothing?");
        // HMAC pads short keys with zeros to the block size, so "Jefe" and "Jefe\0..." agree.
        assert_eq!(
            tag,
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7
            ]
        );
    }

    #[test]
    fn wrong_lengths_and_keys_are_refused() {
        let key = MacKey::from_bytes([3; KEY_LEN]);
        let tag = key.tag(b"x");
        assert!(key.verify(b"x", &tag));
        assert!(!key.verify(b"x", &tag[..8]));
        assert!(!key.verify(b"x", &[]));
        assert!(!MacKey::from_bytes([4; KEY_LEN]).verify(b"x", &tag));
        assert_eq!(format!("{key:?}"), "MacKey(..)");
    }
}
