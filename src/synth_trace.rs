//! `honeyfarm synth-trace`: a SYNTHETIC telescope trace (not real traffic) for measuring the
//! scan filter's gain where no real trace is at hand. Deterministic from its seed.
//!
//! The model (docs/RUNNING.md, "The synthetic telescope trace"):
//! - `sources` sources, each a random IPv4 address outside the telescope; a share
//!   `worm_share` are worms, the rest scanners.
//! - Each source contacts K distinct telescope addresses, K from a discrete Pareto law
//!   (P(K >= k) = k^-alpha, capped at `max_addresses`): most sources send a handful of
//!   probes, a few sweep thousands. Scanners have the heavier tail (`scanner_alpha`) than
//!   worms (`worm_alpha`).
//! - A scanner probes one port (445, 139, 80, 21, 25 weighted 50/15/20/10/5) of each
//!   address; a share `multi_port_share` of scanners probe all five ports of each address.
//! - A worm connects to port 445 of each address; with chance `worm_return` it comes back
//!   to the same address for a second session a few seconds later (the exploit after the
//!   probe).
//! - A source starts at a uniform time within `duration`; the gaps between its addresses
//!   are exponential with mean `scanner_gap` or `worm_gap` seconds.

use std::io::Write;
use std::net::Ipv4Addr;

use anyhow::Result;

/// The ports a source probes, with their weights.
const PORTS: [(u16, u32); 5] = [(445, 50), (139, 15), (80, 20), (21, 10), (25, 5)];

/// The model's parameters (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Model {
    pub seed: u64,
    pub sources: usize,
    pub duration: f64,
    pub prefix: Ipv4Addr,
    pub prefix_len: u8,
    pub worm_share: f64,
    pub scanner_alpha: f64,
    pub worm_alpha: f64,
    pub max_addresses: u64,
    pub multi_port_share: f64,
    pub worm_return: f64,
    pub scanner_gap: f64,
    pub worm_gap: f64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            seed: 1,
            sources: 2000,
            duration: 3600.0,
            prefix: Ipv4Addr::new(198, 18, 0, 0),
            prefix_len: 16,
            worm_share: 0.2,
            scanner_alpha: 0.9,
            worm_alpha: 1.5,
            max_addresses: 20_000,
            multi_port_share: 0.1,
            worm_return: 0.5,
            scanner_gap: 1.0,
            worm_gap: 10.0,
        }
    }
}

/// splitmix64: small, fast, and the same numbers on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Discrete Pareto: P(K >= k) = k^-alpha, k >= 1, capped.
    fn pareto(&mut self, alpha: f64, cap: u64) -> u64 {
        let u = 1.0 - self.unit(); // (0, 1]
        (u.powf(-1.0 / alpha).floor() as u64).clamp(1, cap)
    }

    fn port(&mut self) -> u16 {
        let total: u32 = PORTS.iter().map(|p| p.1).sum();
        let mut x = (self.next() % u64::from(total)) as u32;
        for (port, w) in PORTS {
            if x < w {
                return port;
            }
            x -= w;
        }
        PORTS[0].0
    }
}

/// One line of the trace.
struct Line {
    time: f64,
    source: Ipv4Addr,
    telescope: Ipv4Addr,
    port: u16,
}

impl Model {
    fn telescope(&self, rng: &mut Rng) -> Ipv4Addr {
        let host_bits = 32 - u32::from(self.prefix_len);
        let host = if host_bits == 0 {
            0
        } else {
            (rng.next() as u32) & (u32::MAX >> (32 - host_bits))
        };
        Ipv4Addr::from(u32::from(self.prefix) | host)
    }

    /// A routable-looking source outside the telescope.
    fn source(&self, rng: &mut Rng) -> Ipv4Addr {
        let net = u32::from(self.prefix);
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        loop {
            let a = rng.next() as u32;
            let first = a >> 24;
            if (1..=223).contains(&first) && first != 10 && first != 127 && a & mask != net {
                return Ipv4Addr::from(a);
            }
        }
    }

    fn lines(&self) -> Vec<Line> {
        let mut rng = Rng(self.seed);
        let mut out = Vec::new();
        for _ in 0..self.sources {
            let source = self.source(&mut rng);
            let worm = rng.chance(self.worm_share);
            let (alpha, gap) = if worm {
                (self.worm_alpha, self.worm_gap)
            } else {
                (self.scanner_alpha, self.scanner_gap)
            };
            let every_port = !worm && rng.chance(self.multi_port_share);
            let port = if worm { 445 } else { rng.port() };
            let mut t = rng.unit() * self.duration;
            for _ in 0..rng.pareto(alpha, self.max_addresses) {
                t += rng.exponential(gap);
                let telescope = self.telescope(&mut rng);
                let mut add = |time, port| {
                    out.push(Line {
                        time,
                        source,
                        telescope,
                        port,
                    })
                };
                if every_port {
                    for (i, (p, _)) in PORTS.iter().enumerate() {
                        add(t + 0.01 * i as f64, *p);
                    }
                } else {
                    add(t, port);
                }
                if worm && rng.chance(self.worm_return) {
                    add(t + 1.0 + rng.exponential(5.0), port);
                }
            }
        }
        out.sort_by(|a, b| a.time.total_cmp(&b.time));
        out
    }

    /// Writes the trace as CSV (`filter-gain` reads it), labelled synthetic.
    pub fn write(&self, out: &mut impl Write) -> Result<usize> {
        let lines = self.lines();
        writeln!(
            out,
            "# SYNTHETIC telescope trace, not real traffic: honeyfarm synth-trace, {self:?}"
        )?;
        writeln!(out, "time,source,destination,port")?;
        for l in &lines {
            writeln!(out, "{:.3},{},{},{}", l.time, l.source, l.telescope, l.port)?;
        }
        Ok(lines.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Model) -> String {
        let mut v = Vec::new();
        m.write(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let m = Model {
            sources: 50,
            ..Model::default()
        };
        assert_eq!(text(&m), text(&m));
        assert_ne!(text(&m), text(&Model { seed: 2, ..m }));
    }

    #[test]
    fn probe_counts_are_heavy_tailed() {
        let mut rng = Rng(9);
        let k: Vec<u64> = (0..100_000).map(|_| rng.pareto(1.0, 1_000_000)).collect();
        let ones = k.iter().filter(|&&x| x == 1).count() as f64 / k.len() as f64;
        // P(K = 1) = 1 - 2^-1 for alpha = 1.
        assert!((ones - 0.5).abs() < 0.01, "{ones}");
        assert!(k.iter().any(|&x| x > 10_000));
    }
}
