//! The emulator responder: answers a connection from a personality. Raw probes are answered
//! byte for byte; everything else is framed per protocol, keyed (state, command, argument
//! class, version) and answered from the matching rule, with the placeholders filled from the
//! telescope address, now, and fresh ids. Each request is recorded through the generated
//! codecs; what the attacker sends as a request, mail or upload is kept as an artifact.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::http;
use super::personality::{Compiled, CompiledRule, Key, Protocol};
use super::template::Fill;
use crate::codec::{Description, Reader};
use crate::farm::{EventStore, MessageEvent, Outcome, Source};
use crate::replay::ServiceCodecs;

/// What every emulated connection of a listener shares.
#[derive(Clone)]
pub struct EmulateConfig {
    pub personality: Arc<Compiled>,
    pub codecs: ServiceCodecs,
    pub events: EventStore,
    pub idle_timeout: Duration,
    /// The most bytes buffered for one request (or kept of one mail or upload).
    pub max_message: usize,
    /// FTP: what uploads added to the tree, seen by the listener's later sessions.
    pub uploads: super::ftp::Uploads,
}

/// Why an emulated connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("silent for {0} ms")]
    Idle(u128),
    #[error("a request over {0} bytes")]
    TooLong(usize),
}

/// The most bytes one read takes.
const READ_CHUNK: usize = 16384;

/// A fresh number for ids: the clock's nanoseconds mixed with a counter (splitmix64).
pub fn fresh() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos
        ^ COUNTER
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_mul(3);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One emulated connection.
pub(super) struct Conn {
    pub(super) cfg: Arc<EmulateConfig>,
    pub(super) sock: TcpStream,
    pub(super) buf: BytesMut,
    pub(super) id: i64,
    pub(super) state: String,
    pub(super) telescope: SocketAddr,
    pub(super) attacker: SocketAddr,
    pub(super) pid: u32,
    /// Commands answered so far (raw probes are matched only before the first).
    pub(super) answered: usize,
    pub(super) closed: bool,
    pub(super) mail: super::line::Mail,
    /// FTP: the next transfer's data connection, its passive port, the size of its file.
    pub(super) data: super::ftp::DataChannel,
    pub(super) data_port: u16,
    pub(super) size: usize,
    /// FTP: the transfer type and working directory.
    pub(super) ftp: super::ftp::Session,
}

impl Conn {
    pub(super) fn fill<'a>(&'a self, echo: &'a str) -> Fill<'a> {
        Fill {
            hostname: &self.cfg.personality.personality.hostname,
            address: self.telescope.ip().to_string(),
            peer: self.attacker.ip().to_string(),
            echo,
            pid: self.pid,
            queue_id: format!("{:011X}", fresh() & 0xfff_ffff_ffff),
            data_port: self.data_port,
            size: self.size,
            cwd: &self.ftp.cwd,
            mtime: &self.ftp.mtime,
        }
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) -> Result<(), EmulateError> {
        self.sock.write_all(bytes).await?;
        Ok(())
    }

    /// Reads more into the buffer; false at the end of the stream.
    pub(super) async fn read_more(&mut self) -> Result<bool, EmulateError> {
        let idle = self.cfg.idle_timeout;
        // Room for a whole probe in one read: a probe split over reads is not recognised.
        self.buf.reserve(READ_CHUNK);
        match tokio::time::timeout(idle, self.sock.read_buf(&mut self.buf)).await {
            Ok(n) => Ok(n? > 0),
            Err(_) => Err(EmulateError::Idle(idle.as_millis())),
        }
    }

    /// Records one attacker message, decoded by the service's codec.
    pub(super) fn record(&self, raw: &[u8]) {
        let entry = self.cfg.codecs.client;
        let mut r = Reader::new(Bytes::copy_from_slice(raw));
        let (kind, roles) = match (entry.decode)(&mut r) {
            Ok(m) => {
                let d = Description::of(m.as_ref());
                let roles = d.roles.iter().map(ToString::to_string).collect();
                (d.kind(self.cfg.codecs.text), roles)
            }
            Err(_) => (crate::farm::UNDECODABLE.to_string(), Vec::new()),
        };
        self.cfg.events.message(MessageEvent {
            connection: self.id,
            to_server: true,
            kind,
            length: raw.len(),
            source: Source::Attacker,
            roles,
            followed: false,
        });
    }

