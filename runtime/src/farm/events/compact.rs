//! The compact form of the messages that followed a script: the script is stored once, and a
//! connection keeps only how far it followed it and what differed, `(message index, role field,
//! value)`, in a small blob, instead of a row of role text per message.

use std::fmt;
use std::mem::discriminant;

use crate::replay::{same_path, RoleRef, ScriptMessage, Walked};

/// How one message differed from the script's message at the same index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Its length in bytes.
    Length(usize),
    /// Role field `k` (in wire order) held this value: the text after `path@role=`.
    Value(usize, String),
    /// Its role fields do not line up with the script's (other paths or another count): all of
    /// them, `path@role=value`.
    Roles(Vec<String>),
}

impl Difference {
    /// Appends this difference of script message `index` in [`Differences::encode`]'s form.
    pub fn encode_into(&self, index: usize, out: &mut Vec<u8>) {
        varint(out, index as u64);
        match self {
            Difference::Length(n) => {
                varint(out, 0);
                varint(out, *n as u64);
            }
            Difference::Roles(all) => {
                varint(out, 1);
                varint(out, all.len() as u64);
                for r in all {
                    string(out, r);
                }
            }
            Difference::Value(k, v) => {
                varint(out, *k as u64 + 2);
                string(out, v);
            }
        }
    }
}

/// What differed in the messages of one connection, by script message index, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences(pub Vec<(usize, Difference)>);

/// A blob that is not an encoding of [`Differences`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed differences blob at byte {0}")]
pub struct DecodeError(pub usize);

/// `path@role=` of a role field's text, and its value.
fn split(role: &str) -> (&str, &str) {
    match role.find('=') {
        Some(i) => role.split_at(i + 1),
        None => (role, ""),
    }
}

impl Differences {
    /// Notes how a message (`length` bytes, role fields `roles` as `path@role=value`) differs
    /// from the script's message `index` (`script_length`, `script_roles`).
    pub fn record(
        &mut self,
        index: usize,
        (length, roles): (usize, &[String]),
        (script_length, script_roles): (usize, &[String]),
    ) {
        if length != script_length {
            self.0.push((index, Difference::Length(length)));
        }
        let mut values = Vec::new();
        let aligned = roles.len() == script_roles.len()
            && roles
                .iter()
                .zip(script_roles)
                .enumerate()
                .all(|(k, (a, b))| {
                    if a == b {
                        return true;
                    }
                    let (path, value) = split(a);
                    values.push((index, Difference::Value(k, value.to_string())));
                    path == split(b).0
                });
        if aligned {
            self.0.extend(values);
        } else {
            self.0.push((index, Difference::Roles(roles.to_vec())));
        }
    }

    /// What [`Differences::record`] notes for a message (`length` bytes, its fields walked)
    /// against the script's message, from the fields compared as values: text is made only for
    /// the fields that differ.
    pub fn between(length: usize, walked: &Walked, script: &ScriptMessage) -> Vec<Difference> {
        Differences::between_roles(length, walked.roles(), script)
    }

    /// [`Differences::between`] for a message's role fields however they were found.
    pub fn between_roles<'a>(
        length: usize,
        roles: impl Iterator<Item = RoleRef<'a>> + Clone,
        script: &ScriptMessage,
    ) -> Vec<Difference> {
        let mut out = Vec::new();
        if length != script.bytes.len() {
            out.push(Difference::Length(length));
        }
        let mut aligned = roles.clone().count() == script.fields.len();
        let mut values = Vec::new();
        if aligned {
            for (k, (a, b)) in roles.clone().zip(&script.fields).enumerate() {
                if a.same_as(b) {
                    continue;
                }
                // Same path and role name: the texts differ where the values' texts do, and
                // only the new value's text is kept.
                if same_path(a.path, &b.path)
                    && (std::ptr::eq(a.role, b.role) || a.role.name() == b.role.name())
                    && !a.path.contains('=')
                {
                    // Values of one kind have equal texts only when equal (each kind's text
                    // is injective): the script's is written out only across kinds.
                    let value = a.value.to_string();
                    let differs = if discriminant(a.value) == discriminant(&b.value) {
                        *a.value != b.value
                    } else {
                        !text_is(&b.value, &value)
                    };
                    if differs {
                        values.push(Difference::Value(k, value));
                    }
                    continue;
                }
                let (a, b) = (a.to_string(), b.to_string());
                if a == b {
                    continue;
                }
                let (path, value) = split(&a);
                values.push(Difference::Value(k, value.to_string()));
                if path != split(&b).0 {
                    aligned = false;
                    break;
                }
            }
        }
        if aligned {
            out.extend(values);
        } else {
            out.push(Difference::Roles(roles.map(|r| r.to_string()).collect()));
        }
        out
    }

    /// Puts message `index`'s differences back into the script's length and role fields.
    pub fn apply(&self, index: usize, length: &mut usize, roles: &mut Vec<String>) {
        for (_, d) in self.0.iter().filter(|(i, _)| *i == index) {
            match d {
                Difference::Length(n) => *length = *n,
                Difference::Roles(all) => *roles = all.clone(),
                Difference::Value(k, v) => {
                    if let Some(r) = roles.get_mut(*k) {
                        *r = format!("{}{v}", split(r).0);
                    }
                }
            }
        }
    }

    /// Varints throughout: `index, op, payload` per difference; op 0 is a length, 1 the whole
    /// role list (a count, then strings), `k + 2` the value of role field `k`; a string is its
    /// length, then its UTF-8 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends [`Differences::encode`]'s form to `out`: the encodings of two lists, one after
    /// the other, are the encoding of the two together.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for (index, d) in &self.0 {
            d.encode_into(*index, out);
        }
    }

    pub fn decode(blob: &[u8]) -> Result<Differences, DecodeError> {
        let mut r = Reader { blob, at: 0 };
        let mut out = Vec::new();
        while r.at < blob.len() {
            let index = r.usize()?;
            let d = match r.usize()? {
                0 => Difference::Length(r.usize()?),
                1 => {
                    let n = r.usize()?;
                    // Each string takes at least a byte: a count beyond that is malformed.
                    if n > blob.len() {
                        return Err(DecodeError(r.at));
                    }
                    Difference::Roles((0..n).map(|_| r.string()).collect::<Result<_, _>>()?)
                }
                k => Difference::Value(k - 2, r.string()?),
            };
            out.push((index, d));
        }
        Ok(Differences(out))
    }
}

