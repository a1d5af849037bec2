//! Framing cost, old path against new, in one run: a stream of SMB messages fed to the framer
//! in small reads, and decodes with a large session memory. The old path (kept here only as
//! the baseline) copied the whole receive buffer on every attempt and cloned the session memory
//! (a map of every remembered value) on every decode; the new one ([`FrameBuf`], [`Conversation`]) splits frames off without a
//! copy and lends the memory with an undo journal. Prints bytes copied and time, as ratios.
//!
//! `cargo bench --bench framing`

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::{DecodeErrorKind, Entry, FrameBuf, Reader};
use honeyfarm_runtime::replay::{Conversation, Decoded, Script, Side};

const MAX: usize = 1 << 24;

/// The old `Conversation::next_message`: the buffer copied per attempt, the memory cloned per
/// decode (emulated by a clone of the conversation). Returns the message, counting the bytes
/// copied.
fn old_next(
    entry: &Entry,
    buf: &mut BytesMut,
    conv: &mut Conversation,
    copied: &mut usize,
) -> Option<Decoded> {
    if buf.is_empty() {
        return None;
    }
    *copied += buf.len() + conv.remembered();
    let _before = conv.clone();
    match conv.decode(entry, Bytes::copy_from_slice(buf), true) {
        Ok(d) => {
            buf.advance(d.bytes.len().max(1));
            Some(d)
        }
        Err(e) if matches!(e.kind, DecodeErrorKind::Incomplete { .. }) => None,
        Err(e) => panic!("old path: {e}"),
    }
}

/// Frames `stream` fed in reads of `read` bytes the old way: (messages, bytes copied, time).
/// The messages are kept, as the farm keeps them for a handoff.
fn old_run(entry: &Entry, stream: &[u8], read: usize) -> (usize, usize, Duration) {
    let t = Instant::now();
    let (mut buf, mut conv, mut copied) = (BytesMut::new(), Conversation::new(), 0);
    let mut kept = Vec::new();
    for chunk in stream.chunks(read) {
        buf.extend_from_slice(chunk);
        while let Some(d) = old_next(entry, &mut buf, &mut conv, &mut copied) {
            kept.push(d);
        }
    }
    (kept.len(), copied, t.elapsed())
}

/// The same through the framing path the farm uses.
fn new_run(entry: &Entry, stream: &[u8], read: usize) -> (usize, usize, Duration) {
    let t = Instant::now();
    let (mut buf, mut conv) = (FrameBuf::new(MAX), Conversation::new());
    let mut kept = Vec::new();
    for chunk in stream.chunks(read) {
        buf.extend_from_slice(chunk);
        while let Some(d) = conv.next_message(entry, &mut buf, true).expect("new path") {
            kept.push(d);
        }
    }
    (kept.len(), buf.copied(), t.elapsed())
}

/// Decodes `msg` `times` times with `entries` remembered values of 100 bytes: the old way (the
/// memory cloned per decode: every entry's key and value handle) and the new (lent,
/// journalled). Returns the time of each.
fn memory_runs(entry: &Entry, msg: &Bytes, entries: usize, times: usize) -> [Duration; 2] {
    let mut seed = Reader::new(Bytes::new());
    for i in 0..entries {
        seed.remember(b"bench", format!("{i}").as_bytes(), &[7u8; 100]);
    }
    let base = seed.take_memory();
    let t = Instant::now();
    let mut memory = base.clone();
    for _ in 0..times {
        let mut r = Reader::new(msg.clone());
        r.set_memory(memory.clone());
        (entry.decode)(&mut r).expect("decodes");
        memory = r.take_memory();
    }
    let old = t.elapsed();
    let t = Instant::now();
    let mut memory = base;
    for _ in 0..times {
        memory.begin();
        let mut r = Reader::new(msg.clone());
        r.set_memory(std::mem::take(&mut memory));
        (entry.decode)(&mut r).expect("decodes");
        memory = r.take_memory();
        memory.commit();
    }
    [old, t.elapsed()]
}

fn report(what: &str, old: (usize, usize, Duration), new: (usize, usize, Duration)) {
    assert_eq!(old.0, new.0, "{what}: both paths frame the same messages");
    println!(
        "{what}: {} messages; bytes copied old {} new {} ({:.4}x); time old {:.2?} new {:.2?} ({:.3}x)",
        old.0,
        old.1,
        new.1,
        new.1 as f64 / old.1.max(1) as f64,
        old.2,
        new.2,
        new.2.as_secs_f64() / old.2.as_secs_f64()
    );
}

fn main() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/scripts/samba-enumdomusers.json");
    let script = Script::load(&path, &|n| REGISTRY.iter().find(|e| e.name == n))
        .expect("the shipped script");
    let entry = script.service.client;
    let requests: Vec<Bytes> = script
        .messages
        .iter()
        .filter(|m| m.side == Side::Client)
        .map(|m| m.bytes.clone())
        .collect();

    // 1 MiB of the script's requests, back to back.
    let mut small = Vec::new();
    while small.len() < 1 << 20 {
        for r in &requests {
            small.extend_from_slice(r);
        }
    }
    // 1 MiB in large messages: NetBIOS frames of 256 KiB holding SMB2 (kept as bytes).
    let mut large = Vec::new();
    for _ in 0..4 {
        let len = (256 << 10) - 4;
        large.extend_from_slice(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        large.extend_from_slice(b"\xfeSMB");
        large.resize(large.len() + len - 4, 0);
    }
    for read in [64, 1460] {
        report(
            &format!(
                "{} KiB of small messages, {read}-byte reads",
                small.len() >> 10
            ),
            old_run(entry, &small, read),
            new_run(entry, &small, read),
        );
        report(
            &format!(
                "{} KiB of 256 KiB messages, {read}-byte reads",
                large.len() >> 10
            ),
            old_run(entry, &large, read),
            new_run(entry, &large, read),
        );
    }
    let [old, new] = memory_runs(entry, &requests[0], 10_000, 200);
    println!(
        "200 decodes with 10,000 values remembered (1 MiB): time old {old:.2?} new {new:.2?} ({:.4}x)",
        new.as_secs_f64() / old.as_secs_f64()
    );
}
