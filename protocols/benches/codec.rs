//! Decode + encode throughput of the generated codec of the production specs
//! (`netbios.Session`, carrying `smb.Envelope`) against a hand-written decoder and encoder of
//! the same bytes (NetBIOS session header + SMB1 header + Negotiate request), in one run; ends
//! with the ratio of their times (generated / hand-written), measured side by side.
//!
//! Both sides decode every field, keep the dialect names zero-copy, check the constants
//! (`\xffSMB`, word count 0, dialect format 2), that the byte count covers the dialects and
//! that each name ends in a NUL; both encode by recomputing the NetBIOS length and the byte
//! count, checking that names hold no NUL and that lengths fit. Both allocate twice (the
//! generated side a `Box` for `smb.Message`, as the spec's types have it, and the dialect
//! list; the hand-written side its dialect list, grown once). What the generated side does
//! beyond that: it goes through the spec's layers (`netbios.Session` switching on the packet
//! type, `smb.Envelope` on the SMB1/SMB2 signature, `smb.Block` on the command) with a depth
//! bound and length limits at each; it keeps the 7 reserved bits of the NetBIOS header and
//! the bytes after the block (none here), which the hand-written side drops; it checks on
//! encode that the signature is 8 bytes; and it notes `mid` for the session's memory
//! (`@remember(smb_mid, 0)`), which a standalone decode then drops unstored.
//!
//! `cargo bench -p honeyfarm-protocols --bench codec`; `CODEC_PROFILE=N` for a profiler run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use honeyfarm_protocols::netbios;
use honeyfarm_runtime::codec::Message;

