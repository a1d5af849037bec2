//! FTP's data connections for the emulator: PASV/EPSV open a listener on the telescope
//! address, PORT/EPRT name an endpoint of the attacker's own address (never another: no
//! bounce), and LIST, NLST, RETR send the personality's small file tree over it while STOR
//! receives an upload, stored as an artifact.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::personality::{Action, FileEntry};

/// How long a data connection may take to come.
const DATA_WAIT: Duration = Duration::from_secs(10);

/// Where the next transfer's data connection comes from.
#[derive(Debug, Default)]
pub enum DataChannel {
    #[default]
    None,
    Passive(TcpListener),
    Active(SocketAddr),
}

impl DataChannel {
    /// A listener for PASV/EPSV on the address the attacker reached; its port.
    pub async fn passive(at: IpAddr) -> std::io::Result<(DataChannel, u16)> {
        let l = TcpListener::bind(SocketAddr::new(at, 0)).await?;
        let port = l.local_addr()?.port();
        Ok((DataChannel::Passive(l), port))
    }

    /// The data connection, once the attacker connects (passive) or we do (active).
    pub async fn open(self) -> Option<TcpStream> {
        let conn = async {
            match self {
                DataChannel::None => None,
                DataChannel::Passive(l) => l.accept().await.ok().map(|(s, _)| s),
                DataChannel::Active(to) => TcpStream::connect(to).await.ok(),
            }
        };
        tokio::time::timeout(DATA_WAIT, conn).await.ok().flatten()
    }
}

/// The endpoint of `PORT h1,h2,h3,h4,p1,p2` or `EPRT |1|h|p|`, if it is `attacker`'s own.
pub fn active_endpoint(verb: &str, arg: &str, attacker: IpAddr) -> Option<SocketAddr> {
    let to: SocketAddr = if verb == "EPRT" {
        let parts: Vec<&str> = arg.split('|').collect();
        let ip: IpAddr = parts.get(2)?.parse().ok()?;
        SocketAddr::new(ip, parts.get(3)?.parse().ok()?)
    } else {
        host_port(arg)?
    };
    (to.ip() == attacker).then_some(to)
}

/// FTP's `h1,h2,h3,h4,p1,p2` (PORT's argument, PASV's reply).
pub fn host_port(text: &str) -> Option<SocketAddr> {
    let n: Vec<u8> = text
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = n[..] else {
        return None;
    };
    Some(SocketAddr::from((
        [a, b, c, d],
        u16::from(p1) << 8 | u16::from(p2),
    )))
}

/// What a transfer sends: the listing, the names, or the file asked for.
pub fn outgoing(action: Action, files: &[FileEntry], arg: &str) -> Vec<u8> {
    let lines = |f: fn(&FileEntry) -> &str| -> Vec<u8> {
        files
            .iter()
            .map(|e| format!("{}\r\n", f(e)))
            .collect::<String>()
            .into_bytes()
    };
    match action {
        Action::List => lines(|e| &e.listing),
        Action::NameList => lines(|e| &e.name),
        _ => find(files, arg).map_or(Vec::new(), |f| f.content.clone().into_bytes()),
    }
}

/// The file an argument names (its base name).
pub fn find<'a>(files: &'a [FileEntry], arg: &str) -> Option<&'a FileEntry> {
    let base = arg.rsplit('/').next().unwrap_or(arg);
    files.iter().find(|f| f.name == base)
}

/// Sends `bytes` over the data connection and closes it.
pub async fn send(mut s: TcpStream, bytes: &[u8]) -> bool {
    s.write_all(bytes).await.is_ok() && s.shutdown().await.is_ok()
}

/// Reads an upload to its end (at most `max` bytes kept).
pub async fn receive(mut s: TcpStream, max: usize, idle: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    // On the heap: an array here would be part of every emulated connection's future.
    let mut chunk = vec![0u8; 16384];
    while let Ok(Ok(n)) = tokio::time::timeout(idle, s.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        let room = max.saturating_sub(out.len()).min(n);
        out.extend_from_slice(&chunk[..room]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_endpoints_only_to_the_attacker() {
        let me: IpAddr = "127.0.0.2".parse().unwrap();
        let want: SocketAddr = "127.0.0.2:4660".parse().unwrap();
        assert_eq!(active_endpoint("PORT", "127,0,0,2,18,52", me), Some(want));
        assert_eq!(
            active_endpoint("EPRT", "|1|127.0.0.2|4660|", me),
            Some(want)
        );
        assert_eq!(active_endpoint("PORT", "10,0,0,1,18,52", me), None);
        assert_eq!(active_endpoint("PORT", "-1,0,0,1,18,52", me), None);
    }
}
