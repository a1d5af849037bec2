//! A script's reply as bytes to patch: where each role field lies in the recorded bytes and how
//! its value is written there, so that serving a reply writes the new values (cookies,
//! addresses, times, nonces) into a copy of the recording instead of decoding, rewriting and
//! encoding it. Exactness is checked when the script loads: a field is patched only if writing
//! it gives the bytes the encoder gives for the same change; any other change falls back to the
//! full rewrite.

use bytes::{Bytes, BytesMut};

use crate::codec::{
    AnyMessage, Class, Entry, FieldValue, RoleField, RoleFields, Span, Value, VisitorMut,
};
use crate::rewrite::Rewrite;

use super::conversation::Conversation;

/// How a role field's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An unsigned number, little-endian, in all the field's bytes.
    Le,
    /// An unsigned number, big-endian.
    Be,
    /// Bytes as they are, of the field's length.
    Raw,
}

/// Where a patchable role field lies, and how it is written.
#[derive(Debug, Clone)]
pub(super) struct Patch {
    pub(super) start: usize,
    pub(super) end: usize,
    form: Form,
}

impl Patch {
    /// The form in which the recorded field `f` lies at span `s` of `bytes`, if any.
    pub(super) fn matching(s: &Span, f: &RoleField, bytes: &[u8]) -> Option<Patch> {
        [Form::Le, Form::Be, Form::Raw]
            .into_iter()
            .map(|form| Patch {
                start: s.start,
                end: s.end,
                form,
            })
            .find(|p| p.encode(&f.value).as_deref() == Some(&bytes[p.start..p.end]))
    }

    /// The value the field's bytes in `msg` hold (`msg` is at least as long as the field's
    /// end).
    pub(super) fn read(&self, msg: &[u8]) -> Value {
        let b = &msg[self.start..self.end];
        match self.form {
            Form::Le => Value::Uint(b.iter().rev().fold(0, |n, x| n << 8 | u64::from(*x))),
            Form::Be => Value::Uint(b.iter().fold(0, |n, x| n << 8 | u64::from(*x))),
            Form::Raw => Value::Bytes(Bytes::copy_from_slice(b)),
        }
    }

    /// `v` as the field's bytes; `None` when it does not fit them.
    pub(super) fn encode(&self, v: &Value) -> Option<Vec<u8>> {
        let mut b = vec![0; self.end - self.start];
        self.write(v, &mut b).then_some(b)
    }

    /// Writes `v` as the field's bytes into `out` (the field's length); `false`, with `out`
    /// unspecified, when it does not fit them.
    fn write(&self, v: &Value, out: &mut [u8]) -> bool {
        let w = self.end - self.start;
        match (self.form, v) {
            (Form::Le | Form::Be, Value::Uint(n)) => {
                // A number is at most 8 bytes wide.
                if w > 8 || w < 8 && *n >> (8 * w) != 0 {
                    return false;
                }
                out.copy_from_slice(&n.to_le_bytes()[..w]);
                if self.form == Form::Be {
                    out.reverse();
                }
                true
            }
            (Form::Raw, Value::Bytes(b)) if b.len() == w => {
                out.copy_from_slice(b);
                true
            }
            _ => false,
        }
    }
}

/// The patchable role fields of one reply, by their index among its role fields.
#[derive(Debug, Clone)]
pub struct Template {
    fields: Vec<Option<Patch>>,
}

impl Template {
    /// The template of a server message, decoded on `before` (the conversation just before
    /// it); `None` when it does not encode back to itself.
    pub fn build(entry: &Entry, before: &Conversation, bytes: &Bytes) -> Option<Template> {
        let decode = || before.clone().decode(entry, bytes.clone(), false).ok();
        let (roles, spans) = located(entry, before, bytes, false)?;
        let mut fields = Vec::with_capacity(roles.len());
        for (k, (f, s)) in roles.iter().zip(&spans).enumerate() {
            let patch = s
                .as_ref()
                .and_then(|s| Patch::matching(s, f, bytes))
                .filter(|p| verified(p, k, f, bytes, &decode));
            fields.push(patch);
        }
        Some(Template { fields })
    }

