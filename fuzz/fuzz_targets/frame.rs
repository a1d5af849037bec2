//! Every service's decoders, both sides, through the farm's framing path: the first byte picks
//! the (service, side), the rest is the stream.
#![no_main]

use honeyfarm_fuzz::{frame_all, stacks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    let stacks = stacks();
    let (_, entry, to_server) = stacks[pick as usize % stacks.len()];
    frame_all(entry, to_server, stream);
});
