//! Rewriting role fields between two views of one session: the per-namespace cookie maps that
//! pair one side's values with the other's, and the visitor that applies them, maps addresses
//! and host names, and freshens timestamps and nonces. Lengths need nothing: the encoder
//! recomputes them.

mod sid;
mod time;
mod value_map;

pub use sid::{pair_domain_sids, DomainSids, SID_NAMESPACE};
pub use time::{at_recorded_precision, fresh_timestamp};
pub use value_map::{detached, Conflict, Namespace, ValueMap};

use std::net::IpAddr;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use crate::codec::{AnyMessage, Class, EncodeError, FieldValue, Role, SetError, Value, VisitorMut};

/// Why a message could not be rewritten for the other side.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("cannot rewrite {field}: {error}")]
    Field { field: String, error: SetError },
    #[error("{0}")]
    Encode(#[from] EncodeError),
}

/// Which way cookies are translated through a [`ValueMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Left values to right values.
    Forward,
    /// Right values to left values.
    Backward,
}

/// One rewrite of a message's role fields.
pub struct Rewrite<'a> {
    /// Cookies translated through the map (a value the map does not hold stays as it is).
    pub cookies: Option<(&'a ValueMap, Way)>,
    /// Addresses replaced wherever an address or host-name field holds them (in binary, as
    /// text, or inside a longer text such as a UNC path).
    pub addresses: Vec<(IpAddr, IpAddr)>,
    /// Host names replaced inside host-name fields (case-insensitive, whole text or a part).
    pub names: Vec<(String, String)>,
    /// Timestamps set to this time.
    pub now: Option<SystemTime>,
    /// Nonces replaced by fresh random bytes of the same length.
    pub fresh_nonces: bool,
    /// New values of `@index(list)` fields, by list.
    pub indexes: Vec<(&'static str, u64)>,
    /// Fields that refused a new value (a value that does not fit, say).
    pub errors: Vec<(String, SetError)>,
}

impl<'a> Rewrite<'a> {
    pub fn new() -> Self {
        Rewrite {
            cookies: None,
            addresses: Vec::new(),
            names: Vec::new(),
            now: None,
            fresh_nonces: false,
            indexes: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The value a field of this role that holds `v` gets, if it changes.
    pub fn new_value(&self, role: &'static Role, v: &Value) -> Option<Value> {
        match role {
            Role::Cookie { namespace, .. } => {
                let (map, way) = self.cookies?;
                match way {
                    Way::Forward => map.forward(namespace, v),
                    Way::Backward => map.backward(namespace, v),
                }
            }
            Role::Address | Role::Hostname => self.map_address(v, role == &Role::Hostname),
            Role::Timestamp { format } => fresh_timestamp(format, self.now?)
                .map(|fresh| at_recorded_precision(format, v, fresh)),
            Role::Index { list } => self
                .indexes
                .iter()
                .find(|(l, _)| l == list)
                .map(|(_, i)| Value::Uint(*i)),
            Role::Nonce if self.fresh_nonces => match v {
                Value::Bytes(b) => Some(Value::Bytes(random_bytes(b.len()).into())),
                _ => None,
            },
            _ => None,
        }
    }

    fn map_address(&self, v: &Value, hostname: bool) -> Option<Value> {
        match v {
            Value::Ip(ip) => self
                .addresses
                .iter()
                .find(|(a, _)| a == ip)
                .map(|(_, b)| Value::Ip(*b)),
            Value::Socket(s) => self
                .addresses
                .iter()
                .find(|(a, _)| *a == s.ip())
                .map(|(_, b)| Value::Socket(std::net::SocketAddr::new(*b, s.port()))),
            Value::Uint(n) => self.addresses.iter().find_map(|(a, b)| match (a, b) {
                (IpAddr::V4(a), IpAddr::V4(b)) if u64::from(u32::from(*a)) == *n => {
                    Some(Value::Uint(u64::from(u32::from(*b))))
                }
                _ => None,
            }),
            Value::Str(s) => self.map_text(s, hostname).map(Value::Str),
            Value::Bytes(b) => {
                let s = std::str::from_utf8(b).ok()?;
                self.map_text(s, hostname)
                    .map(|t| Value::Bytes(t.into_bytes().into()))
            }
            Value::Int(_) => None,
        }
    }

    /// `s` with the addresses written as text, and (in host names) the names, replaced;
    /// `None` if nothing changed. The address texts are formatted on the stack and `s` is
    /// copied only where something is replaced: most host-name fields hold none of them.
    fn map_text(&self, s: &str, hostname: bool) -> Option<String> {
        let mut out: Option<String> = None;
        let mut replace = |from: &str, to: &str| {
            if let Some(t) = replace_one(out.as_deref().unwrap_or(s), from, to) {
                out = Some(t);
            }
        };
        for (a, b) in &self.addresses {
            replace(IpText::of(a).as_str(), IpText::of(b).as_str());
        }
        if hostname {
            for (a, b) in &self.names {
                replace(a, b);
            }
        }
        out
    }
}

/// An address as text, in a buffer on the stack (the longest IPv6 text is 45 bytes).
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    fn of(ip: &IpAddr) -> IpText {
        use std::io::Write;
        let mut buf = [0u8; 48];
        let mut rest = &mut buf[..];
        // An address's text always fits: the write cannot fail.
        let _ = write!(rest, "{ip}");
        let len = 48 - rest.len();
        IpText { buf, len }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl Rewrite<'_> {
    /// Rewrites `msg` in place and encodes it (every length recomputed); the first field that
    /// refused its new value is the error.
    pub fn apply(&mut self, msg: &mut dyn AnyMessage) -> Result<Bytes, RewriteError> {
        msg.visit_mut(self);
        if let Some((field, error)) = self.errors.drain(..).next() {
            return Err(RewriteError::Field { field, error });
        }
        let mut out = BytesMut::new();
        msg.encode(&mut out)?;
        Ok(out.freeze())
    }
}

impl Default for Rewrite<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Replaces every occurrence of `from` in `s` (ASCII case ignored) that stands alone (not
/// inside a longer name or number) by `to`; `None` if nothing changed. Nothing is allocated
/// unless something is replaced.
fn replace_one(s: &str, from: &str, to: &str) -> Option<String> {
    if from.is_empty() || from == to {
        return None;
    }
    let (hay, needle) = (s.as_bytes(), from.as_bytes());
    let word = |c: Option<&u8>| c.is_some_and(u8::is_ascii_alphanumeric);
    let mut result: Option<String> = None;
    let (mut last, mut at) = (0, 0);
    while at + needle.len() <= hay.len() {
        let end = at + needle.len();
        if !hay[at..end].eq_ignore_ascii_case(needle) {
            at += 1;
            continue;
        }
        // A whole UTF-8 needle matches only on character boundaries, so `s[..at]` is valid.
        if !word(at.checked_sub(1).and_then(|i| hay.get(i))) && !word(hay.get(end)) {
            let r = result.get_or_insert_with(|| String::with_capacity(s.len() + to.len()));
            r.push_str(&s[last..at]);
            r.push_str(to);
            last = end;
        }
        at = end;
    }
    let mut r = result?;
    r.push_str(&s[last..]);
    Some(r)
}

impl VisitorMut for Rewrite<'_> {
    fn field(&mut self, name: &'static str, class: Class, value: &mut dyn FieldValue) {
        let Class::Role(role) = class else { return };
        if let Some(new) = self.new_value(role, &value.value()) {
            if let Err(e) = value.set(new) {
                self.errors.push((name.to_string(), e));
            }
        }
    }
}

/// Random bytes from the kernel (nonces: NTLMSSP server challenges and the like).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    // getrandom(2): one system call per session (opening /dev/urandom took three).
    let mut filled = 0;
    while filled < n {
        // SAFETY: the kernel writes at most `n - filled` bytes into `b[filled..]`, which is
        // that long and lives for the call.
        let r = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), n - filled, 0) };
        match usize::try_from(r) {
            Ok(got) if got > 0 => filled += got,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    if filled == n {
        return b;
    }
    // No getrandom: derive bytes from the clock, still different per session.
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (i, x) in b.iter_mut().enumerate() {
        *x = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_names_only() {
        assert_eq!(
            replace_one("\\\\127.0.0.1\\IPC$", "127.0.0.1", "127.0.0.77").as_deref(),
            Some("\\\\127.0.0.77\\IPC$")
        );
        assert_eq!(replace_one("127.0.0.11", "127.0.0.1", "127.0.0.77"), None);
        assert_eq!(
            replace_one("\\\\FILESRV01\\IPC$", "filesrv01", "HONEY5").as_deref(),
            Some("\\\\HONEY5\\IPC$")
        );
        assert_eq!(replace_one("a.b.a", "A", "xy").as_deref(), Some("xy.b.xy"));
        assert_eq!(replace_one("ab a", "a", "a"), None);
        let mut rw = Rewrite::new();
        rw.addresses = vec![("::1".parse().unwrap(), "10.0.0.1".parse().unwrap())];
        assert_eq!(
            rw.map_text("[::1]:445", false).as_deref(),
            Some("[10.0.0.1]:445")
        );
    }
}
