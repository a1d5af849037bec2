//! Containment: what a honeypot may send out, as a checked policy file turned into an nftables
//! ruleset that the `netns` backend loads into each honeypot's namespace before the honeypot
//! starts. The kernel enforces it, so it holds when the farm dies.
//!
//! A packet leaving the namespace is matched against the rules in order (destination prefix,
//! protocol, port); the first match decides: `drop`, `allow` (only towards a configured sink),
//! `reflect` (TCP: the connection is redirected to the farm's listener inside the namespace,
//! which hands it to another honeypot that takes the destination's identity) or `rate-limit`
//! (new connections per second and bytes per second, the excess dropped). Nothing matched is
//! dropped. Every rule counts what it decided (nft counters, read per interval into the event
//! store's `containment` table, see `containment_log`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use serde::Deserialize;

use super::scope::Prefix;

/// A policy file that is not a valid policy: where (file:line:col) and why.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    At {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
}

/// What a rule does with what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Drop,
    Allow,
    Reflect,
    RateLimit,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Drop => "drop",
            Action::Allow => "allow",
            Action::Reflect => "reflect",
            Action::RateLimit => "rate-limit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    fn nft(self, v6: bool) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp if v6 => "ipv6-icmp",
            Proto::Icmp => "icmp",
        }
    }
}

/// One rule, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    to: Option<toml::Spanned<String>>,
    #[serde(default)]
    proto: Option<Proto>,
    #[serde(default)]
    port: Option<toml::Spanned<u16>>,
    action: toml::Spanned<Action>,
    #[serde(default)]
    connections_per_sec: Option<toml::Spanned<u32>>,
    #[serde(default)]
    bytes_per_sec: Option<u64>,
    #[serde(default)]
    log: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    sinks: Vec<toml::Spanned<String>>,
    #[serde(default)]
    reflect_port: Option<u16>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Destination prefix (`0.0.0.0/0` when the file names none).
    pub to: Prefix,
    /// `None`: every protocol.
    pub proto: Option<Proto>,
    pub port: Option<u16>,
    pub action: Action,
    /// Rate-limit: new connections per second (the burst is as large).
    pub connections_per_sec: u32,
    /// Rate-limit: bytes per second, the excess dropped (`None`: unbounded).
    pub bytes_per_sec: Option<u64>,
    /// Also log each match (nft `log`, to the kernel log).
    pub log: bool,
}

/// A checked containment policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub sinks: Vec<Prefix>,
    pub rules: Vec<Rule>,
    /// The port (inside each honeypot's namespace) of the farm's listener for reflected
    /// connections.
    pub reflect_port: u16,
}

/// The default [`Policy::reflect_port`].
pub const REFLECT_PORT: u16 = 4450;

/// What a honeypot's ruleset is made for.
#[derive(Debug, Clone)]
pub struct Site<'a> {
    /// The nftables table (the backend's name prefix).
    pub table: &'a str,
    /// The farm's end of the honeypot's veth: the only source the honeypot accepts.
    pub farm: Ipv4Addr,
    /// The honeypot's own link address.
    pub link: Ipv4Addr,
    /// The port the honeypot serves.
    pub port: u16,
    /// A VM's honeypot: the guest behind a tap in the namespace (its traffic is forwarded, so
    /// the policy holds in the forward chain too).
    pub vm: Option<VmLink<'a>>,
}

/// A VM in a honeypot's namespace: the tap its NIC is on and the guest's fixed address.
#[derive(Debug, Clone, Copy)]
pub struct VmLink<'a> {
    pub tap: &'a str,
    pub guest: Ipv4Addr,
    /// The guest's SMB port (the farm's connections to the honeypot's port are DNATed to it).
    pub guest_port: u16,
}