/// The system allocator, counting allocations (both sides pay the same count's cost).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made by one call of `f`.
fn allocations(f: fn(&Bytes, &mut BytesMut), bytes: &Bytes) -> usize {
    let mut out = BytesMut::with_capacity(256);
    f(bytes, &mut out);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f(bytes, &mut out);
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn negotiate() -> Bytes {
    let mut smb = vec![0xff, b'S', b'M', b'B', 0x72, 0, 0, 0, 0, 0x18, 0x53, 0xc8];
    smb.extend_from_slice(&[0; 12]);
    smb.extend_from_slice(&[0xff, 0xff, 0xfe, 0xff, 0, 0, 0, 0]);
    let dialects: &[&[u8]] = &[
        b"PC NETWORK PROGRAM 1.0",
        b"LANMAN1.0",
        b"Windows for Workgroups 3.1a",
        b"LM1.2X002",
        b"LANMAN2.1",
        b"NT LM 0.12",
    ];
    let mut block = Vec::new();
    for d in dialects {
        block.push(2);
        block.extend_from_slice(d);
        block.push(0);
    }
    smb.push(0);
    smb.extend_from_slice(&(block.len() as u16).to_le_bytes());
    smb.extend_from_slice(&block);
    let mut framed = vec![0, 0, (smb.len() >> 8) as u8, smb.len() as u8];
    framed.extend_from_slice(&smb);
    framed.into()
}

/// What a careful hand-written decoder of the same message keeps: every header field,
/// zero-copy dialect names. It checks what the generated codec checks of this message (see the
/// module's comment for the little it does not).
#[derive(Debug)]
struct HandNegotiate {
    kind: u8,
    command: u8,
    status: u32,
    flags: u8,
    flags2: u16,
    pid_high: u16,
    signature: Bytes,
    reserved: u16,
    tid: u16,
    pid: u16,
    uid: u16,
    mid: u16,
    dialects: Vec<(u8, Bytes)>,
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn hand_decode(buf: &Bytes) -> Option<HandNegotiate> {
    let b = &buf[..];
    let kind = *b.first()?;
    let len = (usize::from(b[1] & 1) << 16) | usize::from(b[2]) << 8 | usize::from(b[3]);
    let smb = buf.get(4..4 + len)?;
    if smb.get(..4)? != b"\xffSMB" {
        return None;
    }
    let s = buf.slice(4..4 + len);
    let word_count = *smb.get(32)?;
    if word_count != 0 {
        return None;
    }
    let byte_count = usize::from(le16(smb, 33)?);
    let mut at = 35;
    let end = at + byte_count;
    if end != smb.len() {
        return None;
    }
    let mut dialects = Vec::new();
    while at < end {
        let format = smb[at];
        if format != 2 {
            return None;
        }
        let nul = smb[at + 1..end].iter().position(|&c| c == 0)?;
        dialects.push((format, s.slice(at + 1..at + 1 + nul)));
        at += nul + 2;
    }
    Some(HandNegotiate {
        kind,
        command: smb[4],
        status: u32::from_le_bytes(smb[5..9].try_into().ok()?),
        flags: smb[9],
        flags2: le16(smb, 10)?,
        pid_high: le16(smb, 12)?,
        signature: s.slice(14..22),
        reserved: le16(smb, 22)?,
        tid: le16(smb, 24)?,
        pid: le16(smb, 26)?,
        uid: le16(smb, 28)?,
        mid: le16(smb, 30)?,
        dialects,
    })
}

/// Encodes `m`; `None` when it cannot be encoded as it is (a name holding its terminator, a
/// length past its field).
fn hand_encode(m: &HandNegotiate, out: &mut BytesMut) -> Option<()> {
    let start = out.len();
    out.put_u8(m.kind);
    out.put_bytes(0, 3);
    out.put_slice(b"\xffSMB");
    out.put_u8(m.command);
    out.put_u32_le(m.status);
    out.put_u8(m.flags);
    out.put_u16_le(m.flags2);
    out.put_u16_le(m.pid_high);
    out.put_slice(&m.signature);
    out.put_u16_le(m.reserved);
    out.put_u16_le(m.tid);
    out.put_u16_le(m.pid);
    out.put_u16_le(m.uid);
    out.put_u16_le(m.mid);
    out.put_u8(0);
    let bc_at = out.len();
    out.put_u16_le(0);
    for (format, name) in &m.dialects {
        if name.contains(&0) {
            return None;
        }
        out.put_u8(*format);
        out.put_slice(name);
        out.put_u8(0);
    }
    let bc = u16::try_from(out.len() - bc_at - 2).ok()?;
    out[bc_at..bc_at + 2].copy_from_slice(&bc.to_le_bytes());
    let len = out.len() - start - 4;
    if len > 0x1_ffff {
        return None;
    }
    out[start + 1] = (len >> 16) as u8;
    out[start + 2] = (len >> 8) as u8;
    out[start + 3] = len as u8;
    Some(())
}

fn bench(c: &mut Criterion) {
    let bytes = negotiate();
    if let Some(n) = profile_calls() {
        profile(&bytes, n);
        return;
    }
    // Both sides must produce the input again, or the comparison means nothing.
    let (pkt, _) = netbios::Session::decode(bytes.clone()).unwrap();
    assert_eq!(pkt.to_bytes().unwrap(), bytes);
    let hand = hand_decode(&bytes).unwrap();
    let mut out = BytesMut::new();
    hand_encode(&hand, &mut out).unwrap();
    assert_eq!(&out[..], &bytes[..]);

    let mut g = c.benchmark_group("netbios+smb1 negotiate, decode+encode");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("generated (netbios.Session)", |b| {
        let mut out = BytesMut::with_capacity(256);
        b.iter(|| generated(&bytes, &mut out))
    });
    g.bench_function("hand-written", |b| {
        let mut out = BytesMut::with_capacity(256);
        b.iter(|| hand_written(&bytes, &mut out))
    });
    g.finish();
    print_ratio(&bytes);
}

fn generated(bytes: &Bytes, out: &mut BytesMut) {
    out.clear();
    let (p, _) = netbios::Session::decode(black_box(bytes.clone())).unwrap();
    p.encode(out).unwrap();
    black_box(&out);
}

fn hand_written(bytes: &Bytes, out: &mut BytesMut) {
    out.clear();
    let m = hand_decode(black_box(bytes)).unwrap();
    hand_encode(&m, out).unwrap();
    black_box(&out);
}

/// Times both in alternating rounds (so that both see the same machine load) and prints the
/// median ratio of their times.
fn print_ratio(bytes: &Bytes) {
    const ROUNDS: usize = 31;
    const ITERS: u32 = 20_000;
    let mut out = BytesMut::with_capacity(256);
    let mut time = |f: fn(&Bytes, &mut BytesMut)| {
        let start = std::time::Instant::now();
        for _ in 0..ITERS {
            f(bytes, &mut out);
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(ITERS)
    };
    let mut ratios = Vec::with_capacity(ROUNDS);
    let (mut gen_ns, mut hand_ns) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let g = time(generated);
        let h = time(hand_written);
        ratios.push(g / h);
        gen_ns.push(g);
        hand_ns.push(h);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "netbios+smb1 negotiate, decode+encode: generated {:.0} ns, hand-written {:.0} ns, \
         ratio generated/hand-written {:.2}x (median of {ROUNDS} alternating rounds)",
        median(&mut gen_ns),
        median(&mut hand_ns),
        median(&mut ratios)
    );
    println!(
        "allocations per decode+encode: generated {}, hand-written {}",
        allocations(generated, bytes),
        allocations(hand_written, bytes)
    );
}

/// `CODEC_PROFILE=N`: only call each side `N` times, for an instruction profiler (`valgrind
/// --tool=callgrind --toggle-collect='codec::generated'`), which the timed rounds would keep
/// busy for minutes.
fn profile_calls() -> Option<u32> {
    std::env::var("CODEC_PROFILE").ok()?.parse().ok()
}

fn profile(bytes: &Bytes, n: u32) {
    let mut out = BytesMut::with_capacity(256);
    // Called through pointers, so that each side stays a function of its own in the profile.
    let sides: [fn(&Bytes, &mut BytesMut); 2] = black_box([generated, hand_written]);
    for f in sides {
        for _ in 0..n {
            f(bytes, &mut out);
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
