//! Session memory: what earlier messages remembered (`@remember`, `@append`) for `recall()` in
//! later ones. A decode that fails must leave it as it was, so changes made while a journal is
//! open are undone by [`Memory::rollback`] instead of cloning the whole memory per message.

use std::collections::HashMap;

use bytes::Bytes;

/// Remembered values by `name\0key`, with their total size and an optional undo journal.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    values: HashMap<Bytes, Bytes>,
    /// Bytes held (keys and values), kept as values change.
    size: usize,
    /// While open: the previous value of each change, in order.
    journal: Option<Vec<(Bytes, Option<Bytes>)>>,
}

impl Memory {
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes remembered (keys and values).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Starts recording changes so that [`Memory::rollback`] can undo them.
    pub fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps the changes made since [`Memory::begin`] and stops recording.
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes the changes made since [`Memory::begin`] and stops recording.
    pub fn rollback(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for (key, old) in journal.into_iter().rev() {
            match old {
                Some(v) => {
                    self.put(key, v);
                }
                None => {
                    self.take(&key);
                }
            }
        }
    }

    /// What is remembered under the memory key `k`.
    pub(crate) fn get(&self, k: &[u8]) -> Option<&Bytes> {
        self.values.get(k)
    }

    /// Stores `value` under `k`, journalled.
    pub(crate) fn set(&mut self, k: Bytes, value: Bytes) {
        let old = self.put(k.clone(), value);
        if let Some(j) = &mut self.journal {
            j.push((k, old));
        }
    }

    /// Stores `value` under `k` if something is stored there already; gives it back if not.
    pub(crate) fn replace(&mut self, k: &[u8], value: Bytes) -> Result<(), Bytes> {
        match self.values.get_key_value(k) {
            Some((key, _)) => {
                let key = key.clone();
                self.set(key, value);
                Ok(())
            }
            None => Err(value),
        }
    }

    /// Removes what is stored under `k`, journalled.
    pub(crate) fn remove(&mut self, k: &Bytes) -> Option<Bytes> {
        let old = self.take(k);
        if let (Some(j), Some(v)) = (&mut self.journal, &old) {
            j.push((k.clone(), Some(v.clone())));
        }
        old
    }

    fn put(&mut self, k: Bytes, v: Bytes) -> Option<Bytes> {
        let added = k.len() + v.len();
        let old = self.values.insert(k.clone(), v);
        if let Some(o) = &old {
            self.size -= k.len() + o.len();
        }
        self.size += added;
        old
    }

    fn take(&mut self, k: &[u8]) -> Option<Bytes> {
        let old = self.values.remove(k);
        if let Some(o) = &old {
            self.size -= k.len() + o.len();
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn rollback_restores_values_and_size() {
        let mut m = Memory::new();
        m.set(b("a"), b("one"));
        assert_eq!(m.size(), 4);
        m.begin();
        m.set(b("a"), b("three"));
        m.set(b("b"), b("x"));
        m.remove(&b("a"));
        m.set(b("a"), b("four"));
        m.rollback();
        assert_eq!(m.get(b"a"), Some(&b("one")));
        assert_eq!(m.get(b"b"), None);
        assert_eq!(m.size(), 4);
        m.begin();
        m.set(b("b"), b("xy"));
        m.commit();
        m.rollback();
        assert_eq!(m.get(b"b"), Some(&b("xy")));
        assert_eq!(m.size(), 7);
    }
}
