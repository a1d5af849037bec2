//! TCP stream reassembly: segments in sequence order, retransmissions and overlaps dropped,
//! out-of-order segments held until the bytes before them arrive, holes (bytes never captured)
//! recorded where they are.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::packet::TcpSegment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the side that sent the SYN) to the server.
    ToServer,
    ToClient,
}

impl Direction {
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ToServer => "->",
            Direction::ToClient => "<-",
        }
    }
}

/// The bytes one side sent, in order.
#[derive(Debug, Clone, Default)]
pub struct HalfStream {
    pub data: Vec<u8>,
    /// `(offset, time)`: when the bytes from `offset` on arrived.
    pub times: Vec<(usize, f64)>,
    /// `(offset, missing)`: `missing` bytes were never captured before `offset`.
    pub holes: Vec<(usize, u64)>,
    /// Segments whose bytes had all been seen already.
    pub retransmissions: usize,
}

impl HalfStream {
    /// When the byte at `offset` arrived.
    pub fn time_at(&self, offset: usize) -> f64 {
        match self.times.partition_point(|(o, _)| *o <= offset) {
            0 => self.times.first().map_or(0.0, |t| t.1),
            i => self.times[i - 1].1,
        }
    }

    /// Where the next hole after `offset` is, if any.
    pub fn next_hole(&self, offset: usize) -> Option<usize> {
        self.holes.iter().map(|h| h.0).find(|&h| h > offset)
    }
}

/// One TCP connection.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Order of the connection's first packet in the capture, from 0.
    pub id: usize,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub start: f64,
    /// Both SYNs were captured: both directions are there from their first byte.
    pub from_start: bool,
    pub to_server: HalfStream,
    pub to_client: HalfStream,
}

impl Stream {
    pub fn half(&self, d: Direction) -> &HalfStream {
        match d {
            Direction::ToServer => &self.to_server,
            Direction::ToClient => &self.to_client,
        }
    }
}

#[derive(Debug, Default)]
struct Half {
    base: Option<u32>,
    /// The SYN was captured: the data starts at the connection's first byte.
    syn: bool,
    /// Relative offset of the next byte expected.
    next: u64,
    pending: BTreeMap<u64, (Vec<u8>, f64)>,
    out: HalfStream,
}

impl Half {
    fn add(&mut self, seg: &TcpSegment) {
        if seg.syn {
            self.base = Some(seg.seq.wrapping_add(1));
            self.syn = true;
        }
        if seg.payload.is_empty() {
            return;
        }
        let base = *self.base.get_or_insert(seg.seq);
        let start = seg.seq.wrapping_add(u32::from(seg.syn)).wrapping_sub(base) as u64;
        // Segments more than 2 GiB behind are old retransmissions across a wrap: drop them.
        if start > (1 << 31) && self.next < (1 << 31) {
            self.out.retransmissions += 1;
            return;
        }
        let end = start + seg.payload.len() as u64;
        if end <= self.next {
            self.out.retransmissions += 1;
            return;
        }
        let keep = self
            .pending
            .get(&start)
            .is_none_or(|(d, _)| d.len() < seg.payload.len());
        if keep {
            self.pending.insert(start, (seg.payload.clone(), seg.ts));
        }
        self.drain(false);
    }

    /// Delivers what is contiguous; at the end (`force`), jumps holes too.
    fn drain(&mut self, force: bool) {
        while let Some((&start, _)) = self.pending.first_key_value() {
            if start > self.next {
                if !force {
                    break;
                }
                self.out
                    .holes
                    .push((self.out.data.len(), start - self.next));
                self.next = start;
            }
            let (data, ts) = self.pending.pop_first().map(|(_, v)| v).expect("non-empty");
            let end = start + data.len() as u64;
            if end <= self.next {
                self.out.retransmissions += 1;
                continue;
            }
            let skip = (self.next - start) as usize;
            self.out.times.push((self.out.data.len(), ts));
            self.out.data.extend_from_slice(&data[skip..]);
            self.next = end;
        }
    }
}

