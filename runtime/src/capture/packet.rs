//! From a link-layer packet to a TCP segment (Ethernet, VLAN, Linux cooked, raw IP, BSD
//! loopback; IPv4 and IPv6).

use std::net::{IpAddr, SocketAddr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use super::file::Packet;

/// The TCP part of one packet.
#[derive(Debug, Clone)]
pub struct TcpSegment {
    pub ts: f64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    /// ACK set: with `syn`, a server's answer rather than a client's first packet.
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: Vec<u8>,
}

const LINKTYPE_NULL: i32 = 0;
const LINKTYPE_ETHERNET: i32 = 1;
const LINKTYPE_RAW: i32 = 101;
const LINKTYPE_LOOP: i32 = 108;
const LINKTYPE_LINUX_SLL: i32 = 113;
const LINKTYPE_IPV4: i32 = 228;
const LINKTYPE_IPV6: i32 = 229;

/// The TCP segment in a packet, if it holds one.
pub fn parse_tcp(p: &Packet) -> Option<TcpSegment> {
    let sliced = match p.linktype {
        LINKTYPE_ETHERNET => SlicedPacket::from_ethernet(&p.data).ok()?,
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => SlicedPacket::from_ip(&p.data).ok()?,
        LINKTYPE_NULL | LINKTYPE_LOOP => SlicedPacket::from_ip(p.data.get(4..)?).ok()?,
        LINKTYPE_LINUX_SLL => SlicedPacket::from_ip(p.data.get(16..)?).ok()?,
        _ => return None,
    };
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match sliced.net? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let TransportSlice::Tcp(tcp) = sliced.transport? else {
        return None;
    };
    Some(TcpSegment {
        ts: p.ts,
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload().to_vec(),
    })
}
