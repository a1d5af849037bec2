//! A script's client message as bytes to compare (the reply templates' idea, turned around):
//! where each role field lies and how its value reads. An attacker's message of the script's
//! length that equals it outside those fields has the script message's structure, so its role
//! values are read from their places and decoding, walking and matching it are skipped.
//! Exactness is checked when the script loads: a field is read from its bytes only if messages
//! with other values there decode to those values and to nothing else new; a field that cannot
//! be read (text, say) is compared as bytes like the rest.

use std::ops::Range;

use bytes::Bytes;

use crate::codec::{Entry, MatchKey, Role, RoleField, RoleFields, Value};

use super::conversation::Conversation;
use super::template::{located, test_values, Patch};
use super::walked::RoleRef;

/// A client message's bytes, what must be equal in them, and where its role values lie.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The recorded bytes.
    bytes: Bytes,
    /// The ranges compared with the recording (everything but the readable role fields).
    fixed: Vec<Range<usize>>,
    /// Per role field, where its value is read (`None`: compared, the script's value).
    slots: Vec<Option<Patch>>,
}

impl Shape {
    /// The shape of a client message (role fields `roles`, match key `key`), decoded on
    /// `before`; `None` when it does not decode back to its role fields or it carries artifacts (their
    /// bytes go to files, which takes the decoded message).
    pub fn build(
        entry: &Entry,
        before: &Conversation,
        bytes: &Bytes,
        (roles, key): (&[RoleField], &MatchKey),
    ) -> Option<Shape> {
        let (traced, spans) = located(entry, before, bytes, true)?;
        if traced[..] != *roles
            || roles
                .iter()
                .any(|f| matches!(f.role, Role::Artifact { .. }))
        {
            return None;
        }
        let decode = |b: Bytes| before.clone().decode(entry, b, true).ok();
        let slots: Vec<Option<Patch>> = roles
            .iter()
            .zip(&spans)
            .enumerate()
            .map(|(k, (f, s))| {
                s.as_ref()
                    .and_then(|s| Patch::matching(s, f, bytes))
                    .filter(|p| reads_back(p, k, (roles, key), bytes, &decode))
            })
            .collect();
        let mut read: Vec<&Patch> = slots.iter().flatten().collect();
        read.sort_by_key(|p| p.start);
        let mut fixed = Vec::with_capacity(read.len() + 1);
        let mut at = 0;
        for p in read {
            if p.start < at {
                return None;
            }
            fixed.push(at..p.start);
            at = p.end;
        }
        fixed.push(at..bytes.len());
        fixed.retain(|r| !r.is_empty());
        Some(Shape {
            bytes: bytes.clone(),
            fixed,
            slots,
        })
    }

    /// The message's length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a message has bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The role values of a message at the start of `input` that has this shape (`None` for
    /// a field that holds the script's value), or `None` when it does not.
    pub fn read(&self, input: &[u8]) -> Option<Vec<Option<Value>>> {
        let msg = input.get(..self.bytes.len())?;
        if !self
            .fixed
            .iter()
            .all(|r| msg[r.clone()] == self.bytes[r.clone()])
        {
            return None;
        }
        // A field with the recording's bytes holds the script's value: nothing is read.
        let changed = |p: &&Patch| msg[p.start..p.end] != self.bytes[p.start..p.end];
        Some(
            self.slots
                .iter()
                .map(|s| s.as_ref().filter(changed).map(|p| p.read(msg)))
                .collect(),
        )
    }
}

/// The role fields of a message of some shape: the script's, with the values read.
pub fn roles_of<'a>(
    script: &'a [RoleField],
    values: &'a [Option<Value>],
) -> impl Iterator<Item = RoleRef<'a>> + Clone + 'a {
    script.iter().zip(values).map(|(f, v)| RoleRef {
        path: &f.path,
        role: f.role,
        value: v.as_ref().unwrap_or(&f.value),
    })
}

/// Whether messages with other values in field `k` decode to those values, with the same
/// length, match key and other role fields as the recording.
fn reads_back(
    p: &Patch,
    k: usize,
    (roles, key): (&[RoleField], &MatchKey),
    bytes: &Bytes,
    decode: &dyn Fn(Bytes) -> Option<super::Decoded>,
) -> bool {
    let Some(tests) = test_values(p, &roles[k].value) else {
        return false;
    };
    tests.into_iter().all(|t| {
        let Some(b) = p.encode(&t) else { return false };
        let mut patched = bytes.to_vec();
        patched[p.start..p.end].copy_from_slice(&b);
        let Some(d) = decode(Bytes::from(patched)) else {
            return false;
        };
        let got = RoleFields::of_any(d.msg.as_ref());
        d.bytes.len() == bytes.len()
            && MatchKey::of_any(d.msg.as_ref()) == *key
            && got.len() == roles.len()
            && got.iter().zip(roles).enumerate().all(|(j, (g, r))| {
                g.path == r.path
                    && g.role == r.role
                    && &g.value == (if j == k { &t } else { &r.value })
            })
            && p.read(&d.bytes) == t
    })
}