    /// Answers with a rule's reply; follows its state change.
    pub(super) async fn answer(
        &mut self,
        rule: &CompiledRule,
        echo: &str,
    ) -> Result<(), EmulateError> {
        let out = rule.reply.render(&self.fill(echo));
        self.send(&out).await?;
        if let Some(n) = &rule.rule.next {
            self.state = n.clone();
        }
        self.closed |= rule.rule.close;
        self.answered += 1;
        Ok(())
    }

    /// Answers the buffer if it is exactly one of the raw probes.
    async fn probe(&mut self) -> Result<bool, EmulateError> {
        if self.answered > 0 {
            return Ok(false);
        }
        let p = self.cfg.personality.clone();
        let Some(probe) = p.probes.get(&self.buf[..]) else {
            return Ok(false);
        };
        self.record(&self.buf.clone());
        self.buf.clear();
        let out = probe.reply.render(&self.fill(""));
        self.send(&out).await?;
        self.closed |= probe.close;
        self.answered += 1;
        Ok(true)
    }
}

/// Serves one connection from the personality until either side closes; returns its
/// connection id, outcome and a detail for the log.
pub async fn serve_emulated(
    cfg: Arc<EmulateConfig>,
    sock: TcpStream,
    attacker: SocketAddr,
    telescope: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> (i64, Outcome, String) {
    let id = cfg.events.connection(attacker, telescope, &cfg.codecs.name);
    let mut conn = Conn {
        state: cfg.personality.personality.initial.clone(),
        cfg: cfg.clone(),
        sock,
        buf: BytesMut::new(),
        id,
        telescope,
        attacker,
        pid: 1000 + (fresh() % 30_000) as u32,
        answered: 0,
        closed: false,
        mail: Default::default(),
        data: Default::default(),
        data_port: 0,
        size: 0,
        ftp: Default::default(),
    };
    let result = tokio::select! {
        r = converse(&mut conn) => r,
        _ = stop.wait_for(|s| *s) => Ok(()),
    };
    let _ = conn.sock.shutdown().await;
    let (outcome, detail) = match result {
        Ok(()) => (Outcome::Emulated, format!("{} answered", conn.answered)),
        Err(e) => (Outcome::Error, e.to_string()),
    };
    cfg.events.end(id, outcome.clone(), &detail);
    (id, outcome, detail)
}

async fn converse(c: &mut Conn) -> Result<(), EmulateError> {
    if let Some(b) = &c.cfg.personality.banner {
        let out = b.render(&c.fill(""));
        c.send(&out).await?;
    }
    let protocol = c.cfg.personality.personality.protocol;
    loop {
        let more = c.read_more().await?;
        if let Some(max) = c.cfg.personality.personality.limits.max_request {
            if c.buf.len() > max {
                return Err(EmulateError::TooLong(max));
            }
        }
        if c.buf.len() > c.cfg.max_message {
            return Err(EmulateError::TooLong(c.cfg.max_message));
        }
        if !c.probe().await? {
            match protocol {
                Protocol::Http => http_requests(c).await?,
                Protocol::Smtp | Protocol::Ftp => super::line::commands(c).await?,
            }
        }
        if c.closed || !more {
            return Ok(());
        }
    }
}

/// Answers every complete HTTP request in the buffer.
async fn http_requests(c: &mut Conn) -> Result<(), EmulateError> {
    while !c.closed {
        let Some(req) = http::frame(&c.buf) else {
            return Ok(());
        };
        let raw = c.buf.split_to(req.len.min(c.buf.len()));
        c.record(&raw);
        c.cfg.events.artifact(c.id, "http-request", raw.to_vec());
        let p = c.cfg.personality.clone();
        let args = http::classes(&req.target, &p.personality);
        let key = Key {
            state: &c.state,
            command: &req.method,
            args: &args,
            version: &req.version,
        };
        match p.find(&key) {
            Some(rule) => c.answer(rule, &req.target).await?,
            None => c.closed = true,
        }
    }
    Ok(())
}
