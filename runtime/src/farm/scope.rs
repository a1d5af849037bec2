//! Telescope prefixes: what a listener watches, the socket address it binds for it, and the
//! start-up check that the kernel really delivers the prefix to this host ("AnyIP": the prefix
//! routed as `local`, so one socket on the unspecified address accepts for every address of it).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use super::command::{self, CommandError};

/// An address prefix (`198.18.0.0/24`, `2001:db8::/64`; a bare address is a single-address
/// prefix). Host bits are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    #[error("`{0}`: not an address or ADDRESS/LENGTH")]
    Syntax(String),
    #[error("`{0}`: the length is longer than the address ({1} bits)")]
    Length(String, u8),
}

/// Why a prefix is not watched by this host.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(
        "{prefix} is not routed to this host ({addr}: `ip route get {addr}` says `{said}`): \
         run `ip route add local {prefix} dev lo` (as root) first"
    )]
    NotLocal {
        prefix: Prefix,
        addr: IpAddr,
        said: String,
    },
    #[error("checking the route of {prefix} ({addr}): {error}")]
    Command {
        prefix: Prefix,
        addr: IpAddr,
        error: CommandError,
    },
}

fn bits(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v) => (u32::from(v) as u128, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn from_bits(v: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

impl Prefix {
    /// The prefix of `len` bits of `addr` (host bits cleared), if `len` fits.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let (v, width) = bits(addr);
        (len <= width).then(|| Prefix {
            addr: from_bits(v & Self::mask(len, width), width),
            len,
        })
    }

    fn mask(len: u8, width: u8) -> u128 {
        let all = if width == 32 {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        all & !all.checked_shr(u32::from(len)).unwrap_or(0)
    }

    /// True for a single address (`/32`, `/128`).
    pub fn is_single(&self) -> bool {
        self.len == bits(self.addr).1
    }

    pub fn first(&self) -> IpAddr {
        self.addr
    }

    pub fn last(&self) -> IpAddr {
        let (v, width) = bits(self.addr);
        from_bits(
            v | (!Self::mask(self.len, width) & Self::mask(width, width)),
            width,
        )
    }

    /// Whether `a` lies in the prefix (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, a: IpAddr) -> bool {
        let a = match a {
            IpAddr::V6(v) => v.to_ipv4_mapped().map_or(a, IpAddr::V4),
            v4 => v4,
        };
        let ((v, w), (p, pw)) = (bits(a), bits(self.addr));
        w == pw && v & Self::mask(self.len, w) == p
    }

    /// The address a listener for the prefix binds: the prefix's own for a single address,
    /// else the unspecified address of its family (accepting for every local address).
    pub fn bind_address(&self) -> IpAddr {
        match self.addr {
            a if self.is_single() => a,
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }

    /// Checks that the prefix's first and last addresses are routed to this host as `local`
    /// (127.0.0.0/8 and ::1 always are). Runs `ip route get`.
    pub fn check_routed(&self) -> Result<(), RouteError> {
        let loopback = Prefix::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8).expect("/8 fits");
        if loopback.contains(self.first()) && loopback.contains(self.last())
            || self.first().is_loopback() && self.is_single()
        {
            return Ok(());
        }
        for addr in [self.first(), self.last()] {
            // A failure (an unreachable address) is an answer too: not local.
            let said = match command::run("ip", &["route", "get", &addr.to_string()], None) {
                Ok(answer) => answer,
                Err(CommandError::Failed { said, .. }) => said,
                Err(error) => {
                    return Err(RouteError::Command {
                        prefix: *self,
                        addr,
                        error,
                    })
                }
            };
            if !says_local(&said) {
                return Err(RouteError::NotLocal {
                    prefix: *self,
                    addr,
                    said: said.trim().lines().next().unwrap_or("").to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Whether `ip route get`'s answer delivers the address to this host (`local ADDR dev ...`).
pub fn says_local(answer: &str) -> bool {
    answer.trim_start().starts_with("local ")
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let syntax = || PrefixError::Syntax(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (
                a.parse::<IpAddr>().map_err(|_| syntax())?,
                Some(l.parse::<u8>().map_err(|_| syntax())?),
            ),
            None => (s.parse::<IpAddr>().map_err(|_| syntax())?, None),
        };
        let width = bits(addr).1;
        let len = len.unwrap_or(width);
        Prefix::new(addr, len).ok_or_else(|| PrefixError::Length(s.to_string(), width))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// What one listener watches: the prefixes configured for its port. Connections whose
/// telescope (local) address is outside all of them are reset and counted.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    prefixes: Vec<Prefix>,
}

impl Scope {
    /// A scope of `prefixes`; empty, it takes every address.
    pub fn new(prefixes: Vec<Prefix>) -> Scope {
        Scope { prefixes }
    }

    pub fn contains(&self, telescope: SocketAddr) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| p.contains(telescope.ip()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_parse_clear_host_bits_and_span_their_range() {
        let v4 = p("198.18.0.77/24");
        assert_eq!(v4.to_string(), "198.18.0.0/24");
        assert_eq!(v4.last().to_string(), "198.18.0.255");
        assert!(v4.contains("198.18.0.200".parse().unwrap()));
        assert!(v4.contains("::ffff:198.18.0.1".parse().unwrap()));
        assert!(!v4.contains("198.18.1.0".parse().unwrap()));
        assert_eq!(v4.bind_address().to_string(), "0.0.0.0");
        let v6 = p("2001:db8::1/64");
        assert_eq!(v6.first().to_string(), "2001:db8::");
        assert_eq!(v6.last().to_string(), "2001:db8::ffff:ffff:ffff:ffff");
        assert_eq!(v6.bind_address().to_string(), "::");
        let one = p("198.18.0.9");
        assert!(one.is_single());
        assert_eq!(one.bind_address().to_string(), "198.18.0.9");
        assert_eq!(p("0.0.0.0/0").last().to_string(), "255.255.255.255");
        assert!(matches!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(PrefixError::Length(..))
        ));
        assert!(matches!(
            "10.0.0/8".parse::<Prefix>(),
            Err(PrefixError::Syntax(..))
        ));
    }

    #[test]
    fn the_route_check_wants_local_and_names_the_fix() {
        assert!(says_local(
            "local 198.18.0.1 dev lo table local src 198.18.0.1 uid 0"
        ));
        assert!(!says_local("198.18.0.1 via 10.0.0.1 dev eth0 src 10.0.0.2"));
        assert!(!says_local("RTNETLINK answers: Network is unreachable"));
        p("127.0.0.0/8").check_routed().unwrap();
        p("127.9.9.9").check_routed().unwrap();
        // The documentation range is never local on a host that has not been told so.
        let e = p("192.0.2.0/24").check_routed().unwrap_err().to_string();
        assert!(
            e.contains("ip route add local 192.0.2.0/24 dev lo") || e.contains("running"),
            "{e}"
        );
    }

    #[test]
    fn a_scope_takes_its_prefixes_only() {
        let s = Scope::new(vec![p("198.18.0.0/24"), p("203.0.113.5")]);
        assert!(s.contains("198.18.0.3:445".parse().unwrap()));
        assert!(s.contains("203.0.113.5:445".parse().unwrap()));
        assert!(!s.contains("203.0.113.6:445".parse().unwrap()));
        assert!(Scope::default().contains("192.0.2.1:1".parse().unwrap()));
    }
}
