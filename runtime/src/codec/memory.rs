//! Session memory: what earlier messages remembered (`@remember`, `@append`) for `recall()` in
//! later ones. A decode that fails must leave it as it was, so changes made while a journal is
//! open are undone by [`Memory::rollback`] instead of cloning the whole memory per message.
//!
//! Keys (`name\0key`, the key a decimal number) and most values (numbers in decimal, handles)
//! are short, and a session remembers few of them: the first [`SLOTS`] entries and every short
//! string live inline, so remembering a value in a fresh memory allocates nothing.

use std::cell::OnceCell;
use std::collections::HashMap;

use bytes::Bytes;

/// Entries kept inline before the hash map is used.
const SLOTS: usize = 4;
/// The longest byte string kept inline (the enum stays as large as a `Bytes`).
const INLINE: usize = 30;

/// A byte string, inline when short.
#[derive(Clone)]
pub(crate) enum Small {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Bytes),
}

impl Small {
    /// Copies `b` (inline when it fits).
    #[inline(always)]
    pub(crate) fn copy(b: &[u8]) -> Self {
        Self::concat(b, &[])
    }

    /// `v` in decimal, written in place (how numbers are remembered).
    #[inline]
    pub(crate) fn decimal(v: i128) -> Self {
        let Ok(mut n) = u64::try_from(v.unsigned_abs()) else {
            return Self::copy(&super::ops::decimal(v));
        };
        let sign = usize::from(v < 0);
        let len = sign + n.checked_ilog10().unwrap_or(0) as usize + 1;
        let mut bytes = [0; INLINE];
        bytes[0] = b'-';
        for at in (sign..len).rev() {
            bytes[at] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        // At most 21 bytes (a sign and 20 digits), so it fits inline and a u8.
        Small::Inline {
            len: len as u8,
            bytes,
        }
    }

    /// A memory key: `name\0key`.
    #[inline(always)]
    pub(crate) fn key(name: &[u8], key: &[u8]) -> Self {
        let n = name.len() + 1 + key.len();
        if n > INLINE {
            return Self::concat(&[name, &[0]].concat(), key);
        }
        let mut bytes = [0; INLINE];
        bytes[..name.len()].copy_from_slice(name);
        bytes[name.len() + 1..n].copy_from_slice(key);
        // n <= INLINE, so it fits a u8.
        Small::Inline {
            len: n as u8,
            bytes,
        }
    }

    /// `a` followed by `b`.
    #[inline(always)]
    pub(crate) fn concat(a: &[u8], b: &[u8]) -> Self {
        let n = a.len() + b.len();
        if n <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..a.len()].copy_from_slice(a);
            bytes[a.len()..n].copy_from_slice(b);
            // n <= INLINE, so it fits a u8.
            Small::Inline {
                len: n as u8,
                bytes,
            }
        } else {
            let mut v = Vec::with_capacity(n);
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            Small::Heap(v.into())
        }
    }
}

impl std::ops::Deref for Small {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Small::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Small::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Small {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Small {
    fn eq(&self, o: &Self) -> bool {
        **self == **o
    }
}

impl Eq for Small {}

impl std::hash::Hash for Small {
    /// As the slice hashes, so that the map can be searched with a `&[u8]`.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl std::fmt::Debug for Small {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::reader::escape(self))
    }
}

/// Remembered values by `name\0key`, with their total size and an undo journal.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The first entries, searched in order before `values`.
    slots: [Option<(Small, Small)>; SLOTS],
    /// Created when the slots are full, so that a fresh memory costs no hasher set-up.
    values: Option<HashMap<Small, Small>>,
    /// Bytes held (keys and values), kept as values change.
    size: usize,
    /// While `journaling`: the previous value of each change, in order (its room is kept
    /// from one message to the next).
    journal: Vec<(Small, Option<Small>)>,
    journaling: bool,
}

impl Memory {
    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes remembered (keys and values).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Starts recording changes so that [`Memory::rollback`] can undo them.
    pub fn begin(&mut self) {
        self.journal.clear();
        self.journaling = true;
    }

    /// Keeps the changes made since [`Memory::begin`] and stops recording.
    pub fn commit(&mut self) {
        self.journal.clear();
        self.journaling = false;
    }

    /// Undoes the changes made since [`Memory::begin`] and stops recording.
    pub fn rollback(&mut self) {
        if !self.journaling {
            return;
        }
        self.journaling = false;
        let mut journal = std::mem::take(&mut self.journal);
        for (key, old) in journal.drain(..).rev() {
            match old {
                Some(v) => {
                    self.put(key, v);
                }
                None => {
                    self.take(&key);
                }
            }
        }
        self.journal = journal;
    }

    /// Gives back the journal's room (kept from one message to the next while messages
    /// come): for a conversation that waits, idle.
    pub fn trim(&mut self) {
        if !self.journaling {
            self.journal = Vec::new();
        }
    }

