//! Field roles and the visitors through which the runtime sees every field of a message
//! without naming its protocol: the role fields to rewrite, the content fields to match on.

use std::fmt;

use super::value::{FieldValue, Value};

/// The roles themselves are defined once, for the compiler too, in `honeyfarm-roles`.
pub use honeyfarm_roles::{Issuer, Role, SizeUnit};

/// How a leaf field takes part in matching and rewriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Plain content: must be equal for two messages to match.
    Content,
    /// A field with a declared role.
    Role(&'static Role),
    /// Layout kept for exactness (padding, gaps, reserved bits, line ends, the case of a
    /// keyword): neither matched nor rewritten.
    Layout,
}

/// Walks a message's fields read-only. Nested units, array elements and switch variants are
/// bracketed by `enter`/`leave`.
pub trait Visitor {
    fn enter(&mut self, _name: &str) {}
    fn leave(&mut self) {}
    fn field(&mut self, name: &'static str, class: Class, value: &dyn FieldValue);
}

/// Walks a message's fields with the right to change them.
pub trait VisitorMut {
    fn enter(&mut self, _name: &str) {}
    fn leave(&mut self) {}
    fn field(&mut self, name: &'static str, class: Class, value: &mut dyn FieldValue);
}

/// One role field found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleField {
    /// Dotted path from the message root: `payload.body.Negotiate.dialects.0.name`.
    pub path: String,
    pub role: &'static Role,
    pub value: Value,
}

/// `path@role=value`, as dissect, scripts and events show a role field.
impl fmt::Display for RoleField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}={}", self.path, self.role.name(), self.value)
    }
}

/// Collects every role field, in wire order.
#[derive(Debug, Default)]
pub struct RoleFields {
    stack: Vec<String>,
    pub fields: Vec<RoleField>,
}

impl RoleFields {
    pub fn of(msg: &impl super::Message) -> Vec<RoleField> {
        let mut v = RoleFields::default();
        msg.visit(&mut v);
        v.fields
    }

    /// [`RoleFields::of`] for a message whose type is chosen at run time.
    pub fn of_any(msg: &dyn super::AnyMessage) -> Vec<RoleField> {
        let mut v = RoleFields::default();
        msg.visit(&mut v);
        v.fields
    }
}

fn join(stack: &[String], name: &str) -> String {
    let mut p = stack.join(".");
    if !p.is_empty() {
        p.push('.');
    }
    p.push_str(name);
    p
}

impl Visitor for RoleFields {
    fn enter(&mut self, name: &str) {
        self.stack.push(name.to_string());
    }
    fn leave(&mut self) {
        self.stack.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &dyn FieldValue) {
        if let Class::Role(role) = class {
            self.fields.push(RoleField {
                path: join(&self.stack, name),
                role,
                value: value.value(),
            });
        }
    }
}

/// The content of a message without its role and layout fields (artifact bytes count as
/// content): two messages with equal keys
/// are the same request up to cookies, addresses, host names, lengths and the like.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MatchKey(Vec<(String, Value)>);

impl MatchKey {
    pub fn of(msg: &impl super::Message) -> MatchKey {
        let mut v = MatchKeyVisitor::default();
        msg.visit(&mut v);
        v.finish()
    }

    /// [`MatchKey::of`] for a message whose type is chosen at run time.
    pub fn of_any(msg: &dyn super::AnyMessage) -> MatchKey {
        let mut v = MatchKeyVisitor::default();
        msg.visit(&mut v);
        v.finish()
    }

    /// The first content field where `self` and `other` differ: `(path, ours, theirs)`.
    pub fn first_difference(&self, other: &MatchKey) -> Option<(String, String, String)> {
        let n = self.0.len().max(other.0.len());
        (0..n).find_map(|i| match (self.0.get(i), other.0.get(i)) {
            (Some(a), Some(b)) if a == b => None,
            (a, b) => {
                let show = |f: Option<&(String, Value)>| {
                    f.map_or(
                        ("(nothing)".to_string(), "(nothing)".to_string()),
                        |(p, v)| (p.clone(), brief(v)),
                    )
                };
                let (pa, va) = show(a);
                let (pb, vb) = show(b);
                Some((if a.is_some() { pa } else { pb }, va, vb))
            }
        })
    }

