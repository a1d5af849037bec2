//! The replay matcher and rewriter with the shipped script: the input is an attacker's side
//! of a dialog (the seed is the script's own client messages); every message that follows the
//! script is answered, and every rewritten reply must decode on the attacker's side.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use honeyfarm_fuzz::{shipped_script, MAX_MESSAGE};
use honeyfarm_runtime::codec::FrameBuf;
use honeyfarm_runtime::replay::{Audience, Candidate, Conversation, Script};
use libfuzzer_sys::fuzz_target;

static SCRIPT: OnceLock<Arc<Script>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let script = SCRIPT.get_or_init(|| Arc::new(shipped_script()));
    let svc = &script.service;
    let audience = Audience {
        telescope: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 77)),
        attacker: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    };
    let mut conv = Conversation::new();
    let mut buf = FrameBuf::new(MAX_MESSAGE);
    buf.extend_from_slice(data);
    let mut cand = Candidate::new(script.clone());
    while let Ok(Some(d)) = conv.next_message(svc.client, &mut buf, true) {
        if cand.accept(d.msg.as_ref()).is_err() {
            break;
        }
        let Ok(step) = cand.serve(audience) else {
            break;
        };
        for (n, reply) in step.replies.into_iter().enumerate() {
            if let Err(e) = conv.decode(svc.server, reply.clone(), false) {
                panic!("rewritten reply {n} does not decode: {e}\n{:02x?}", &reply[..]);
            }
        }
    }
});