    /// The reply rewritten by `rw`: the recording (`bytes`, role fields `roles`) with each
    /// changed field patched, and the changed fields' new values by their index among the
    /// role fields; `None` when a change cannot be patched (the caller rewrites the decoded
    /// message instead).
    pub fn patch(
        &self,
        bytes: &Bytes,
        roles: &[RoleField],
        rw: &Rewrite,
    ) -> Option<(Bytes, Vec<(usize, Value)>)> {
        let mut out: Option<BytesMut> = None;
        let mut changed = Vec::new();
        for (k, (f, p)) in roles.iter().zip(&self.fields).enumerate() {
            let Some(new) = rw.new_value(f.role, &f.value) else {
                continue;
            };
            if new == f.value {
                continue;
            }
            let p = p.as_ref()?;
            // Written in place: no bytes are built per field.
            let at = &mut out.get_or_insert_with(|| BytesMut::from(&bytes[..]))[p.start..p.end];
            if !p.write(&new, at) {
                return None;
            }
            changed.push((k, new));
        }
        Some((out.map_or_else(|| bytes.clone(), BytesMut::freeze), changed))
    }
}

/// A recorded message's role fields and where each lies in its bytes (`to_server`: sent by
/// the client), decoded on `before`; `None` when the message does not decode or encode back
/// to itself. Spans come in wire order, role fields in visiting order (NDR's deferred
/// pointers differ): each role field takes the first span left of its name and role, and one
/// with none is not located. A wrong pairing is caught where a span is used: a field is patched
/// or read only after trying other values in it.
pub(super) fn located(
    entry: &Entry,
    before: &Conversation,
    bytes: &Bytes,
    to_server: bool,
) -> Option<(Vec<RoleField>, Vec<Option<Span>>)> {
    let traced = before
        .clone()
        .decode_traced(entry, bytes.clone(), to_server);
    let traced = traced.ok()?;
    if encoded(traced.msg.as_ref())? != bytes[..] {
        return None;
    }
    let roles = RoleFields::of_any(traced.msg.as_ref());
    // A length field is traced twice, the second time empty where what it measures ends.
    let mut spans: Vec<Option<&Span>> = Vec::with_capacity(traced.spans.len());
    for s in &traced.spans {
        let again = s.start == s.end
            && spans
                .iter()
                .flatten()
                .any(|e| std::ptr::eq(e.field, s.field));
        if !again && s.start <= s.end && s.end <= bytes.len() {
            spans.push(Some(s));
        }
    }
    let mut found = Vec::with_capacity(roles.len());
    for f in &roles {
        let name = f.path.rsplit('.').next().unwrap_or(&f.path);
        let at = spans
            .iter()
            .position(|s| s.is_some_and(|s| s.field.field == name && s.field.role == Some(f.role)));
        found.push(at.and_then(|i| spans[i].take()).cloned());
    }
    Some((roles, found))
}

fn encoded(msg: &dyn AnyMessage) -> Option<BytesMut> {
    let mut out = BytesMut::new();
    msg.encode(&mut out).ok()?;
    Some(out)
}

/// Whether patching field `k` with other values gives what the encoder gives.
pub(super) fn verified(
    p: &Patch,
    k: usize,
    f: &RoleField,
    bytes: &Bytes,
    decode: &dyn Fn() -> Option<super::Decoded>,
) -> bool {
    let Some(tests) = test_values(p, &f.value) else {
        return false;
    };
    tests.into_iter().all(|t| {
        let Some(mut d) = decode() else { return false };
        let mut set = SetNth {
            k,
            seen: 0,
            value: Some(t.clone()),
            ok: false,
        };
        d.msg.visit_mut(&mut set);
        let (Some(full), Some(b), true) = (encoded(d.msg.as_ref()), p.encode(&t), set.ok) else {
            return false;
        };
        let mut patched = bytes.to_vec();
        patched[p.start..p.end].copy_from_slice(&b);
        full[..] == patched[..]
    })
}

/// Other values than `v` for a field patched at `p`: every bit flipped, and one more (a
/// number), or every byte flipped; `None` for a value that is neither.
pub(super) fn test_values(p: &Patch, v: &Value) -> Option<Vec<Value>> {
    let w = p.end - p.start;
    match v {
        Value::Uint(n) => {
            let mask = if w >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * w)) - 1
            };
            Some(vec![
                Value::Uint(!n & mask),
                Value::Uint(n.wrapping_add(1) & mask),
            ])
        }
        Value::Bytes(b) => Some(vec![Value::Bytes(b.iter().map(|x| !x).collect())]),
        _ => None,
    }
}

/// Sets the value of the `k`-th role field.
struct SetNth {
    k: usize,
    seen: usize,
    value: Option<Value>,
    ok: bool,
}

impl VisitorMut for SetNth {
    fn field(&mut self, _name: &'static str, class: Class, value: &mut dyn FieldValue) {
        if let Class::Role(_) = class {
            if self.seen == self.k {
                if let Some(v) = self.value.take() {
                    self.ok = value.set(v).is_ok();
                }
            }
            self.seen += 1;
        }
    }
}
