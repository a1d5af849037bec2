//! Every generated decoder of the registry, alone (the units the framing units embed): the
//! first two bytes pick the message type, the rest is one message; a decoded message must
//! re-encode exactly.
#![no_main]

use bytes::Bytes;
use honeyfarm_fuzz::assert_roundtrip;
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let entry = &REGISTRY[u16::from_le_bytes([data[0], data[1]]) as usize % REGISTRY.len()];
    let input = Bytes::copy_from_slice(&data[2..]);
    let mut r = Reader::new(input.clone());
    if let Ok(msg) = (entry.decode)(&mut r) {
        assert_roundtrip(entry, &msg, &input[..r.pos()]);
    }
});
