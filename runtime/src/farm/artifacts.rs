//! Files attackers write, rebuilt from the `@artifact` fields of their messages: each chunk
//! goes to the file named by the cookie before it, at the offset before it.

use std::collections::BTreeMap;

use crate::codec::{AnyMessage, Class, FieldValue, Role, Value, Visitor};

/// The files one connection wrote, by `(cookie namespace, value)`.
#[derive(Debug, Default)]
pub struct Files {
    files: BTreeMap<(&'static str, String), Vec<u8>>,
    /// The largest file kept; bytes beyond it are dropped (and counted).
    limit: usize,
    pub dropped: usize,
}

impl Files {
    pub fn new(limit: usize) -> Self {
        Files {
            limit,
            ..Files::default()
        }
    }

    /// Takes the artifact chunks of one message the attacker sent.
    pub fn collect(&mut self, msg: &dyn AnyMessage) {
        let mut c = Chunks::default();
        msg.visit(&mut c);
        for (key, name, offset, bytes) in c.chunks {
            let file = self.files.entry((key, name)).or_default();
            let at = offset.map_or(file.len(), |o| usize::try_from(o).unwrap_or(usize::MAX));
            let end = at.saturating_add(bytes.len());
            if end > self.limit {
                self.dropped += bytes.len();
                continue;
            }
            if file.len() < end {
                file.resize(end, 0);
            }
            file[at..end].copy_from_slice(&bytes);
        }
    }

    /// `(name, content)` of every file written, as `namespace=value`.
    pub fn into_files(self) -> impl Iterator<Item = (String, Vec<u8>)> {
        self.files
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|((ns, v), bytes)| (format!("{ns}={v}"), bytes))
    }
}

#[derive(Default)]
struct Chunks {
    cookies: BTreeMap<&'static str, String>,
    numbers: BTreeMap<&'static str, u64>,
    chunks: Vec<(&'static str, String, Option<u64>, Vec<u8>)>,
}

impl Visitor for Chunks {
    fn field(&mut self, name: &'static str, class: Class, value: &dyn FieldValue) {
        let v = value.value();
        if let Value::Uint(n) = v {
            self.numbers.insert(name, n);
        }
        match class {
            Class::Role(Role::Cookie { namespace, .. }) => {
                self.cookies.insert(namespace, v.to_string());
            }
            Class::Role(Role::Artifact { key, offset }) => {
                let (Some(file), Value::Bytes(b)) = (self.cookies.get(key), v) else {
                    return;
                };
                let at = if offset.is_empty() {
                    None
                } else {
                    self.numbers.get(offset).copied()
                };
                self.chunks.push((key, file.clone(), at, b.to_vec()));
            }
            _ => {}
        }
    }
}
