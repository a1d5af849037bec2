//! Decode + encode throughput over every NetBIOS/SMB1/DCE-RPC message of the corpus captures
//! (`tests/data/captures`, port 445 and 139), beside a hand-written decoder of the NetBIOS and
//! SMB1 headers over the same messages, in one run. Also writes the messages to
//! `target/smb-bench-messages.bin` (4-byte big-endian length before each) for
//! `scripts/bench_impacket.py`, which times impacket on them.
//!
//! `cargo bench -p honeyfarm-protocols --bench smb`

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use honeyfarm_protocols::netbios;
use honeyfarm_runtime::codec::Message;

fn corpus_messages() -> Vec<Bytes> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/captures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
    {
        let Ok(streams) = honeyfarm_runtime::capture::tcp_streams(f) else {
            continue;
        };
        for st in streams.iter().filter(|s| s.server.port() == 445) {
            for half in [&st.to_server.data, &st.to_client.data] {
                let mut at = 0;
                while at + 4 <= half.len() {
                    let len = (usize::from(half[at + 1]) << 16)
                        | (usize::from(half[at + 2]) << 8)
                        | usize::from(half[at + 3]);
                    if at + 4 + len > half.len() {
                        break;
                    }
                    let m = Bytes::copy_from_slice(&half[at..at + 4 + len]);
                    // Only SMB1 messages that round-trip (the malformed captures' messages are not
                    // throughput).
                    if m.get(4..8) == Some(b"\xffSMB") {
                        if let Ok((msg, used)) = netbios::DirectTcp::decode(m.clone()) {
                            if used == m.len() && msg.to_bytes().is_ok_and(|b| b == m) {
                                out.push(m);
                            }
                        }
                    }
                    at += 4 + len;
                }
            }
        }
    }
    out
}

/// The NetBIOS length and the SMB1 header, decoded and re-encoded by hand (the rest copied).
struct Header {
    length: u32,
    command: u8,
    status: u32,
    flags: u8,
    flags2: u16,
    pid_high: u16,
    signature: [u8; 8],
    tid: u16,
    pid: u16,
    uid: u16,
    mid: u16,
    rest: Bytes,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn hand_decode(m: &Bytes) -> Option<Header> {
    let b = &m[..];
    if b.len() < 36 || &b[4..8] != b"\xffSMB" {
        return None;
    }
    Some(Header {
        length: u32::from_be_bytes([0, b[1], b[2], b[3]]),
        command: b[8],
        status: u32::from_le_bytes(b[9..13].try_into().ok()?),
        flags: b[13],
        flags2: le16(b, 14),
        pid_high: le16(b, 16),
        signature: b[18..26].try_into().ok()?,
        tid: le16(b, 28),
        pid: le16(b, 30),
        uid: le16(b, 32),
        mid: le16(b, 34),
        rest: m.slice(36..),
    })
}

fn hand_encode(h: &Header, out: &mut BytesMut) {
    out.put_u32(h.length);
    out.put_slice(b"\xffSMB");
    out.put_u8(h.command);
    out.put_u32_le(h.status);
    out.put_u8(h.flags);
    out.put_u16_le(h.flags2);
    out.put_u16_le(h.pid_high);
    out.put_slice(&h.signature);
    out.put_u16_le(0);
    out.put_u16_le(h.tid);
    out.put_u16_le(h.pid);
    out.put_u16_le(h.uid);
    out.put_u16_le(h.mid);
    out.put_slice(&h.rest);
}

fn bench(c: &mut Criterion) {
    let msgs = corpus_messages();
    let bytes: usize = msgs.iter().map(Bytes::len).sum();
    assert!(msgs.len() > 100, "{} messages", msgs.len());
    // For scripts/bench_impacket.py.
    let mut file = Vec::with_capacity(bytes + 4 * msgs.len());
    for m in &msgs {
        file.extend_from_slice(&(m.len() as u32).to_be_bytes());
        file.extend_from_slice(m);
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/smb-bench-messages.bin");
    std::fs::write(&path, file).unwrap();
    println!(
        "smb corpus: {} messages, {} bytes (written to {})",
        msgs.len(),
        bytes,
        path.display()
    );

    let mut g = c.benchmark_group("smb corpus, decode+encode every message");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function(
        format!("generated, all layers ({} messages)", msgs.len()),
        |b| {
            let mut out = BytesMut::with_capacity(1 << 16);
            b.iter(|| {
                for m in &msgs {
                    out.clear();
                    let (p, _) = netbios::DirectTcp::decode(black_box(m.clone())).unwrap();
                    p.encode(&mut out).unwrap();
                }
                black_box(&out);
            })
        },
    );
    g.bench_function("hand-written NetBIOS + SMB1 header", |b| {
        let mut out = BytesMut::with_capacity(1 << 16);
        b.iter(|| {
            for m in &msgs {
                out.clear();
                let h = hand_decode(black_box(m)).unwrap();
                hand_encode(&h, &mut out);
            }
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
