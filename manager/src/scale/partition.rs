//! Which partition a source belongs to: `fnv1a32(source) mod N`, the hash NATS uses for its
//! `{{partition(N,1)}}` subject mapping, so a server-side mapping of `reflex.in.<source>`
//! would put every source where `reflex ingest` puts it.

/// 32-bit FNV-1a of `bytes`.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The partition of `source` among `partitions` (at least 1).
pub fn of(source: &str, partitions: u32) -> u32 {
    fnv1a32(source.as_bytes()) % partitions.max(1)
}

/// 64-bit FNV-1a of `bytes`, for digests and derived ids.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_the_published_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn every_source_lands_in_range() {
        for n in [1, 2, 4, 8, 64] {
            for i in 0..1000 {
                assert!(of(&format!("host-{i}"), n) < n);
            }
        }
        assert_eq!(of("web-1", 0), 0);
    }
}
