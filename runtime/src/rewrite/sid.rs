//! Domain SIDs as an identity, like host names (issue 10): a script recorded on another machine
//! carries that machine's domain SID (`S-1-5-21-a-b-c`), a honeypot its own. The handoff pairs
//! the two where a replayed reply differs only in them, and the bridge maps them both ways.
//!
//! A SID is `ndr.Sid` in the specs; its sub-authorities are content, read here by their path
//! (`…sub_authority.N.item`): a domain SID's own part is sub-authorities 1 to 3 after a first
//! one of 21. The RID after them, and every other SID (`S-1-5-32-544`), is left as it is.

use crate::codec::{Class, FieldValue, MatchKey, Value, VisitorMut};

use super::{RewriteError, ValueMap, Way};

/// The [`ValueMap`] namespace of domain SID sub-authorities (the attacker's on the left).
pub const SID_NAMESPACE: &str = "ndr.sid";

/// The first sub-authority of a domain SID (`SECURITY_NT_NON_UNIQUE`).
const DOMAIN: u64 = 21;

/// The sub-authority index of a content path inside an `ndr.Sid`, if it is one.
fn sub_authority(path: &str) -> Option<usize> {
    let rest = path.strip_suffix(".item")?;
    let (head, n) = rest.rsplit_once('.')?;
    if !(head == "sub_authority" || head.ends_with(".sub_authority")) {
        return None;
    }
    n.parse().ok()
}

/// Pairs the domain SIDs in which a honeypot's reply (`theirs`) differs from the one the
/// attacker got (`ours`): true when every difference is a domain SID's own sub-authority and
/// they pair consistently with those seen before.
pub fn pair_domain_sids(map: &mut ValueMap, ours: &MatchKey, theirs: &MatchKey) -> bool {
    let (a, b) = (ours.fields(), theirs.fields());
    if a.len() != b.len() {
        return false;
    }
    let mut pairs = Vec::new();
    let mut first = (None, None);
    for ((pa, va), (pb, vb)) in a.iter().zip(b) {
        if pa != pb {
            return false;
        }
        let n = sub_authority(pa);
        if n == Some(0) {
            first = (Some(va), Some(vb));
        }
        if va == vb {
            continue;
        }
        let domain = first == (Some(&Value::Uint(DOMAIN)), Some(&Value::Uint(DOMAIN)));
        match n {
            Some(1..=3) if domain => pairs.push((va.clone(), vb.clone())),
            _ => return false,
        }
    }
    let mut next = map.clone();
    for (l, r) in pairs {
        if next.bind(&SID_NAMESPACE, l, r).is_err() {
            return false;
        }
    }
    *map = next;
    true
}

/// Maps the domain SIDs of a message through `map` (`Forward`: the attacker's to the
/// honeypot's), in place; the caller encodes it.
pub struct DomainSids<'a> {
    map: &'a ValueMap,
    way: Way,
    stack: Vec<String>,
    /// The current SID's first sub-authority.
    first: Option<Value>,
    pub errors: Vec<(String, crate::codec::SetError)>,
}

impl<'a> DomainSids<'a> {
    pub fn new(map: &'a ValueMap, way: Way) -> Self {
        DomainSids {
            map,
            way,
            stack: Vec::new(),
            first: None,
            errors: Vec::new(),
        }
    }

    /// Maps `msg`'s domain SIDs; the first field that refused its new value is the error.
    pub fn apply(mut self, msg: &mut dyn crate::codec::AnyMessage) -> Result<(), RewriteError> {
        msg.visit_mut(&mut self);
        match self.errors.into_iter().next() {
            Some((field, error)) => Err(RewriteError::Field { field, error }),
            None => Ok(()),
        }
    }
}

impl VisitorMut for DomainSids<'_> {
    fn enter(&mut self, name: &str) {
        self.stack.push(name.to_string());
    }
    fn leave(&mut self) {
        self.stack.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &mut dyn FieldValue) {
        if !matches!(class, Class::Content) || name != "item" {
            return;
        }
        let n = match self.stack.as_slice() {
            [.., list, n] if list == "sub_authority" => n.parse::<usize>().ok(),
            _ => None,
        };
        let v = value.value();
        match n {
            Some(0) => self.first = Some(v),
            Some(1..=3) if self.first == Some(Value::Uint(DOMAIN)) => {
                let new = match self.way {
                    Way::Forward => self.map.forward(&SID_NAMESPACE, &v),
                    Way::Backward => self.map.backward(&SID_NAMESPACE, &v),
                };
                if let Some(new) = new {
                    if let Err(e) = value.set(new) {
                        self.errors.push((name.to_string(), e));
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_authority_paths() {
        assert_eq!(sub_authority("x.domain_id.sub_authority.1.item"), Some(1));
        assert_eq!(sub_authority("sub_authority.0.item"), Some(0));
        assert_eq!(sub_authority("x.not_sub_authority.1.item"), None);
        assert_eq!(sub_authority("x.sub_authority_count"), None);
    }
}