/// Line and column (1-based) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Policy {
    /// Nothing goes out (the default when no policy file is configured).
    pub fn deny_all() -> Policy {
        Policy {
            sinks: Vec::new(),
            rules: Vec::new(),
            reflect_port: REFLECT_PORT,
        }
    }

    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a policy; errors name `path:line:col`.
    pub fn parse(text: &str, path: &str) -> Result<Policy, PolicyError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, col) = line_col(text, span.start);
            PolicyError::At {
                path: path.to_string(),
                line,
                col,
                message,
            }
        };
        let raw: RawPolicy = toml::from_str(text)
            .map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim_end().to_string()))?;
        let prefix = |s: &toml::Spanned<String>| {
            s.get_ref()
                .parse::<Prefix>()
                .map_err(|e| at(s.span(), e.to_string()))
        };
        let sinks = raw
            .sinks
            .iter()
            .map(prefix)
            .collect::<Result<Vec<_>, _>>()?;
        let mut rules = Vec::new();
        for r in &raw.rules {
            let to = match &r.to {
                Some(s) => prefix(s)?,
                None => Prefix::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("/0 fits"),
            };
            let action = *r.action.get_ref();
            let here = |message: &str| at(r.action.span(), message.to_string());
            if let Some(p) = &r.port {
                if !matches!(r.proto, Some(Proto::Tcp | Proto::Udp)) {
                    return Err(at(
                        p.span(),
                        "a port needs proto = \"tcp\" or \"udp\"".into(),
                    ));
                }
            }
            match action {
                Action::Reflect if r.proto != Some(Proto::Tcp) => {
                    return Err(here("reflect is for TCP: it needs proto = \"tcp\""))
                }
                Action::Allow
                    if !sinks
                        .iter()
                        .any(|s| s.contains(to.first()) && s.contains(to.last())) =>
                {
                    let span = r.to.as_ref().map_or(r.action.span(), |t| t.span());
                    return Err(at(
                        span,
                        format!("allow only leads to a sink: {to} is not inside any of `sinks`"),
                    ));
                }
                Action::RateLimit if r.connections_per_sec.is_none() => {
                    return Err(here("rate-limit needs connections_per_sec"))
                }
                _ => {}
            }
            let connections_per_sec = match &r.connections_per_sec {
                Some(c) if action != Action::RateLimit => {
                    return Err(at(c.span(), "connections_per_sec is for rate-limit".into()))
                }
                Some(c) if *c.get_ref() == 0 => {
                    return Err(at(
                        c.span(),
                        "connections_per_sec must be at least 1".into(),
                    ))
                }
                Some(c) => *c.get_ref(),
                None => 0,
            };
            rules.push(Rule {
                to,
                proto: r.proto,
                port: r.port.as_ref().map(|p| *p.get_ref()),
                action,
                connections_per_sec,
                bytes_per_sec: r.bytes_per_sec,
                log: r.log,
            });
        }
        Ok(Policy {
            sinks,
            rules,
            reflect_port: raw.reflect_port.unwrap_or(REFLECT_PORT),
        })
    }

    /// Whether a rule reflects (the backend then runs a listener in each namespace).
    pub fn reflects(&self) -> bool {
        self.rules.iter().any(|r| r.action == Action::Reflect)
    }

    /// The nftables script of a honeypot's namespace: its own table, replaced as a whole.
    /// Input: the farm's connections to the honeypot's port and answers to what the policy let
    /// out. Output: loopback and the namespace's own addresses (`oifname` is the route before
    /// a redirect: reflected connections are let through by their local destination), answers
    /// to the farm, then the policy's rules (chain `contain`), then drop. NAT:
    /// `dnat` (the farm's connections to the link address reach the telescope address, added
    /// at lease time), `snat` by the farm's source port (the honeypot sees the attacker's
    /// address, put in the `peers` map per connection), `redirect` for reflected connections.
    ///
    /// With a VM ([`Site::vm`]) the honeypot is the guest behind the tap: the farm's
    /// connections are DNATed to the guest's address at once and SNATed to the attacker's as
    /// they leave for the tap (no SNAT: the guest sees the farm), and what the guest sends is
    /// forwarded through the same `contain` chain (its reflected connections redirected as it
    /// enters from the tap).
    pub fn ruleset(&self, site: &Site) -> String {
        let t = site.table;
        let mut out = String::new();
        let mut nat_out = String::new();
        for (i, r) in self.rules.iter().enumerate() {
            let m = r.matcher();
            let log = |what: &str| {
                if r.log {
                    format!("log prefix \"{t} {i} {what} \" ")
                } else {
                    String::new()
                }
            };
            let tag = |what: &str| format!("comment \"{i} {what}\"");
            match r.action {
                Action::Drop | Action::Allow => {
                    let (verdict, name) = if r.action == Action::Drop {
                        ("drop", "drop")
                    } else {
                        ("accept", "allow")
                    };
                    out += &format!("    {m} {}counter {verdict} {}\n", log(name), tag(name));
                }
                Action::Reflect => {
                    nat_out += &format!(
                        "    {m} {}counter redirect to :{} {}\n",
                        log("reflect"),
                        self.reflect_port,
                        tag("reflect")
                    );
                    // What was not redirected (an answer on a reflected connection is loopback).
                    out += &format!("    {m} counter drop {}\n", tag("reflect-drop"));
                }
                Action::RateLimit => {
                    if let Some(b) = r.bytes_per_sec {
                        out += &format!(
                            "    {m} limit rate over {b} bytes/second counter drop {}\n",
                            tag("rate-bytes-drop")
                        );
                    }
                    let n = r.connections_per_sec;
                    out += &format!(
                        "    {m} ct state new limit rate {n}/second burst {n} packets {}counter accept {}\n",
                        log("rate"),
                        tag("rate")
                    );
                    out += &format!(
                        "    {m} ct state established,related counter accept {}\n",
                        tag("rate-established")
                    );
                    out += &format!("    {m} counter drop {}\n", tag("rate-drop"));
                }
            }
        }
        let Site {
            farm,
            link,
            port,
            vm,
            ..
        } = site;
        let (mut forward, mut dnat, mut vm_input, mut vm_nat) =
            (String::new(), String::new(), String::new(), String::new());
        if let Some(VmLink {
            tap,
            guest,
            guest_port,
        }) = vm
        {
            forward = format!(
                "    ct direction reply accept
    oifname \"{tap}\" ip saddr {farm} ip daddr {guest} tcp dport {guest_port} accept
    iifname \"{tap}\" jump contain\n"
            );
            dnat =
                format!("    ip daddr {link} tcp dport {port} dnat ip to {guest}:{guest_port}\n");
            vm_input = format!(
                "    iifname \"{tap}\" tcp dport {} ct status dnat accept\n",
                self.reflect_port
            );
            vm_nat = format!(
                "  chain reflect_in {{
    type nat hook prerouting priority -90;
    iifname != \"{tap}\" return
{nat_out}  }}
  chain nat_post {{
    type nat hook postrouting priority 100;
    oifname \"{tap}\" ip saddr {farm} snat ip to tcp sport map @peers
  }}\n"
            );
        }
        format!(
            "table inet {t}\ndelete table inet {t}\ntable inet {t} {{
  map peers {{ type inet_service : ipv4_addr; flags timeout; }}
  chain contain {{
{out}    counter comment \"default drop\"
  }}
  chain input {{
    type filter hook input priority 0; policy drop;
    iifname \"lo\" accept
    ct state established,related accept
    ip saddr {farm} tcp dport {port} ct state new accept
{vm_input}    counter comment \"in-default drop\"
  }}
  chain output {{
    type filter hook output priority 0; policy drop;
    oifname \"lo\" accept
    fib daddr type local accept
    ct direction reply accept
    jump contain
  }}
  chain forward {{
    type filter hook forward priority 0; policy drop;
{forward}  }}
  chain prerouting {{
    type nat hook prerouting priority -100;
{dnat}  }}
  chain nat_input {{
    type nat hook input priority 100;
    ip saddr {farm} snat ip to tcp sport map @peers
  }}
  chain nat_output {{
    type nat hook output priority -100;
    oifname \"lo\" return
{nat_out}  }}
{vm_nat}}}
# link {link}
"
        )
    }
}

