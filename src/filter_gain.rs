//! `honeyfarm filter-gain`: how many connections the scan filter would spare the responders
//! on a trace, for N = 1..10. Gain = probes / answered (GQ reported about 15x at N = 4).

use std::collections::HashSet;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{bail, Context, Result};
use honeyfarm_runtime::capture::{parse_tcp, read_packets};
use honeyfarm_runtime::farm::{FilterConfig, Probe, ScanFilter, ENTRY_BYTES, MAX_N};

/// One connection attempt of a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceProbe {
    /// Seconds (any origin).
    pub time: f64,
    pub source: IpAddr,
    pub telescope: SocketAddr,
}

/// A trace's connection attempts, in time order: a pcap's or pcapng's SYNs (without ACK), or
/// a CSV of `time,source,destination,port` (a header line and `#` comments allowed).
pub fn read_trace(path: &Path) -> Result<Vec<TraceProbe>> {
    let head = {
        let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let mut b = [0u8; 4];
        let n = std::io::Read::read(&mut f, &mut b).unwrap_or(0);
        b[..n].to_vec()
    };
    let pcap_magic: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    let mut probes = if pcap_magic.iter().any(|m| head == m) {
        read_packets(path)?
            .iter()
            .filter_map(parse_tcp)
            .filter(|s| s.syn && !s.ack)
            .map(|s| TraceProbe {
                time: s.ts,
                source: s.src.ip(),
                telescope: s.dst,
            })
            .collect()
    } else {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        read_csv(&text).with_context(|| format!("{}", path.display()))?
    };
    probes.sort_by(|a, b| a.time.total_cmp(&b.time));
    Ok(probes)
}

fn read_csv(text: &str) -> Result<Vec<TraceProbe>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("time,") {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [time, source, dest, port] = f[..] else {
            bail!(
                "line {}: want time,source,destination,port, got `{line}`",
                i + 1
            );
        };
        let bad = |what: &str| format!("line {}: bad {what} in `{line}`", i + 1);
        out.push(TraceProbe {
            time: time.parse().with_context(|| bad("time"))?,
            source: source.parse().with_context(|| bad("source"))?,
            telescope: SocketAddr::new(
                dest.parse().with_context(|| bad("destination"))?,
                port.parse().with_context(|| bad("port"))?,
            ),
        });
    }
    Ok(out)
}

/// The filter's settings for a measurement (N varies).
pub struct GainOptions {
    pub filter: FilterConfig,
    /// Fixes the table's bucket placement, so a measurement repeats exactly.
    pub seed: u64,
}

/// One row of the gain table.
#[derive(Debug, Clone, PartialEq)]
pub struct GainRow {
    pub n: usize,
    pub probes: u64,
    pub answered: u64,
    pub sources: usize,
    pub peak_sources: usize,
    pub evicted: u64,
}

impl GainRow {
    pub fn gain(&self) -> f64 {
        self.probes as f64 / self.answered.max(1) as f64
    }
}

/// Runs the trace through a fresh filter with this N.
pub fn measure(trace: &[TraceProbe], n: usize, opts: &GainOptions) -> Result<GainRow> {
    let filter = ScanFilter::with_seed(
        &FilterConfig {
            n,
            ..opts.filter.clone()
        },
        opts.seed,
    )?;
    let mut answered = 0;
    let mut peak = 0;
    let origin = trace.first().map_or(0.0, |p| p.time);
    for (i, p) in trace.iter().enumerate() {
        let d = filter.decide(&Probe {
            source: p.source,
            telescope: p.telescope,
            now: (p.time - origin).max(0.0) as u64,
        });
        answered += u64::from(d.answered());
        // Tracked sources only grow until the table is full: sample it now and then.
        if i % 4096 == 0 {
            peak = peak.max(filter.stats().tracked);
        }
    }
    let end = filter.stats();
    Ok(GainRow {
        n,
        probes: trace.len() as u64,
        answered,
        sources: distinct_sources(trace, &opts.filter),
        peak_sources: peak.max(end.tracked),
        evicted: end.evicted,
    })
}

/// Sources as the filter counts them (by its prefix lengths).
fn distinct_sources(trace: &[TraceProbe], c: &FilterConfig) -> usize {
    let prefix = |ip: IpAddr| match ip.to_canonical() {
        IpAddr::V4(a) => u128::from(u32::from(a) & (u32::MAX << (32 - u32::from(c.ipv4_prefix)))),
        IpAddr::V6(a) => {
            (u128::from(a) & (u128::MAX << (128 - u32::from(c.ipv6_prefix)))) | (1 << 127)
        }
    };
    trace
        .iter()
        .map(|p| prefix(p.source))
        .collect::<HashSet<_>>()
        .len()
}

/// `honeyfarm filter-gain`: the table for N = 1..10.
pub fn run(path: &Path, opts: &GainOptions, out: &mut impl Write) -> Result<()> {
    let trace = read_trace(path)?;
    let span = match (trace.first(), trace.last()) {
        (Some(a), Some(b)) => b.time - a.time,
        _ => 0.0,
    };
    let c = &opts.filter;
    writeln!(
        out,
        "trace {}: {} probes over {span:.0} s; sources by /{} (IPv4) and /{} (IPv6), window {} s, capacity {} sources of {ENTRY_BYTES} bytes",
        path.display(),
        trace.len(),
        c.ipv4_prefix,
        c.ipv6_prefix,
        c.window.as_secs(),
        c.capacity,
    )?;
    writeln!(
        out,
        "{:>3} {:>10} {:>10} {:>7} {:>9} {:>12} {:>12} {:>9}",
        "N", "probes", "answered", "gain", "sources", "peak_sources", "peak_bytes", "evicted"
    )?;
    for n in 1..=MAX_N {
        let r = measure(&trace, n, opts)?;
        writeln!(
            out,
            "{:>3} {:>10} {:>10} {:>7.2} {:>9} {:>12} {:>12} {:>9}",
            r.n,
            r.probes,
            r.answered,
            r.gain(),
            r.sources,
            r.peak_sources,
            r.peak_sources * ENTRY_BYTES,
            r.evicted
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(capacity: usize) -> GainOptions {
        GainOptions {
            filter: FilterConfig {
                capacity,
                ..FilterConfig::default()
            },
            seed: 1,
        }
    }

    #[test]
    fn csv_and_counts() {
        let text = "time,source,destination,port\n# a comment\n\
                    0,192.0.2.1,198.18.0.1,445\n1,192.0.2.1,198.18.0.2,445\n\
                    2,192.0.2.1,198.18.0.3,445\n3,192.0.2.1,198.18.0.1,139\n\
                    4,192.0.2.9,198.18.0.1,445\n";
        let t = read_csv(text).unwrap();
        assert_eq!(t.len(), 5);
        let r = measure(&t, 1, &opts(64)).unwrap();
        // Source 1: 1 admitted, 3 filtered (another port of its first address is a probe
        // too); source 2: admitted.
        assert_eq!((r.probes, r.answered, r.sources), (5, 2, 2));
        let r = measure(&t, 3, &opts(64)).unwrap();
        assert_eq!(r.answered, 4);
        let r = measure(&t, 4, &opts(64)).unwrap();
        assert_eq!(r.answered, 5);
        assert_eq!(r.peak_sources, 2);
        assert!(read_csv("0,192.0.2.1,198.18.0.1\n").is_err());
    }
}
