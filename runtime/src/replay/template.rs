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
struct Patch {
    start: usize,
    end: usize,
    form: Form,
}

impl Patch {
    /// `v` as the field's bytes; `None` when it does not fit them.
    fn encode(&self, v: &Value) -> Option<Vec<u8>> {
        let w = self.end - self.start;
        match (self.form, v) {
            (Form::Le | Form::Be, Value::Uint(n)) => {
                if w < 8 && *n >> (8 * w) != 0 {
                    return None;
                }
                let le = n.to_le_bytes();
                let mut b = le[..w].to_vec();
                if self.form == Form::Be {
                    b.reverse();
                }
                Some(b)
            }
            (Form::Raw, Value::Bytes(b)) if b.len() == w => Some(b.to_vec()),
            _ => None,
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
    /// it); `None` when its role fields cannot be located or it does not encode back to itself.
    pub fn build(entry: &Entry, before: &Conversation, bytes: &Bytes) -> Option<Template> {
        let decode = || before.clone().decode(entry, bytes.clone(), false).ok();
        let traced = before
            .clone()
            .decode_traced(entry, bytes.clone(), false)
            .ok()?;
        if encoded(traced.msg.as_ref())? != bytes[..] {
            return None;
        }
        let roles = RoleFields::of_any(traced.msg.as_ref());
        // A length field is traced twice, the second time empty where what it measures ends.
        let mut spans: Vec<Span> = Vec::with_capacity(traced.spans.len());
        for s in &traced.spans {
            let again = s.start == s.end && spans.iter().any(|e| std::ptr::eq(e.field, s.field));
            if !again {
                spans.push(s.clone());
            }
        }
        if roles.len() != spans.len() {
            return None;
        }
        let mut fields = Vec::with_capacity(roles.len());
        for (k, (f, s)) in roles.iter().zip(&spans).enumerate() {
            let name_ok =
                f.path == s.field.field || f.path.ends_with(&format!(".{}", s.field.field));
            if !name_ok || s.field.role != Some(f.role) || s.end > bytes.len() || s.start > s.end {
                return None;
            }
            let patch = [Form::Le, Form::Be, Form::Raw]
                .into_iter()
                .map(|form| Patch {
                    start: s.start,
                    end: s.end,
                    form,
                })
                .find(|p| p.encode(&f.value).as_deref() == Some(&bytes[p.start..p.end]))
                .filter(|p| verified(p, k, f, bytes, &decode));
            fields.push(patch);
        }
        Some(Template { fields })
    }

    /// The reply rewritten by `rw`: the recording (`bytes`, role fields `roles`) with each
    /// changed field patched; `None` when a change cannot be patched (the caller rewrites the
    /// decoded message instead).
    pub fn patch(&self, bytes: &Bytes, roles: &[RoleField], rw: &Rewrite) -> Option<Bytes> {
        let mut out: Option<BytesMut> = None;
        for (f, p) in roles.iter().zip(&self.fields) {
            let Some(new) = rw.new_value(f.role, f.value.clone()) else {
                continue;
            };
            if new == f.value {
                continue;
            }
            let p = p.as_ref()?;
            let b = p.encode(&new)?;
            out.get_or_insert_with(|| BytesMut::from(&bytes[..]))[p.start..p.end]
                .copy_from_slice(&b);
        }
        Some(out.map_or_else(|| bytes.clone(), BytesMut::freeze))
    }
}

fn encoded(msg: &dyn AnyMessage) -> Option<BytesMut> {
    let mut out = BytesMut::new();
    msg.encode(&mut out).ok()?;
    Some(out)
}

/// Whether patching field `k` with other values gives what the encoder gives.
fn verified(
    p: &Patch,
    k: usize,
    f: &RoleField,
    bytes: &Bytes,
    decode: &dyn Fn() -> Option<super::Decoded>,
) -> bool {
    let w = p.end - p.start;
    let tests: Vec<Value> = match &f.value {
        Value::Uint(n) => {
            let mask = if w >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * w)) - 1
            };
            vec![
                Value::Uint(!n & mask),
                Value::Uint(n.wrapping_add(1) & mask),
            ]
        }
        Value::Bytes(b) => vec![Value::Bytes(b.iter().map(|x| !x).collect())],
        _ => return false,
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