impl fmt::Display for Differences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in &self.0 {
            match d {
                Difference::Length(n) => writeln!(f, "{i}: length {n}")?,
                Difference::Value(k, v) => writeln!(f, "{i}: role {k} = {v}")?,
                Difference::Roles(all) => writeln!(f, "{i}: roles {all:?}")?,
            }
        }
        Ok(())
    }
}

/// Whether `v`'s text is `text`, found without building it.
fn text_is(v: &impl fmt::Display, text: &str) -> bool {
    /// Eats `rest` while what is written matches it.
    struct Eat<'a> {
        rest: &'a str,
    }
    impl fmt::Write for Eat<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.rest = self.rest.strip_prefix(s).ok_or(fmt::Error)?;
            Ok(())
        }
    }
    let mut eat = Eat { rest: text };
    fmt::write(&mut eat, format_args!("{v}")).is_ok() && eat.rest.is_empty()
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    blob: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn usize(&mut self) -> Result<usize, DecodeError> {
        let start = self.at;
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.blob.get(self.at).ok_or(DecodeError(start))?;
            self.at += 1;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return usize::try_from(n).map_err(|_| DecodeError(start));
            }
        }
        Err(DecodeError(start))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let start = self.at;
        let n = self.usize()?;
        let end = self.at.checked_add(n).ok_or(DecodeError(start))?;
        let bytes = self.blob.get(self.at..end).ok_or(DecodeError(start))?;
        self.at = end;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(v: &[&str]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn only_what_differs_is_kept_and_put_back() {
        let script = roles(&["a@cookie=1", "b@time=2020", "c@hostname=\"X=Y\""]);
        let mine = roles(&["a@cookie=7", "b@time=2026", "c@hostname=\"X=Y\""]);
        let odd = roles(&["z@cookie=1"]);
        let mut d = Differences::default();
        d.record(0, (10, &script), (10, &script));
        d.record(1, (12, &mine), (10, &script));
        d.record(2, (3, &odd), (10, &script));
        assert_eq!(d.0.len(), 5, "{d}");
        let back = Differences::decode(&d.encode()).unwrap();
        assert_eq!(back, d);
        // Appended difference by difference, the blob is the same.
        let mut blob = Vec::new();
        d.0.iter().for_each(|(i, x)| x.encode_into(*i, &mut blob));
        assert_eq!(blob, d.encode());
        for (i, (want_len, want)) in [(10, &script), (12, &mine), (3, &odd)].iter().enumerate() {
            let (mut len, mut r) = (10, script.clone());
            back.apply(i, &mut len, &mut r);
            assert_eq!((len, &r), (*want_len, *want));
        }
    }

    #[test]
    fn texts_are_compared_without_building_them() {
        assert!(text_is(&crate::codec::Value::Uint(1234), "1234"));
        assert!(!text_is(&crate::codec::Value::Uint(1234), "123"));
        assert!(!text_is(&crate::codec::Value::Uint(123), "1234"));
        assert!(text_is(
            &crate::codec::Value::Str("a\"b".into()),
            "\"a\\\"b\""
        ));
    }

    #[test]
    fn malformed_blobs_are_errors_not_panics() {
        for blob in [
            &[0x80][..],
            &[0, 2, 5, b'a'],
            &[0, 1, 0xff, 0xff, 0x7f],
            &[0, 2, 1, 0xff],
        ] {
            assert!(Differences::decode(blob).is_err(), "{blob:?}");
        }
    }
}
