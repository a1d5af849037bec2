//! pcap and pcapng files, as a list of timestamped link-layer packets.

use std::path::Path;

use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError};

/// One captured packet.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Seconds since the epoch, as recorded.
    pub ts: f64,
    pub linktype: i32,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file, or damaged at packet {packet}: {reason}")]
    Format {
        path: String,
        packet: usize,
        reason: String,
    },
}

/// Reads every packet of a pcap or pcapng file.
pub fn read_packets(path: &Path) -> Result<Vec<Packet>, CaptureError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| CaptureError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut reader =
        pcap_parser::create_reader(1 << 20, file).map_err(|e| CaptureError::Format {
            path: shown.clone(),
            packet: 0,
            reason: e.to_string(),
        })?;
    let mut packets = Vec::new();
    // pcapng: link type and timestamp resolution per interface.
    let mut interfaces: Vec<(i32, f64)> = Vec::new();
    let mut legacy_linktype = 1;
    loop {
        match reader.next() {
            Ok((used, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => legacy_linktype = h.network.0,
                    PcapBlockOwned::Legacy(b) => packets.push(Packet {
                        ts: f64::from(b.ts_sec) + f64::from(b.ts_usec) / 1e6,
                        linktype: legacy_linktype,
                        data: b.data.to_vec(),
                    }),
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let resolution = idb.ts_resolution().unwrap_or(1_000_000) as f64;
                        interfaces.push((idb.linktype.0, resolution));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let (linktype, resolution) = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or((Linktype::ETHERNET.0, 1e6));
                        let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let len = (epb.caplen as usize).min(epb.data.len());
                        packets.push(Packet {
                            ts: ticks as f64 / resolution,
                            linktype,
                            data: epb.data[..len].to_vec(),
                        });
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => packets.push(Packet {
                        ts: 0.0,
                        linktype: interfaces.first().map_or(1, |i| i.0),
                        data: spb.data.to_vec(),
                    }),
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(used);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    break;
                }
            }
            Err(e) => {
                return Err(CaptureError::Format {
                    path: shown,
                    packet: packets.len(),
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(packets)
}