    /// Content fields with their paths, in wire order.
    pub fn fields(&self) -> &[(String, Value)] {
        &self.0
    }
}

/// The longest value a difference shows whole; longer ones (file bodies) are shown by size
/// and SHA-256, the hash artifacts are stored under, so a deviation's detail stays short.
const BRIEF: usize = 64;

/// A value as a difference shows it: whole when short, by size and hash when long.
fn brief(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = |b: &[u8]| {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    match v {
        Value::Bytes(b) if b.len() > BRIEF => format!("{} bytes, sha256 {}", b.len(), digest(b)),
        Value::Str(s) if s.len() > BRIEF => format!(
            "{} characters, sha256 {}",
            s.chars().count(),
            digest(s.as_bytes())
        ),
        v => v.to_string(),
    }
}

#[derive(Default)]
struct MatchKeyVisitor {
    stack: Vec<String>,
    key: Vec<(String, Value)>,
    /// Paths of the elements of `@choice` lists (`...dialects.`): compared as sets elsewhere.
    option_lists: Vec<String>,
}

impl MatchKeyVisitor {
    fn finish(self) -> MatchKey {
        let lists = self.option_lists;
        MatchKey(
            self.key
                .into_iter()
                .filter(|(p, _)| !lists.iter().any(|l| p.starts_with(l.as_str())))
                .collect(),
        )
    }
}

/// The options of every `@choice` list in a message, in wire order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Choices(pub Vec<(&'static str, Value)>);

impl Choices {
    pub fn of_any(msg: &dyn super::AnyMessage) -> Choices {
        let mut c = Choices::default();
        msg.visit(&mut c);
        c
    }

    /// The options of one list.
    pub fn list(&self, name: &str) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|(l, _)| *l == name)
            .map(|(_, v)| v)
            .collect()
    }
}

impl Visitor for Choices {
    fn field(&mut self, _name: &'static str, class: Class, value: &dyn FieldValue) {
        if let Class::Role(Role::Choice { list }) = class {
            self.0.push((list, value.value()));
        }
    }
}

impl Visitor for MatchKeyVisitor {
    fn enter(&mut self, name: &str) {
        self.stack.push(name.to_string());
    }
    fn leave(&mut self) {
        self.stack.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &dyn FieldValue) {
        if let Class::Role(Role::Choice { .. }) = class {
            // The whole element (and its siblings) is left out: `dialects.`, not `dialects.2.`.
            let list = join(&self.stack[..self.stack.len().saturating_sub(1)], "");
            if !self.option_lists.contains(&list) {
                self.option_lists.push(list);
            }
        }
        // What is written to a file is content too: two uploads match only if equal.
        if matches!(class, Class::Content | Class::Role(Role::Artifact { .. })) {
            self.key.push((join(&self.stack, name), value.value()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_shows_long_values_by_size_and_hash() {
        let key = |b: Vec<u8>| MatchKey(vec![("Write.data".to_string(), Value::Bytes(b.into()))]);
        let (path, got, want) = key(vec![1; 4096])
            .first_difference(&key(vec![2; 4096]))
            .unwrap();
        assert_eq!(path, "Write.data");
        assert!(
            got.starts_with("4096 bytes, sha256 ") && got.len() < 100,
            "{got}"
        );
        assert!(
            want.starts_with("4096 bytes, sha256 ") && want != got,
            "{want}"
        );
        // Short values are shown whole, as before.
        let (_, got, _) = key(vec![1; 4]).first_difference(&key(vec![2; 4])).unwrap();
        assert_eq!(got, Value::Bytes(vec![1u8; 4].into()).to_string());
    }
}
