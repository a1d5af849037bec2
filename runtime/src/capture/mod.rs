//! Reading recorded traffic: packets from pcap and pcapng files, and the TCP streams they
//! carry, reassembled per direction. Protocol-independent: what the streams hold is for the
//! codecs to say.

mod file;
mod packet;
mod reassembly;

pub use file::{read_packets, CaptureError, Packet};
pub use packet::{parse_tcp, TcpSegment};
pub use reassembly::{Direction, Reassembler, Stream};

/// Reads a capture and reassembles its TCP streams, in the order they started.
pub fn tcp_streams(path: &std::path::Path) -> Result<Vec<Stream>, CaptureError> {
    let mut r = Reassembler::default();
    for p in read_packets(path)? {
        if let Some(seg) = parse_tcp(&p) {
            r.add(seg);
        } else {
            r.skipped += 1;
        }
    }
    Ok(r.finish())
}