impl Rule {
    /// The nft match of the rule's destination, protocol and port.
    fn matcher(&self) -> String {
        let v6 = matches!(self.to.first(), IpAddr::V6(_));
        let family = if v6 { "ip6" } else { "ip" };
        let mut m = format!("{family} daddr {}", self.to);
        if Prefix::new(self.to.first(), 0) == Some(self.to) {
            m = format!("meta nfproto ipv{}", if v6 { 6 } else { 4 });
        }
        if let Some(p) = self.proto {
            m += &format!(" meta l4proto {}", p.nft(v6));
        }
        if let (Some(port), Some(p)) = (self.port, self.proto) {
            m += &format!(" {} dport {port}", p.nft(v6));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../docs/containment.example.toml");

    #[test]
    fn the_documented_example_is_a_valid_policy() {
        let p = Policy::parse(EXAMPLE, "example").unwrap();
        assert!(p.reflects());
        assert_eq!(p.rules.len(), 4);
    }

    fn err(text: &str) -> String {
        Policy::parse(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn bad_policies_are_refused_at_file_line_col() {
        assert_eq!(
            err("[[rule]]\naction = \"drop\"\nto = \"10.0.0.0/33\"\n"),
            "p.toml:3:6: `10.0.0.0/33`: the length is longer than the address (32 bits)"
        );
        assert!(err("[[rule]]\naction = \"explode\"\n").starts_with("p.toml:2:10: unknown variant"));
        assert!(err("[[rule]]\naction = \"drop\"\ncolour = 1\n")
            .starts_with("p.toml:3:1: unknown field"));
        assert_eq!(
            err("sinks = [\"192.0.2.0/24\"]\n[[rule]]\naction = \"allow\"\nto = \"8.8.8.8\"\n"),
            "p.toml:4:6: allow only leads to a sink: 8.8.8.8/32 is not inside any of `sinks`"
        );
        assert_eq!(
            err("[[rule]]\naction = \"reflect\"\nproto = \"udp\"\n"),
            "p.toml:2:10: reflect is for TCP: it needs proto = \"tcp\""
        );
        assert_eq!(
            err("[[rule]]\naction = \"drop\"\nport = 80\n"),
            "p.toml:3:8: a port needs proto = \"tcp\" or \"udp\""
        );
        assert_eq!(
            err("[[rule]]\naction = \"rate-limit\"\n"),
            "p.toml:2:10: rate-limit needs connections_per_sec"
        );
    }

    #[test]
    fn the_ruleset_denies_by_default_and_orders_the_rules() {
        let p = Policy::parse(EXAMPLE, "example").unwrap();
        let s = p.ruleset(&Site {
            table: "hfn",
            farm: Ipv4Addr::new(10, 231, 255, 254),
            link: Ipv4Addr::new(10, 231, 0, 2),
            port: 445,
            vm: None,
        });
        assert!(s.contains("policy drop;"), "{s}");
        assert!(
            s.contains("meta nfproto ipv4 meta l4proto tcp tcp dport 445"),
            "{s}"
        );
        assert!(s.contains("counter comment \"default drop\""), "{s}");
        assert!(s.contains("redirect to :4450 comment \"0 reflect\""), "{s}");
        let allow = s.find("\"1 allow\"").unwrap();
        let rate = s.find("\"2 rate\"").unwrap();
        let drop = s.find("\"default drop\"").unwrap();
        assert!(allow < rate && rate < drop, "{s}");
    }
}