    /// What is remembered under the memory key `k`.
    pub(crate) fn get(&self, k: &[u8]) -> Option<&[u8]> {
        self.slots
            .iter()
            .flatten()
            .find(|(key, _)| **key == *k)
            .map(|(_, v)| &**v)
            .or_else(|| self.values.as_ref()?.get(k).map(|v| &**v))
    }

    /// Stores `value` under `k`, journalled.
    #[inline]
    pub(crate) fn set(&mut self, k: Small, value: Small) {
        if self.journaling {
            let old = self.put(k.clone(), value);
            self.journal.push((k, old));
        } else {
            self.put(k, value);
        }
    }

    /// Removes what is stored under `k`, journalled.
    pub(crate) fn remove(&mut self, k: &[u8]) -> Option<Small> {
        let old = self.take(k);
        if let (true, Some(v)) = (self.journaling, &old) {
            self.journal.push((Small::copy(k), Some(v.clone())));
        }
        old
    }

    fn put(&mut self, k: Small, v: Small) -> Option<Small> {
        let (klen, added) = (k.len(), k.len() + v.len());
        let old = match self.slot_of(&k) {
            Some(i) => self.slots[i]
                .as_mut()
                .map(|(_, old)| std::mem::replace(old, v)),
            None => match self.slots.iter_mut().find(|s| s.is_none()) {
                Some(free) if self.values.as_ref().is_none_or(|m| !m.contains_key(&*k)) => {
                    *free = Some((k, v));
                    None
                }
                _ => self.values.get_or_insert_with(HashMap::new).insert(k, v),
            },
        };
        if let Some(o) = &old {
            self.size -= klen + o.len();
        }
        self.size += added;
        old
    }

    fn take(&mut self, k: &[u8]) -> Option<Small> {
        let old = match self.slot_of(k) {
            Some(i) => self.slots[i].take().map(|(_, v)| v),
            None => self.values.as_mut().and_then(|m| m.remove(k)),
        };
        if let Some(o) = &old {
            self.size -= k.len() + o.len();
        }
        old
    }

    fn slot_of(&self, k: &[u8]) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|(key, _)| **key == *k))
    }
}

/// A number remembered under a constant name and key, not stored yet.
#[derive(Debug, Clone, Copy)]
struct Deferred {
    name: &'static [u8],
    key: &'static [u8],
    value: i128,
}

impl Deferred {
    fn is(&self, name: &[u8], key: &[u8]) -> bool {
        self.name == name && self.key == key
    }
}

/// The memory a decoder works with: the session's [`Memory`], created only when something is
/// stored, and the last number remembered under a constant name and key (`@remember(smb_mid,
/// 0)`), stored only when anything else touches the memory or the memory is taken. A
/// standalone decode, whose memory nobody can read once it returns, thus never builds the
/// key, the decimal text or the memory: what the message itself recalls is still answered.
#[derive(Debug, Clone, Default)]
pub(crate) struct DecoderMemory {
    memory: Option<Memory>,
    deferred: Option<Deferred>,
    /// The deferred number's decimal text, once `recall` (as bytes) asked for it.
    text: OnceCell<Small>,
}

impl DecoderMemory {
    /// Replaces the memory (and drops what was deferred for the one replaced).
    pub(crate) fn set(&mut self, memory: Memory) {
        self.memory = Some(memory);
        self.deferred = None;
        self.text.take();
    }

    /// The memory with everything remembered stored in it.
    pub(crate) fn take(&mut self) -> Memory {
        self.flush();
        self.memory.take().unwrap_or_default()
    }

    /// Remembers the number `value` under a constant name and key, deferred.
    #[inline(always)]
    pub(crate) fn defer_int(&mut self, name: &'static [u8], key: &'static [u8], value: i128) {
        if self.deferred.is_some_and(|d| !d.is(name, key)) {
            self.flush();
        }
        self.deferred = Some(Deferred { name, key, value });
        if self.text.get().is_some() {
            self.text.take();
        }
    }

    /// The memory, to store into after what was deferred.
    pub(crate) fn store(&mut self) -> &mut Memory {
        self.flush();
        self.memory.get_or_insert_with(Memory::new)
    }

    /// The number remembered under `name` and `key` when it is the deferred one.
    #[inline]
    pub(crate) fn deferred_int(&self, name: &[u8], key: &[u8]) -> Option<i128> {
        self.deferred.filter(|d| d.is(name, key)).map(|d| d.value)
    }

    /// The decimal text of the number remembered under `name` and `key` when it is the
    /// deferred one.
    pub(crate) fn deferred_text(&self, name: &[u8], key: &[u8]) -> Option<&[u8]> {
        let v = self.deferred_int(name, key)?;
        Some(self.text.get_or_init(|| Small::decimal(v)))
    }

