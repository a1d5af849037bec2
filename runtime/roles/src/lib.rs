//! The roles a field can play beyond its content (see ARCHITECTURE.md, "Field roles"), defined
//! once: the compiler parses them from `@role(...)` annotations into `Role<String>`, writes
//! them into generated code as `Role<&'static str>` statics (see [`Role::rust_expr`]), and the
//! runtime matches and rewrites by them. Adding a role means adding it here and teaching the
//! compiler its arguments.
//!
//! Dependency-free, so the compiler's build-time graph stays small.

use std::fmt;

/// What a length counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeUnit {
    Bytes,
    Elements,
    /// Two-byte words (SMB WordCount, UTF-16 code units).
    Words,
}

impl SizeUnit {
    /// Every unit, in the order the DSL documents them.
    pub const ALL: [SizeUnit; 3] = [SizeUnit::Bytes, SizeUnit::Elements, SizeUnit::Words];

    /// The DSL name (`@length(of = x, unit = words)`).
    pub fn name(self) -> &'static str {
        match self {
            SizeUnit::Bytes => "bytes",
            SizeUnit::Elements => "elements",
            SizeUnit::Words => "words",
        }
    }

    /// The unit named `name` in the DSL.
    pub fn from_name(name: &str) -> Option<SizeUnit> {
        SizeUnit::ALL.into_iter().find(|u| u.name() == name)
    }

    /// Bytes per unit, for lengths that limit a decode (elements count as one).
    pub fn bytes(self) -> u64 {
        match self {
            SizeUnit::Words => 2,
            _ => 1,
        }
    }

    fn variant(self) -> &'static str {
        match self {
            SizeUnit::Bytes => "Bytes",
            SizeUnit::Elements => "Elements",
            SizeUnit::Words => "Words",
        }
    }
}

/// Which side hands out a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Issuer {
    Client,
    Server,
}

impl Issuer {
    /// The DSL name (`issuer = client`).
    pub fn name(self) -> &'static str {
        match self {
            Issuer::Client => "client",
            Issuer::Server => "server",
        }
    }

    /// The issuer named `name` in the DSL.
    pub fn from_name(name: &str) -> Option<Issuer> {
        [Issuer::Client, Issuer::Server]
            .into_iter()
            .find(|i| i.name() == name)
    }
}

/// The DSL names of the roles, in the order diagnostics list them.
pub const DSL_NAMES: &[&str] = &[
    "length",
    "count",
    "offset",
    "cookie",
    "address",
    "port",
    "hostname",
    "timestamp",
    "nonce",
    "volatile",
    "signature",
    "artifact",
    "choice",
    "index",
];

/// What a field means beyond its content. `S` is the string type: `&'static str` in generated
/// code and the runtime, `String` in the compiler.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role<S = &'static str> {
    /// `value = size(of) / unit + add`, recomputed on encode (`@length`, or `@count` in
    /// elements).
    Length {
        of: S,
        unit: SizeUnit,
        add: i64,
    },
    /// `value = position(of) - anchor(from) + add`, recomputed on encode.
    Offset {
        of: S,
        from: S,
        add: i64,
    },
    /// A transaction id, session id or handle: consistent per namespace, mapped per session.
    Cookie {
        namespace: S,
        issuer: Issuer,
    },
    Address,
    Port,
    Hostname,
    Timestamp {
        format: S,
    },
    Nonce,
    Volatile,
    Signature,
    /// Bytes the sender writes to a file (captured by the farm): the file is named by the last
    /// cookie of namespace `key` before this field, the position by the last field named
    /// `offset` before it (`""`: appended).
    Artifact {
        key: S,
        offset: S,
    },
    /// One of the options a sender offers (SMB dialects): the options are matched as a set
    /// that must hold the one a script's peer chose.
    Choice {
        list: S,
    },
    /// The position, in the other side's `Choice` options of this list, of the one chosen:
    /// recomputed when the options differ.
    Index {
        list: S,
    },
}

impl<S: AsRef<str>> Role<S> {
    /// The roles that take no arguments, by DSL name.
    pub fn plain(name: &str) -> Option<Role<S>> {
        Some(match name {
            "address" => Role::Address,
            "port" => Role::Port,
            "hostname" => Role::Hostname,
            "nonce" => Role::Nonce,
            "volatile" => Role::Volatile,
            "signature" => Role::Signature,
            _ => return None,
        })
    }

    /// Lengths, counts and offsets: computed by the encoder, never set by hand.
    pub fn is_derived(&self) -> bool {
        matches!(self, Role::Length { .. } | Role::Offset { .. })
    }

