//! A script's dialog as the load client and the baseline server see it: the client messages to
//! send byte for byte, the replies to expect (length, and for SMB the command and status, since
//! the farm rewrites cookies), and how both sides frame messages on the wire.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use honeyfarm_runtime::replay::{Script, Side};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::BenchError;

/// How messages are delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 1002 session messages: a 4-byte header whose low 17 bits are the length.
    NetBios,
    /// No framing the tool knows: each message is as long as the script's.
    Lengths,
}

/// One message of the dialog, from the client's point of view.
#[derive(Debug, Clone)]
pub enum Step {
    Send(Bytes),
    Expect(Expected),
}

/// A reply as recorded, and which of its bytes must come back unchanged.
#[derive(Debug, Clone)]
pub struct Expected {
    pub bytes: Bytes,
    /// The bytes compared with the recording (SMB command and status).
    pub check: Option<Range<usize>>,
}

/// What the client and the baseline replay.
#[derive(Debug, Clone)]
pub struct Plan {
    pub framing: Framing,
    pub steps: Vec<Step>,
    /// The script's service (`smb`), for the farm's `[[listen]]`.
    pub service: String,
}

/// Why a scripted session did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    Connect,
    Io,
    Timeout,
    /// The server closed before reply `n`.
    Closed(usize),
    /// Reply `n` had another length than the recording.
    Length(usize),
    /// Reply `n` had another SMB command or status.
    Content(usize),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect => write!(f, "connect failed"),
            Failure::Io => write!(f, "i/o error"),
            Failure::Timeout => write!(f, "timed out"),
            Failure::Closed(n) => write!(f, "closed before reply {n}"),
            Failure::Length(n) => write!(f, "reply {n}: other length"),
            Failure::Content(n) => write!(f, "reply {n}: other command/status"),
        }
    }
}

impl Plan {
    /// Reads a script file with the protocols' registry.
    pub fn load(path: &Path) -> Result<Plan, BenchError> {
        let script = Script::load(path, &crate::services::types)?;
        Ok(Plan::of(&script))
    }

    pub fn of(script: &Script) -> Plan {
        let framing = if script.service.client.name.starts_with("netbios.") {
            Framing::NetBios
        } else {
            Framing::Lengths
        };
        let steps = script
            .messages
            .iter()
            .map(|m| match m.side {
                Side::Client => Step::Send(m.bytes.clone()),
                Side::Server => Step::Expect(Expected {
                    check: smb_header(&m.bytes),
                    bytes: m.bytes.clone(),
                }),
            })
            .collect();
        Plan {
            framing,
            steps,
            service: script.service.name.clone(),
        }
    }

    /// The client messages, in order.
    pub fn requests(&self) -> Vec<Bytes> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Send(b) => Some(b.clone()),
                Step::Expect(_) => None,
            })
            .collect()
    }

    /// Reads one message of this plan's framing; `len_hint` is the recorded length, which
    /// [`Framing::Lengths`] reads. `Ok(None)` at a clean end of stream.
    pub async fn read_message<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        len_hint: usize,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let mut head = [0u8; 4];
        let (len, prefix) = match self.framing {
            Framing::Lengths => (len_hint, 0),
            Framing::NetBios => {
                if !read_all(r, &mut head).await? {
                    return Ok(None);
                }
                (4 + netbios_length(&head), 4)
            }
        };
        let mut buf = vec![0u8; len];
        buf[..prefix].copy_from_slice(&head[..prefix]);
        if !read_all(r, &mut buf[prefix..]).await? {
            return Ok(None);
        }
        Ok(Some(buf))
    }

    /// One scripted session against `target`: every reply must arrive and match. Returns the
    /// time from connect to the last reply.
    pub async fn session(&self, target: SocketAddr, limit: Duration) -> Result<Duration, Failure> {
        let start = Instant::now();
        match tokio::time::timeout(limit, self.dialog(target)).await {
            Ok(Ok(())) => Ok(start.elapsed()),
            Ok(Err(f)) => Err(f),
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn dialog(&self, target: SocketAddr) -> Result<(), Failure> {
        let mut s = connect(target).await.map_err(|_| Failure::Connect)?;
        self.play(&mut s, &self.steps).await
    }

    /// Plays `steps` (the plan's, or a prefix of them) on `s`: sends the client messages, reads
    /// and checks the replies.
    pub async fn play(&self, s: &mut TcpStream, steps: &[Step]) -> Result<(), Failure> {
        let mut reply = 0;
        for step in steps {
            match step {
                Step::Send(b) => s.write_all(b).await.map_err(|_| Failure::Io)?,
                Step::Expect(e) => {
                    let got = self
                        .read_message(s, e.bytes.len())
                        .await
                        .map_err(|_| Failure::Io)?
                        .ok_or(Failure::Closed(reply))?;
                    e.verify(&got).map_err(|f| f(reply))?;
                    reply += 1;
                }
            }
        }
        Ok(())
    }

    /// The steps up to client message `k` (from 0): the first `k` client messages and their
    /// replies.
    pub fn before_request(&self, k: usize) -> &[Step] {
        let end = self
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::Send(_)))
            .nth(k)
            .map_or(self.steps.len(), |(i, _)| i);
        &self.steps[..end]
    }
}

impl Expected {
    fn verify(&self, got: &[u8]) -> Result<(), fn(usize) -> Failure> {
        if got.len() != self.bytes.len() {
            return Err(Failure::Length);
        }
        if let Some(r) = &self.check {
            if got.get(r.clone()) != self.bytes.get(r.clone()) {
                return Err(Failure::Content);
            }
        }
        Ok(())
    }
}

/// The SMB command and status of a NetBIOS-framed SMB1 or SMB2 message.
fn smb_header(b: &[u8]) -> Option<Range<usize>> {
    match b.get(4..8) {
        Some(b"\xffSMB") if b.len() >= 13 => Some(8..13),
        Some(b"\xfeSMB") if b.len() >= 18 => Some(12..18),
        _ => None,
    }
}

/// The length an RFC 1002 header declares (17 bits: the low bit of the flags and 16 bits).
pub fn netbios_length(head: &[u8; 4]) -> usize {
    (usize::from(head[1] & 1) << 16) | (usize::from(head[2]) << 8) | usize::from(head[3])
}

/// Fills `buf`; `Ok(false)` if the stream ended first.
async fn read_all<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<bool> {
    match r.read_exact(buf).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The loopback source addresses the client connects from, in turn.
pub const SOURCES: u32 = 4000;

/// Connects from the next of [`SOURCES`] loopback source addresses (127.1.0.1 and up), so that
/// TIME_WAIT ports and any per-source cap of the farm do not shape the load.
pub async fn connect(target: SocketAddr) -> std::io::Result<TcpStream> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % SOURCES;
    let source = Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250 + 1) as u8);
    let sock = TcpSocket::new_v4()?;
    // The port is picked at connect(), where TIME_WAIT pairs can be reused on loopback.
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option value of the stated size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    sock.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    sock.connect(target).await
}
