//! Arbitrary bytes through the serial `Deframer`, and every frame that comes out through
//! `wire::decode`: never panics, and every delivered payload passed its CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflex_core::frame::{self, EnvelopeDeframer};
use reflex_core::wire;

fuzz_target!(|data: &[u8]| {
    let mut deframer = EnvelopeDeframer::new();
    let mut frames = 0u32;
    for &b in data {
        if let Some(result) = deframer.push(b) {
            frames += 1;
            if let Ok(payload) = result {
                let _ = wire::decode(payload);
                // A payload that came out re-frames and deframes to itself.
                let mut line = vec![0u8; frame::max_encoded_len(payload.len())];
                let payload = payload.to_vec();
                let n = frame::encode(&payload, &mut line).expect("the buffer fits");
                let mut check = EnvelopeDeframer::new();
                let mut out = None;
                for &c in &line[..n] {
                    if let Some(r) = check.push(c) {
                        out = Some(r.map(|p| p.to_vec()));
                    }
                }
                assert_eq!(out, Some(Ok(payload)));
            }
        }
    }
    let s = deframer.stats();
    let counted = s.frames_ok + s.crc_errors + s.cobs_errors + s.too_long + s.too_short;
    assert_eq!(counted, frames);
});