    /// What is stored under the memory key `k`, the deferred number apart
    /// ([`DecoderMemory::deferred_int`], [`DecoderMemory::deferred_text`]).
    pub(crate) fn stored(&self, k: &[u8]) -> Option<&[u8]> {
        self.memory.as_ref()?.get(k)
    }

    /// Stores what was deferred.
    #[inline]
    fn flush(&mut self) {
        if let Some(d) = self.deferred.take() {
            self.text.take();
            self.memory
                .get_or_insert_with(Memory::new)
                .set(Small::key(d.name, d.key), Small::decimal(d.value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Small {
        Small::copy(s.as_bytes())
    }

    #[test]
    fn rollback_restores_values_and_size() {
        let mut m = Memory::new();
        m.set(b("a"), b("one"));
        assert_eq!(m.size(), 4);
        m.begin();
        m.set(b("a"), b("three"));
        m.set(b("b"), b("x"));
        m.remove(b"a");
        m.set(b("a"), b("four"));
        m.rollback();
        assert_eq!(m.get(b"a"), Some(&b"one"[..]));
        assert_eq!(m.get(b"b"), None);
        assert_eq!(m.size(), 4);
        m.begin();
        m.set(b("b"), b("xy"));
        m.commit();
        m.rollback();
        assert_eq!(m.get(b"b"), Some(&b"xy"[..]));
        assert_eq!(m.size(), 7);
    }

    #[test]
    fn decimal_values_match_their_text() {
        for v in [
            0i128,
            9,
            10,
            -1,
            -10,
            65535,
            i128::from(u64::MAX),
            -i128::from(u64::MAX),
        ] {
            assert_eq!(&*Small::decimal(v), v.to_string().as_bytes());
        }
        assert_eq!(
            &*Small::decimal(i128::MIN),
            i128::MIN.to_string().as_bytes()
        );
    }

    /// Past the inline slots, entries go to the map; long strings to the heap; removing a slot
    /// entry frees it for the next key.
    #[test]
    fn many_and_long_entries() {
        let mut m = Memory::new();
        let long = "x".repeat(100);
        for i in 0..20 {
            m.set(b(&format!("k{i}")), b(&format!("{i}{long}")));
        }
        for i in 0..20 {
            assert_eq!(
                m.get(format!("k{i}").as_bytes()).unwrap().len(),
                100 + i.to_string().len()
            );
        }
        m.begin();
        assert!(m.remove(b"k0").is_some());
        m.set(b("new"), b("1"));
        m.set(b("k19"), b("2"));
        assert_eq!(m.get(b"new"), Some(&b"1"[..]));
        assert_eq!(m.get(b"k19"), Some(&b"2"[..]));
        let before = m.size();
        m.rollback();
        assert_ne!(m.size(), before);
        assert_eq!(m.get(b"new"), None);
        assert_eq!(m.get(b"k0").map(<[u8]>::len), Some(101));
        assert_eq!(m.get(b"k19").map(<[u8]>::len), Some(102));
        let total: usize = (0..20)
            .map(|i| format!("k{i}").len() + 100 + i.to_string().len())
            .sum();
        assert_eq!(m.size(), total);
    }

    /// A deferred number is stored when the memory is taken or used otherwise, answers
    /// `recall_int` before that, and is stored before a later value under its key.
    #[test]
    fn deferred_numbers_are_stored_when_the_memory_is_used() {
        let mut d = DecoderMemory::default();
        d.defer_int(b"mid", b"0", -7);
        assert_eq!(d.deferred_int(b"mid", b"0"), Some(-7));
        assert_eq!(d.deferred_int(b"mid", b"1"), None);
        assert_eq!(d.deferred_text(b"mid", b"0"), Some(&b"-7"[..]));
        assert!(d.memory.is_none());
        let mut m = d.take();
        assert_eq!(m.get(b"mid\x000"), Some(&b"-7"[..]));

        m.begin();
        d.set(m);
        d.defer_int(b"mid", b"0", 5);
        assert_eq!(d.deferred_text(b"mid", b"0"), Some(&b"5"[..]));
        d.defer_int(b"mid", b"0", 6);
        assert_eq!(d.deferred_text(b"mid", b"0"), Some(&b"6"[..]));
        d.store().set(Small::key(b"mid", b"0"), Small::copy(b"x"));
        d.defer_int(b"other", b"0", 1);
        let mut m = d.take();
        assert_eq!(m.get(b"mid\x000"), Some(&b"x"[..]));
        assert_eq!(m.get(b"other\x000"), Some(&b"1"[..]));
        m.rollback();
        assert_eq!(m.get(b"mid\x000"), Some(&b"-7"[..]));
        assert_eq!(m.get(b"other\x000"), None);

        d.defer_int(b"mid", b"0", 9);
        d.set(Memory::new());
        assert_eq!(d.take().get(b"mid\x000"), None);
    }
}
