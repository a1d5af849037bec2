//! The scan filter's speed and memory: decisions per second on one core (a single-threaded
//! loop over a pre-generated probe array) and on every core, against a baseline measured in
//! the same run (a `HashMap` of sources to their admitted addresses, the obvious filter), and
//! bytes per tracked source.
//!
//! `cargo bench -p honeyfarm-runtime --bench filter`

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use honeyfarm_runtime::farm::{FilterConfig, Probe, ScanFilter, ENTRY_BYTES};

const PROBES: usize = 4_000_000;
const SOURCES: u32 = 200_000;
const N: usize = 4;

/// Probes from `SOURCES` sources, a few heavy (sweeping) and most light, to a /16.
fn probes() -> Vec<Probe> {
    let mut x: u64 = 0x1234_5678;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..PROBES)
        .map(|i| {
            let r = next();
            // Half the probes from 1% of the sources.
            let s = if r & 1 == 0 {
                (r >> 1) as u32 % (SOURCES / 100)
            } else {
                (r >> 1) as u32 % SOURCES
            };
            Probe {
                source: IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + s)),
                telescope: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (next() as u32 & 0xffff))),
                    445,
                ),
                now: (i / 100_000) as u64,
            }
        })
        .collect()
}

/// The obvious filter: a map of sources to the addresses admitted for them.
fn baseline(probes: &[Probe]) -> (u64, f64) {
    let mut map: HashMap<IpAddr, Vec<IpAddr>> = HashMap::new();
    let t = Instant::now();
    let mut answered = 0u64;
    for p in probes {
        let v = map.entry(p.source).or_default();
        let a = p.telescope.ip();
        if v.contains(&a) {
            answered += 1;
        } else if v.len() < N {
            v.push(a);
            answered += 1;
        }
    }
    black_box(&map);
    (answered, t.elapsed().as_secs_f64())
}

fn filter() -> ScanFilter {
    ScanFilter::with_seed(
        &FilterConfig {
            n: N,
            capacity: 1 << 20,
            ..FilterConfig::default()
        },
        1,
    )
    .expect("valid settings")
}

fn main() {
    let probes = probes();
    let (base_answered, base_secs) = baseline(&probes);
    let base_rate = PROBES as f64 / base_secs;

    let f = filter();
    let t = Instant::now();
    let answered: u64 = probes
        .iter()
        .map(|p| u64::from(f.decide(black_box(p)).answered()))
        .sum();
    let one = PROBES as f64 / t.elapsed().as_secs_f64();
    // They differ only by sources evicted from full buckets (each answered afresh, N at most).
    let evicted = f.stats().evicted;
    assert!(
        answered >= base_answered && answered - base_answered <= N as u64 * evicted,
        "the filter and the baseline disagree: {answered} vs {base_answered}, {evicted} evicted"
    );

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let f = filter();
    let t = Instant::now();
    std::thread::scope(|s| {
        for chunk in probes.chunks(PROBES.div_ceil(threads)) {
            let f = &f;
            s.spawn(move || {
                chunk
                    .iter()
                    .map(|p| u64::from(f.decide(black_box(p)).answered()))
                    .sum::<u64>()
            });
        }
    });
    let all = PROBES as f64 / t.elapsed().as_secs_f64();
    let stats = f.stats();

    println!(
        "filter: {PROBES} probes from {SOURCES} sources, N = {N}; {answered} answered \
         ({base_answered} by the baseline; {evicted} evictions from full buckets)"
    );
    println!(
        "baseline (HashMap<IpAddr, Vec<IpAddr>>), 1 thread: {:.1} M decisions/s",
        base_rate / 1e6
    );
    println!(
        "ScanFilter, 1 thread: {:.1} M decisions/s ({:.2}x the baseline)",
        one / 1e6,
        one / base_rate
    );
    println!(
        "ScanFilter, {threads} threads: {:.1} M decisions/s in all, {:.1} M per core ({:.2}x one thread)",
        all / 1e6,
        all / 1e6 / threads as f64,
        all / one
    );
    println!(
        "memory: {ENTRY_BYTES} bytes per tracked source; {} sources tracked of {} slots ({} bytes allocated, {:.1} per slot)",
        stats.tracked,
        stats.capacity,
        stats.capacity * ENTRY_BYTES,
        (stats.capacity * ENTRY_BYTES) as f64 / stats.capacity as f64
    );
}