#[derive(Debug)]
struct Flow {
    id: usize,
    client: SocketAddr,
    server: SocketAddr,
    start: f64,
    to_server: Half,
    to_client: Half,
    closed: bool,
}

/// Collects segments into streams.
#[derive(Debug, Default)]
pub struct Reassembler {
    flows: Vec<Flow>,
    by_key: HashMap<(SocketAddr, SocketAddr), usize>,
    /// Packets that held no TCP segment (other protocols, damaged headers).
    pub skipped: usize,
}

impl Reassembler {
    pub fn add(&mut self, seg: TcpSegment) {
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let existing = self.by_key.get(&key).copied();
        // A new SYN on a finished connection starts a new one (port reuse).
        let reuse = existing.is_some_and(|i| self.flows[i].closed && seg.syn);
        let i = match existing {
            Some(i) if !reuse => i,
            _ => {
                // The SYN's sender is the client; without a SYN, the side with the higher port.
                let (client, server) = if seg.syn || seg.src.port() > seg.dst.port() {
                    (seg.src, seg.dst)
                } else {
                    (seg.dst, seg.src)
                };
                let id = self.flows.len();
                self.flows.push(Flow {
                    id,
                    client,
                    server,
                    start: seg.ts,
                    to_server: Half::default(),
                    to_client: Half::default(),
                    closed: false,
                });
                self.by_key.insert(key, id);
                id
            }
        };
        let flow = &mut self.flows[i];
        if seg.fin || seg.rst {
            flow.closed = true;
        }
        if seg.src == flow.client {
            flow.to_server.add(&seg);
        } else {
            flow.to_client.add(&seg);
        }
    }

    /// The streams, in the order they started; segments still waiting are delivered after the
    /// holes before them.
    pub fn finish(self) -> Vec<Stream> {
        self.flows
            .into_iter()
            .map(|mut f| {
                f.to_server.drain(true);
                f.to_client.drain(true);
                Stream {
                    id: f.id,
                    client: f.client,
                    server: f.server,
                    start: f.start,
                    from_start: f.to_server.syn && f.to_client.syn,
                    to_server: f.to_server.out,
                    to_client: f.to_client.out,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: &str, dst: &str, seq: u32, syn: bool, payload: &[u8], ts: f64) -> TcpSegment {
        TcpSegment {
            ts,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq,
            syn,
            ack: !syn,
            fin: false,
            rst: false,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn out_of_order_retransmitted_and_overlapping_segments() {
        let c = "10.0.0.1:40000";
        let s = "10.0.0.2:21";
        let mut r = Reassembler::default();
        r.add(seg(c, s, 999, true, b"", 0.0));
        r.add(seg(c, s, 1006, false, b"world", 2.0));
        r.add(seg(c, s, 1000, false, b"hello ", 1.0));
        r.add(seg(c, s, 1000, false, b"hello ", 3.0));
        r.add(seg(c, s, 1009, false, b"ld!", 4.0));
        r.add(seg(s, c, u32::MAX - 1, false, b"abcd", 5.0));
        let streams = r.finish();
        assert_eq!(streams.len(), 1);
        let st = &streams[0];
        assert_eq!(st.client.to_string(), c);
        assert_eq!(st.to_server.data, b"hello world!");
        assert_eq!(st.to_server.retransmissions, 1);
        assert_eq!(st.to_server.time_at(7), 2.0);
        assert_eq!(st.to_client.data, b"abcd", "sequence numbers wrap");
    }

    #[test]
    fn holes_are_recorded_and_jumped_at_the_end() {
        let c = "10.0.0.1:40000";
        let s = "10.0.0.2:80";
        let mut r = Reassembler::default();
        r.add(seg(c, s, 0, true, b"", 0.0));
        r.add(seg(c, s, 1, false, b"GET ", 1.0));
        r.add(seg(c, s, 10, false, b"HTTP/1.0", 2.0));
        let st = &r.finish()[0];
        assert_eq!(st.to_server.data, b"GET HTTP/1.0");
        assert_eq!(st.to_server.holes, vec![(4, 5)]);
        assert_eq!(st.to_server.next_hole(0), Some(4));
    }
}
