//! `personality scan`: a battery of probes per protocol sent to a real server, the replies
//! turned into a personality. Every probe of nmap's service detection for the port is sent
//! raw and its reply kept whole, so the emulator shows nmap's matchers what the server did.

mod dynamic;
mod ftp;
mod http;
pub mod nmap;
mod smtp;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::personality::{Personality, ProbeResult, Protocol};
use super::template::Template;
pub use dynamic::{merge, templatize, Known};

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub protocol: Protocol,
    pub target: SocketAddr,
    /// The server's host name, replaced by `{hostname}` where replies show it.
    pub hostname: String,
    /// nmap's probe file.
    pub nmap_probes: PathBuf,
    /// How long to wait for a first byte, and for more after the last one.
    pub first_byte: Duration,
    pub quiet: Duration,
    /// Draw the progress bar on standard error.
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error(transparent)]
    Nmap(#[from] nmap::NmapError),
    #[error("the server at {0} sent no greeting")]
    NoBanner(SocketAddr),
}

/// What one exchange got back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    pub reply: Vec<u8>,
    /// The server closed the connection.
    pub closed: bool,
}

/// An open connection to the scanned server.
pub struct Probe {
    sock: TcpStream,
    first_byte: Duration,
    quiet: Duration,
    closed: bool,
}

impl Probe {
    /// Connects; to a loopback server from another loopback address than the server's, so
    /// that replies naming the client (`{peer}`) and the server (`{address}`) tell apart.
    pub async fn connect(o: &ScanOptions) -> Result<Probe, ScanError> {
        let fail = |e| ScanError::Connect(o.target, e);
        let sock = match o.target.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let s = TcpSocket::new_v4().map_err(fail)?;
                let from = if ip.octets()[3] == 2 {
                    [127, 0, 0, 3]
                } else {
                    [127, 0, 0, 2]
                };
                s.bind(SocketAddr::from((from, 0))).map_err(fail)?;
                s.connect(o.target).await.map_err(fail)?
            }
            _ => TcpStream::connect(o.target).await.map_err(fail)?,
        };
        Ok(Probe {
            sock,
            first_byte: o.first_byte,
            quiet: o.quiet,
            closed: false,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The address the server sees the scanner at.
    pub fn local_ip(&self) -> String {
        self.sock
            .local_addr()
            .map_or(String::new(), |a| a.ip().to_string())
    }

    /// Sends `bytes` (if any) and reads the reply: until the server closes, `done` says the
    /// reply is complete, or it stays quiet.
    pub async fn send(&mut self, bytes: &[u8], done: fn(&[u8]) -> bool) -> Exchange {
        if !bytes.is_empty() && self.sock.write_all(bytes).await.is_err() {
            self.closed = true;
        }
        let mut reply = Vec::new();
        while !self.closed && !done(&reply) {
            let wait = if reply.is_empty() {
                self.first_byte
            } else {
                self.quiet
            };
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout(wait, self.sock.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => self.closed = true,
                Ok(Ok(n)) => reply.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        Exchange {
            reply,
            closed: self.closed,
        }
    }
}

/// Never complete: read until closed or quiet.
pub fn until_quiet(_: &[u8]) -> bool {
    false
}

/// A progress bar on standard error.
pub struct Progress {
    done: usize,
    total: usize,
    shown: bool,
}

impl Progress {
    pub fn new(total: usize, shown: bool) -> Progress {
        Progress {
            done: 0,
            total,
            shown,
        }
    }

    pub fn step(&mut self, what: &str) {
        self.done += 1;
        if !self.shown {
            return;
        }
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            " ".repeat(width - filled.min(width))
        );
        let what: String = what.chars().take(30).collect();
        eprint!("\r[{bar}] {}/{} {what:<30}", self.done, self.total);
        if self.done >= self.total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

/// Scans the server: the protocol's battery, then nmap's probes.
pub async fn scan(o: &ScanOptions) -> Result<Personality, ScanError> {
    let probes = nmap_probes(o)?;
    let source = format!(
        "scanned from {} at {}",
        o.target,
        super::clock::Civil::now().http()
    );
    let mut p = Personality::new(o.protocol, source, o.hostname.clone());
    let battery = match o.protocol {
        Protocol::Http => http::battery_len(),
        Protocol::Smtp => smtp::battery_len(),
        Protocol::Ftp => ftp::battery_len(),
    };
    let mut progress = Progress::new(battery + probes.len(), o.progress);
    match o.protocol {
        Protocol::Http => http::scan(o, &mut p, &mut progress).await?,
        Protocol::Smtp => smtp::scan(o, &mut p, &mut progress).await?,
        Protocol::Ftp => ftp::scan(o, &mut p, &mut progress).await?,
    }
    for chunk in probes.chunks(PARALLEL) {
        let mut set = tokio::task::JoinSet::new();
        for (i, probe) in chunk.iter().enumerate() {
            let (o, probe) = (o.clone(), probe.clone());
            set.spawn(async move { (i, raw_probe(&o, &probe).await) });
        }
        let mut got: Vec<(usize, ProbeResult)> = Vec::new();
        while let Some(r) = set.join_next().await {
            let Ok((i, r)) = r else { continue };
            progress.step(&chunk[i].name);
            got.push((i, r?));
        }
        got.sort_by_key(|(i, _)| *i);
        p.probes.extend(got.into_iter().map(|(_, r)| r));
    }
    Ok(p)
}

/// Raw probes sent at once (each on its own connection).
const PARALLEL: usize = 16;

/// nmap's TCP probes, those for the scanned port or the protocol's well-known ones first:
/// with `--version-all` nmap may send every one of them to any port (not NULL: its answer is
/// the banner).
fn nmap_probes(o: &ScanOptions) -> Result<Vec<nmap::NmapProbe>, ScanError> {
    let all = nmap::load(&o.nmap_probes)?;
    let ports: Vec<u16> = [o.target.port()]
        .into_iter()
        .chain(o.protocol.well_known_ports().iter().copied())
        .collect();
    let (mut mine, others): (Vec<_>, Vec<_>) = all
        .into_iter()
        .filter(|p| !p.payload.is_empty())
        .partition(|p| ports.iter().any(|&port| p.covers(port)));
    mine.extend(others);
    Ok(mine)
}

async fn raw_probe(o: &ScanOptions, probe: &nmap::NmapProbe) -> Result<ProbeResult, ScanError> {
    let mut c = Probe::connect(o).await?;
    if o.protocol != Protocol::Http {
        c.send(b"", smtp::reply_complete).await;
    }
    let x = c.send(&probe.payload, until_quiet).await;
    let address = o.target.ip().to_string();
    let peer = c.local_ip();
    let known = Known {
        arg: "",
        hostname: &o.hostname,
        address: &address,
        peer: &peer,
    };
    Ok(ProbeResult {
        name: probe.name.clone(),
        sent: Template::literal(&probe.payload),
        reply: templatize(&x.reply, &known),
        close: x.closed,
    })
}
