//! `reflex_core::wire::decode` on arbitrary bytes: never panics, and whatever decodes
//! re-encodes to bytes that decode to the same envelope encoding again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflex_core::wire::{self, MAX_ENVELOPE_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = wire::decode(data) else {
        return;
    };
    assert!(decoded.signed_len <= data.len());
    let mut first = [0u8; MAX_ENVELOPE_LEN];
    let Ok(n) = wire::encode(&decoded.envelope, &mut first) else {
        return;
    };
    let again = wire::decode(&first[..n]).expect("an encoded envelope decodes");
    let mut second = [0u8; MAX_ENVELOPE_LEN];
    let m = wire::encode(&again.envelope, &mut second).expect("a decoded envelope encodes");
    assert_eq!(&first[..n], &second[..m]);
});