    /// The DSL name (`count` for a length in elements).
    pub fn name(&self) -> &'static str {
        match self {
            Role::Length {
                unit: SizeUnit::Elements,
                ..
            } => "count",
            Role::Length { .. } => "length",
            Role::Offset { .. } => "offset",
            Role::Cookie { .. } => "cookie",
            Role::Address => "address",
            Role::Port => "port",
            Role::Hostname => "hostname",
            Role::Timestamp { .. } => "timestamp",
            Role::Nonce => "nonce",
            Role::Volatile => "volatile",
            Role::Signature => "signature",
            Role::Artifact { .. } => "artifact",
            Role::Choice { .. } => "choice",
            Role::Index { .. } => "index",
        }
    }

    /// What the role means, in a sentence (the `Role:` line of a generated field's docs).
    pub fn describe(&self) -> String {
        match self {
            Role::Length { of, unit, add } => format!(
                "length of `{}` in {}, plus {add}; recomputed on encode",
                of.as_ref(),
                unit.name()
            ),
            Role::Offset { of, from, add } => format!(
                "offset of `{}` from anchor `{}`, plus {add}; recomputed on encode",
                of.as_ref(),
                from.as_ref()
            ),
            Role::Cookie { namespace, issuer } => format!(
                "cookie `{}` issued by the {}",
                namespace.as_ref(),
                issuer.name()
            ),
            Role::Hostname => "host name".into(),
            Role::Timestamp { format } => format!("timestamp ({})", format.as_ref()),
            Role::Choice { list } => format!("one of the options of list `{}`", list.as_ref()),
            Role::Index { list } => format!(
                "the position of the option chosen from list `{}`",
                list.as_ref()
            ),
            Role::Artifact { key, offset } if offset.as_ref().is_empty() => format!(
                "bytes written to the file named by cookie `{}`",
                key.as_ref()
            ),
            Role::Artifact { key, offset } => format!(
                "bytes written to the file named by cookie `{}`, at `{}`",
                key.as_ref(),
                offset.as_ref()
            ),
            other => other.name().into(),
        }
    }

    /// This role as a Rust constant expression of type `Role<&'static str>`, with `path` the
    /// path of the module that re-exports this crate's types (generated code writes its role
    /// statics with it).
    pub fn rust_expr(&self, path: &str) -> String {
        let s = |v: &S| format!("{:?}", v.as_ref());
        let body = match self {
            Role::Length { of, unit, add } => format!(
                "Length {{ of: {}, unit: {path}::SizeUnit::{}, add: {add}i64 }}",
                s(of),
                unit.variant()
            ),
            Role::Offset { of, from, add } => format!(
                "Offset {{ of: {}, from: {}, add: {add}i64 }}",
                s(of),
                s(from)
            ),
            Role::Cookie { namespace, issuer } => format!(
                "Cookie {{ namespace: {}, issuer: {path}::Issuer::{:?} }}",
                s(namespace),
                issuer
            ),
            Role::Timestamp { format } => format!("Timestamp {{ format: {} }}", s(format)),
            Role::Artifact { key, offset } => {
                format!("Artifact {{ key: {}, offset: {} }}", s(key), s(offset))
            }
            Role::Choice { list } => format!("Choice {{ list: {} }}", s(list)),
            Role::Index { list } => format!("Index {{ list: {} }}", s(list)),
            Role::Address => "Address".into(),
            Role::Port => "Port".into(),
            Role::Hostname => "Hostname".into(),
            Role::Nonce => "Nonce".into(),
            Role::Volatile => "Volatile".into(),
            Role::Signature => "Signature".into(),
        };
        format!("{path}::Role::{body}")
    }
}

/// As dissect and scripts show a role: `length(of=payload)`, `cookie(smb.mid, client)`.
impl<S: AsRef<str>> fmt::Display for Role<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Length { of, add, .. } if *add != 0 => {
                write!(f, "{}(of={}, add={add})", self.name(), of.as_ref())
            }
            Role::Length { of, .. } => write!(f, "{}(of={})", self.name(), of.as_ref()),
            Role::Offset { of, from, .. } => {
                write!(f, "offset(of={}, from={})", of.as_ref(), from.as_ref())
            }
            Role::Cookie { namespace, issuer } => {
                write!(f, "cookie({}, {})", namespace.as_ref(), issuer.name())
            }
            Role::Timestamp { format } => write!(f, "timestamp({})", format.as_ref()),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dsl_name_names_a_role() {
        for name in DSL_NAMES {
            let known = Role::<&str>::plain(name).is_some()
                || matches!(
                    *name,
                    "length"
                        | "count"
                        | "offset"
                        | "cookie"
                        | "timestamp"
                        | "artifact"
                        | "choice"
                        | "index"
                );
            assert!(known, "{name}");
        }
        assert_eq!(Role::<&str>::plain("port"), Some(Role::Port));
        assert_eq!(Role::<&str>::plain("length"), None);
    }

    #[test]
    fn display_and_describe() {
        let r: Role<String> = Role::Cookie {
            namespace: "smb.mid".into(),
            issuer: Issuer::Client,
        };
        assert_eq!(r.to_string(), "cookie(smb.mid, client)");
        assert_eq!(r.describe(), "cookie `smb.mid` issued by the client");
        let c: Role = Role::Length {
            of: "dialects",
            unit: SizeUnit::Elements,
            add: 1,
        };
        assert_eq!(c.to_string(), "count(of=dialects, add=1)");
        assert_eq!(
            c.describe(),
            "length of `dialects` in elements, plus 1; recomputed on encode"
        );
        assert_eq!(SizeUnit::from_name("words"), Some(SizeUnit::Words));
        assert_eq!(Issuer::from_name("server"), Some(Issuer::Server));
    }

    #[test]
    fn rust_expr_names_the_path() {
        let r: Role<String> = Role::Offset {
            of: "data".into(),
            from: "smb".into(),
            add: -4,
        };
        assert_eq!(
            r.rust_expr("rt"),
            "rt::Role::Offset { of: \"data\", from: \"smb\", add: -4i64 }"
        );
        let l: Role<&str> = Role::Length {
            of: "x",
            unit: SizeUnit::Words,
            add: 0,
        };
        assert_eq!(
            l.rust_expr("rt"),
            "rt::Role::Length { of: \"x\", unit: rt::SizeUnit::Words, add: 0i64 }"
        );
    }
}
