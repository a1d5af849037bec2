//! A bijection per cookie namespace between two views of a session (attacker and script, or
//! attacker and honeypot): one value on the left pairs with one value on the right.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use bytes::Bytes;

use crate::codec::Value;

/// `v` holding its own bytes: a value decoded from a message shares the message's receive
/// buffer, which a session that keeps the value (a cookie, an option) would keep alive.
pub fn detached(v: Value) -> Value {
    match v {
        Value::Bytes(b) => Value::Bytes(Bytes::copy_from_slice(&b)),
        v => v,
    }
}

/// A cookie namespace as a role names it: a reference to the role's own static name, 8 bytes
/// where the name is 16 (every pair of a map keeps one).
pub type Namespace = &'static &'static str;

/// A pair that contradicts one made earlier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cookie {namespace}: {left} already pairs with {earlier}, not {right}")]
pub struct Conflict {
    pub namespace: &'static str,
    pub left: String,
    pub right: String,
    pub earlier: String,
}

/// Pairs kept in a list up to this many; past it, in two hash maps. A session pairs a few
/// dozen values (an SMB dialog over DCE/RPC: a MID and a call id per request, PID, TID, UID,
/// FID, policy handles), and its map lives as long as the connection: a list whose pairs
/// carry their hashes is smaller than two hash maps and, scanned hash first, no slower to
/// search at this size.
const FEW: usize = 64;

#[derive(Debug, Clone)]
pub struct ValueMap {
    pairs: Pairs,
}

impl Default for ValueMap {
    fn default() -> Self {
        ValueMap {
            pairs: Pairs::Few(Few::default()),
        }
    }
}

/// Retired pairs take at most this many bytes; past it, pairs stay as they are (a lookup
/// that misses the live pairs reads them all).
const RETIRED_MAX: usize = 1 << 10;

/// Marks a namespace's name in [`Retired`]; the names take the indexes 0, 1, ... in order.
const NAME: u8 = 0x7f;

/// Pairs of numbers a session is done with, packed in one buffer: a few bytes each where a
/// live pair takes some fifty. They still answer lookups, so that the map behaves as if they
/// were live. Each pair is its namespace's index (a byte below [`NAME`]), then its left and
/// right numbers (LEB128); a namespace's name comes once, before its first pair: [`NAME`],
/// its length, its bytes.
#[derive(Debug, Clone, Default)]
struct Retired(Vec<u8>);

/// An item of [`Retired`].
enum Item<'a> {
    Name(&'a [u8]),
    Pair(u8, u64, u64),
}

impl Retired {
    fn items(&self) -> impl Iterator<Item = Item<'_>> {
        let b = &self.0[..];
        let mut at = 0;
        let number = move |at: &mut usize| {
            let mut n = 0u64;
            for shift in (0..64).step_by(7) {
                let x = *b.get(*at)?;
                *at += 1;
                n |= u64::from(x & 0x7f) << shift;
                if x < 0x80 {
                    break;
                }
            }
            Some(n)
        };
        std::iter::from_fn(move || {
            let tag = *b.get(at)?;
            at += 1;
            if tag == NAME {
                let len = usize::from(*b.get(at)?);
                let name = b.get(at + 1..at + 1 + len)?;
                at += 1 + len;
                return Some(Item::Name(name));
            }
            Some(Item::Pair(tag, number(&mut at)?, number(&mut at)?))
        })
    }

    /// The index of `namespace`'s name, and how many names there are.
    fn index(&self, namespace: &str) -> (Option<u8>, u8) {
        let mut names = 0u8;
        for item in self.items() {
            if let Item::Name(n) = item {
                if n == namespace.as_bytes() {
                    return (Some(names), names + 1);
                }
                names += 1;
            }
        }
        (None, names)
    }

    /// Packs a pair of numbers; `false` when there is no room left.
    fn push(&mut self, namespace: Namespace, left: u64, right: u64) -> bool {
        let (known, names) = self.index(namespace);
        let idx = known.unwrap_or(names);
        let leb = |n: u64| (n.max(1).ilog2() as usize) / 7 + 1;
        let named = match known {
            Some(_) => 0,
            None => 2 + namespace.len(),
        };
        let len = named + 1 + leb(left) + leb(right);
        if idx >= NAME || namespace.len() > 0xff || self.0.len() + len > RETIRED_MAX {
            return false;
        }
        self.0.reserve_exact(len);
        if known.is_none() {
            self.0.extend_from_slice(&[NAME, namespace.len() as u8]);
            self.0.extend_from_slice(namespace.as_bytes());
        }
        self.0.push(idx);
        for mut n in [left, right] {
            while n >= 0x80 {
                self.0.push(n as u8 | 0x80);
                n >>= 7;
            }
            self.0.push(n as u8);
        }
        true
    }

    /// In one pass: the right value retired with `left` on the left, and the left value
    /// retired with `right` on the right.
    fn pairs_of(
        &self,
        namespace: &str,
        left: &Value,
        right: &Value,
    ) -> (Option<Value>, Option<Value>) {
        self.numbers_of(namespace, uint(left), uint(right))
    }

    /// [`Retired::pairs_of`] for numbers (`None`: not looked up).
    fn numbers_of(
        &self,
        namespace: &str,
        l: Option<u64>,
        r: Option<u64>,
    ) -> (Option<Value>, Option<Value>) {
        let (mut forward, mut backward) = (None, None);
        if self.0.is_empty() || (l, r) == (None, None) {
            return (None, None);
        }
        let (mut names, mut ns) = (0u8, None);
        for item in self.items() {
            match item {
                Item::Name(n) => {
                    if n == namespace.as_bytes() {
                        ns = Some(names);
                    }
                    names += 1;
                }
                Item::Pair(i, a, b) if Some(i) == ns => {
                    if l == Some(a) {
                        forward = Some(Value::Uint(b));
                    }
                    if r == Some(b) {
                        backward = Some(Value::Uint(a));
                    }
                }
                Item::Pair(..) => {}
            }
        }
        (forward, backward)
    }

    /// The other side of the retired pair whose side `way` (0: left, 1: right) is `v`.
    fn find(&self, way: usize, namespace: &str, v: &Value) -> Option<Value> {
        if way == 0 {
            self.numbers_of(namespace, uint(v), None).0
        } else {
            self.numbers_of(namespace, None, uint(v)).1
        }
    }
}

/// The number `v` holds, if it is one.
fn uint(v: &Value) -> Option<u64> {
    match v {
        Value::Uint(n) => Some(*n),
        _ => None,
    }
}

/// The pairs of a [`ValueMap`].
#[derive(Debug, Clone)]
enum Pairs {
    Few(Few),
    /// Boxed: every candidate script of every session holds a map, nearly always few.
    Many(Box<Maps>),
}

/// A short map: its pairs in the order made, with their hashes, and a small open addressing
/// index per side over those, so a lookup compares a value or two, not every pair (a session
/// looks up its cookies several times per message).
#[derive(Debug, Clone, Default)]
struct Few {
    pairs: Vec<Pair>,
    /// Pairs retired by [`ValueMap::retire`] (here, not beside the pairs: every candidate
    /// script of every session holds a map, which stays as small as it was).
    retired: Retired,
    /// Per side, from slot `key & mask` on: one more than the index of a pair with that key,
    /// 0 for an empty slot. A power of two at least twice the pairs' capacity (so never full);
    /// one byte a slot, as a short map holds at most [`FEW`] pairs.
    slots: Vec<[u8; 2]>,
}

#[derive(Debug, Clone)]
struct Pair {
    /// [`key`] of `(namespace, left)` and of `(namespace, right)`.
    keys: [u32; 2],
    namespace: Namespace,
    left: Compact,
    right: Compact,
}

impl Pair {
    /// Whether side `way` (0: left, 1: right) holds `v` in `namespace`.
    fn holds(&self, way: usize, namespace: &str, v: &Value) -> bool {
        let own = if way == 0 { &self.left } else { &self.right };
        own.is(v) && same_namespace(self.namespace, namespace)
    }
}

/// Bytes up to this long are kept inline in a [`Compact`].
const INLINE: usize = 14;

/// A value as a short map keeps it, in 16 bytes rather than a [`Value`]'s 40: a map lives as
/// long as its connection, and its cookies are nearly all numbers or short handles. One form
/// per value (bytes up to [`INLINE`] long are always inline), so forms compare as values do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Compact {
    Uint(u64),
    Int(i64),
    Short {
        len: u8,
        bytes: [u8; INLINE],
    },
    /// Any other value, holding its own bytes (see [`detached`]).
    Boxed(Box<Value>),
}

const _: () = assert!(std::mem::size_of::<Compact>() == 16);
const _: () = assert!(std::mem::size_of::<Pair>() == 48);
// Every candidate of every session holds a map.
const _: () = assert!(std::mem::size_of::<ValueMap>() == 72);

impl Compact {
    fn new(v: &Value) -> Self {
        match v {
            Value::Uint(n) => Compact::Uint(*n),
            Value::Int(n) => Compact::Int(*n),
            Value::Bytes(b) if b.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..b.len()].copy_from_slice(b);
                Compact::Short {
                    len: b.len() as u8,
                    bytes,
                }
            }
            Value::Bytes(b) => Compact::Boxed(Box::new(Value::Bytes(Bytes::copy_from_slice(b)))),
            v => Compact::Boxed(Box::new(v.clone())),
        }
    }

    /// Whether this is `v`, compared without building a [`Value`].
    fn is(&self, v: &Value) -> bool {
        match (self, v) {
            (Compact::Uint(a), Value::Uint(b)) => a == b,
            (Compact::Int(a), Value::Int(b)) => a == b,
            (Compact::Short { len, bytes }, Value::Bytes(b)) => bytes[..usize::from(*len)] == b[..],
            (Compact::Boxed(a), v) => **a == *v,
            _ => false,
        }
    }

    fn value(&self) -> Value {
        match self {
            Compact::Uint(n) => Value::Uint(*n),
            Compact::Int(n) => Value::Int(*n),
            Compact::Short { len, bytes } => {
                Value::Bytes(Bytes::copy_from_slice(&bytes[..usize::from(*len)]))
            }
            Compact::Boxed(v) => (**v).clone(),
        }
    }
}

impl Few {
    /// The pair whose side `way` holds `v` (hashing to `k`) in `namespace`.
    fn find(&self, way: usize, k: u32, namespace: &str, v: &Value) -> Option<&Pair> {
        self.position(way, k, namespace, v).map(|i| &self.pairs[i])
    }

    /// The index of [`Few::find`]'s pair.
    fn position(&self, way: usize, k: u32, namespace: &str, v: &Value) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut at = k as usize & mask;
        loop {
            let i = usize::from(self.slots[at][way]).checked_sub(1)?;
            if self.pairs[i].keys[way] == k && self.pairs[i].holds(way, namespace, v) {
                return Some(i);
            }
            at = (at + 1) & mask;
        }
    }

    fn push(&mut self, pair: Pair) {
        // Grown a pair at a time: the list is kept for the connection's life, and room
        // reserved ahead (by half, as it was) stayed unused in an idle session, 13 pairs'
        // worth (over 600 bytes with their keys) after eight SMB requests. The allocator
        // grows a block in place while it fits its size class, so a push copies the list
        // only when the list crosses one.
        let n = self.pairs.len();
        self.pairs.reserve_exact(1);
        self.pairs.push(pair);
        if self.slots.len() < 2 * self.pairs.capacity() {
            self.reindex();
        } else {
            self.place(n);
        }
    }

    /// Forgets pair `i`.
    fn remove(&mut self, i: usize) {
        self.pairs.remove(i);
        self.reindex();
    }

    /// Builds the index anew for the pairs' capacity.
    fn reindex(&mut self) {
        let size = (2 * self.pairs.capacity()).next_power_of_two();
        self.slots.clear();
        self.slots.resize(size, [0; 2]);
        self.slots.shrink_to_fit();
        (0..self.pairs.len()).for_each(|i| self.place(i));
    }

    /// Enters pair `i` in the index, both sides.
    fn place(&mut self, i: usize) {
        let mask = self.slots.len() - 1;
        let tag = u8::try_from(i + 1).expect("a short map holds at most FEW pairs");
        for way in 0..2 {
            let mut at = self.pairs[i].keys[way] as usize & mask;
            while self.slots[at][way] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at][way] = tag;
        }
    }
}

/// Namespaces are static names: nearly always the same string, compared without reading it.
fn same_namespace(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// The hash of a value in a namespace, as a short map keeps it.
fn key(namespace: &str, v: &Value) -> u32 {
    let mut h = QuickHasher::default();
    h.write(namespace.as_bytes());
    v.hash(&mut h);
    // The high half: a multiplicative hash mixes its last word into the high bits.
    (h.finish() >> 32) as u32
}

/// Both directions of a long map.
#[derive(Debug, Clone)]
struct Maps {
    forward: HashMap<(&'static str, Value), Value, Quick>,
    backward: HashMap<(&'static str, Value), Value, Quick>,
    retired: Retired,
}

/// The maps' hashing: the values are the session's own (cookies it was sent or chose), not a
/// table an attacker can fill with colliding keys beyond what the session's memory limit
/// allows, so a multiply-rotate hash (FxHash's) replaces SipHash, which took most of the time
/// of a lookup.
type Quick = BuildHasherDefault<QuickHasher>;

#[derive(Default)]
struct QuickHasher(u64);

impl Hasher for QuickHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        // The last bytes in one word, with their count (so "a\0" and "a" differ).
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl ValueMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pairs `left` with `right` in `namespace`; an existing pair must agree, both ways.
    pub fn bind(
        &mut self,
        namespace: Namespace,
        left: Value,
        right: Value,
    ) -> Result<(), Conflict> {
        self.pair(namespace, &left, &right).map(|_| ())
    }

    /// [`ValueMap::bind`] for borrowed values (copied only into a new pair); `true` when the
    /// pair is new.
    pub fn pair(
        &mut self,
        namespace: Namespace,
        left: &Value,
        right: &Value,
    ) -> Result<bool, Conflict> {
        let conflict = |earlier: &dyn fmt::Display| Conflict {
            namespace,
            left: left.to_string(),
            right: right.to_string(),
            earlier: earlier.to_string(),
        };
        let keys = [key(namespace, left), key(namespace, right)];
        // The live pair of `left` answers first; then, a value being live or retired and
        // not both, the retired pair of `left`, the live pair of `right`, its retired pair.
        let backward = match &self.pairs {
            Pairs::Few(f) => {
                match f.find(0, keys[0], namespace, left).map(|p| &p.right) {
                    Some(r) if r.is(right) => return Ok(false),
                    Some(earlier) => return Err(conflict(&earlier.value())),
                    None => {}
                }
                f.find(1, keys[1], namespace, right).map(|p| p.left.value())
            }
            Pairs::Many(m) => {
                match m.forward.get(&(*namespace, left.clone())) {
                    Some(r) if r == right => return Ok(false),
                    Some(earlier) => return Err(conflict(earlier)),
                    None => {}
                }
                m.backward.get(&(*namespace, right.clone())).cloned()
            }
        };
        match (self.retired().pairs_of(namespace, left, right), backward) {
            ((Some(r), _), _) if r == *right => return Ok(false),
            ((Some(earlier), _), _)
            | ((None, _), Some(earlier))
            | ((None, Some(earlier)), None) => return Err(conflict(&earlier)),
            ((None, None), None) => {}
        }
        self.insert(keys, namespace, left, right);
        Ok(true)
    }

    /// Adds a pair neither of whose values is paired yet (`keys`: their [`key`]s), copying
    /// the values.
    fn insert(&mut self, keys: [u32; 2], namespace: Namespace, left: &Value, right: &Value) {
        match &mut self.pairs {
            Pairs::Few(f) if f.pairs.len() < FEW => f.push(Pair {
                keys,
                namespace,
                left: Compact::new(left),
                right: Compact::new(right),
            }),
            Pairs::Few(f) => {
                let mut forward = HashMap::with_capacity_and_hasher(2 * FEW, Quick::default());
                let mut backward = HashMap::with_capacity_and_hasher(2 * FEW, Quick::default());
                let known = std::mem::take(&mut f.pairs)
                    .into_iter()
                    .map(|p| (*p.namespace, p.left.value(), p.right.value()));
                let new = (*namespace, detached(left.clone()), detached(right.clone()));
                for (namespace, left, right) in known.chain([new]) {
                    forward.insert((namespace, left.clone()), right.clone());
                    backward.insert((namespace, right), left);
                }
                let retired = std::mem::take(&mut f.retired);
                self.pairs = Pairs::Many(Box::new(Maps {
                    forward,
                    backward,
                    retired,
                }));
            }
            Pairs::Many(m) => {
                let (left, right) = (detached(left.clone()), detached(right.clone()));
                m.forward.insert((*namespace, left.clone()), right.clone());
                m.backward.insert((*namespace, right), left);
            }
        }
    }

    /// Forgets a pair made by [`ValueMap::bind`] (undoing a match that failed later).
    pub fn unbind(&mut self, namespace: Namespace, left: &Value, right: &Value) {
        match &mut self.pairs {
            Pairs::Few(f) => {
                let at = f.pairs.iter().position(|p| {
                    same_namespace(p.namespace, namespace) && p.left.is(left) && p.right.is(right)
                });
                if let Some(i) = at {
                    f.remove(i);
                }
            }
            Pairs::Many(m) => {
                m.forward.remove(&(*namespace, left.clone()));
                m.backward.remove(&(*namespace, right.clone()));
            }
        }
    }

    /// Packs the pair whose right value is `right`, when both are numbers and there is room:
    /// it answers every lookup as before, in a few bytes instead of some fifty. A session
    /// retires the pairs of values its script no longer carries (a request's MID, its call
    /// id), which would otherwise take their room for as long as the connection stays open.
    /// [`ValueMap::entries`] lists live pairs only.
    pub fn retire(&mut self, namespace: Namespace, right: &Value) {
        let Value::Uint(r) = right else { return };
        match &mut self.pairs {
            Pairs::Few(f) => {
                let Some(i) = f.position(1, key(namespace, right), namespace, right) else {
                    return;
                };
                if let Compact::Uint(l) = f.pairs[i].left {
                    if f.retired.push(namespace, l, *r) {
                        f.remove(i);
                    }
                }
            }
            Pairs::Many(m) => {
                let k = (*namespace, right.clone());
                if let Some(&Value::Uint(l)) = m.backward.get(&k) {
                    if m.retired.push(namespace, l, *r) {
                        m.backward.remove(&k);
                        m.forward.remove(&(*namespace, Value::Uint(l)));
                    }
                }
            }
        }
    }

    /// Pairs a value the right side issued with a left value: itself if that is free on the
    /// left, else a fresh one of the same size (a number of no more bits, or random bytes of the
    /// same length), so two right values never share a left one. Returns the left value.
    pub fn bind_new(&mut self, namespace: Namespace, right: &Value) -> Value {
        if let Pairs::Few(f) = &self.pairs {
            // The common cases, hashing once: `right` paired already, or free on both sides
            // (then it stands for itself).
            let k = key(namespace, right);
            if let Some(p) = f.find(1, k, namespace, right) {
                return p.left.value();
            }
            let free = || f.retired.pairs_of(namespace, right, right) == (None, None);
            if f.find(0, k, namespace, right).is_none() && free() {
                self.insert([k, k], namespace, right, right);
                return right.clone();
            }
        }
        if let Some(l) = self.backward(namespace, right) {
            return l;
        }
        let free = |m: &Self, v: &Value| m.forward(namespace, v).is_none();
        let left = if free(self, right) {
            right.clone()
        } else {
            match right {
                Value::Uint(n) => {
                    let bits = [8u32, 16, 32, 64]
                        .into_iter()
                        .find(|b| *b == 64 || *n < (1u64 << b))
                        .unwrap_or(64);
                    let max = if bits == 64 {
                        u64::MAX
                    } else {
                        (1u64 << bits) - 1
                    };
                    (1..=max.min(1 << 20))
                        .map(|k| Value::Uint(n.wrapping_add(k) & max))
                        .find(|v| free(self, v))
                        .unwrap_or_else(|| right.clone())
                }
                Value::Bytes(b) => (0..64)
                    .map(|_| Value::Bytes(super::random_bytes(b.len()).into()))
                    .find(|v| free(self, v))
                    .unwrap_or_else(|| right.clone()),
                other => other.clone(),
            }
        };
        // A value that stayed taken (nothing free) keeps the earlier pair.
        let _ = self.pair(namespace, &left, right);
        left
    }

    /// Every pair, `(namespace, left, right)`, in no particular order.
    pub fn entries(&self) -> Vec<(&'static str, Value, Value)> {
        match &self.pairs {
            Pairs::Few(f) => f
                .pairs
                .iter()
                .map(|p| (*p.namespace, p.left.value(), p.right.value()))
                .collect(),
            Pairs::Many(m) => m
                .forward
                .iter()
                .map(|((ns, l), r)| (*ns, l.clone(), r.clone()))
                .collect(),
        }
    }

    /// The right value paired with `left`.
    pub fn forward(&self, namespace: Namespace, left: &Value) -> Option<Value> {
        match &self.pairs {
            Pairs::Few(f) => f
                .find(0, key(namespace, left), namespace, left)
                .map(|p| p.right.value()),
            Pairs::Many(m) => m.forward.get(&(*namespace, left.clone())).cloned(),
        }
        .or_else(|| self.retired().find(0, namespace, left))
    }

    /// The left value paired with `right`.
    pub fn backward(&self, namespace: Namespace, right: &Value) -> Option<Value> {
        match &self.pairs {
            Pairs::Few(f) => f
                .find(1, key(namespace, right), namespace, right)
                .map(|p| p.left.value()),
            Pairs::Many(m) => m.backward.get(&(*namespace, right.clone())).cloned(),
        }
        .or_else(|| self.retired().find(1, namespace, right))
    }

    /// The retired pairs.
    fn retired(&self) -> &Retired {
        match &self.pairs {
            Pairs::Few(f) => &f.retired,
            Pairs::Many(m) => &m.retired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_pairs_with_one_value_both_ways() {
        let mut m = ValueMap::new();
        m.bind(&"fid", Value::Uint(1), Value::Uint(7)).unwrap();
        m.bind(&"fid", Value::Uint(1), Value::Uint(7)).unwrap();
        assert!(m.bind(&"fid", Value::Uint(1), Value::Uint(8)).is_err());
        assert!(m.bind(&"fid", Value::Uint(2), Value::Uint(7)).is_err());
        // Namespaces are separate.
        m.bind(&"tid", Value::Uint(1), Value::Uint(9)).unwrap();
        assert_eq!(m.forward(&"fid", &Value::Uint(1)), Some(Value::Uint(7)));
        assert_eq!(m.backward(&"tid", &Value::Uint(9)), Some(Value::Uint(1)));
    }

    #[test]
    fn a_new_value_taken_on_the_left_gets_a_fresh_one() {
        let mut m = ValueMap::new();
        // The attacker knows FID 7 as the honeypot's 9; the honeypot now issues 7.
        m.bind(&"fid", Value::Uint(7), Value::Uint(9)).unwrap();
        let left = m.bind_new(&"fid", &Value::Uint(7));
        assert_ne!(left, Value::Uint(7));
        assert!(matches!(left, Value::Uint(n) if n < 256));
        assert_eq!(m.backward(&"fid", &Value::Uint(7)), Some(left.clone()));
        assert_eq!(m.forward(&"fid", &Value::Uint(7)), Some(Value::Uint(9)));
        // A free value stands for itself; asking again gives the same pair.
        assert_eq!(m.bind_new(&"fid", &Value::Uint(11)), Value::Uint(11));
        assert_eq!(m.bind_new(&"fid", &Value::Uint(7)), left);
        let h = Value::Bytes(vec![1u8; 20].into());
        m.bind(&"handle", h.clone(), Value::Bytes(vec![2u8; 20].into()))
            .unwrap();
        let fresh = m.bind_new(&"handle", &h);
        assert!(matches!(&fresh, Value::Bytes(b) if b.len() == 20 && *b != vec![1u8; 20]));
    }

    #[test]
    fn many_pairs_stay_paired_past_the_list() {
        let mut m = ValueMap::new();
        for i in 0..3 * FEW as u64 {
            m.bind(&"mid", Value::Uint(i), Value::Uint(i + 1000))
                .unwrap();
            m.bind(&"mid", Value::Uint(i), Value::Uint(i + 1000))
                .unwrap();
        }
        assert!(matches!(m.pairs, Pairs::Many(_)));
        for i in 0..3 * FEW as u64 {
            assert_eq!(
                m.forward(&"mid", &Value::Uint(i)),
                Some(Value::Uint(i + 1000))
            );
            assert_eq!(
                m.backward(&"mid", &Value::Uint(i + 1000)),
                Some(Value::Uint(i))
            );
        }
        assert!(m.bind(&"mid", Value::Uint(1), Value::Uint(7)).is_err());
        assert!(m
            .bind(&"mid", Value::Uint(7_000), Value::Uint(1001))
            .is_err());
        assert_eq!(m.forward(&"tid", &Value::Uint(1)), None);
    }

    #[test]
    fn an_unbound_pair_is_forgotten_both_ways() {
        for n in [3, 3 * FEW as u64] {
            let mut m = ValueMap::new();
            for i in 0..n {
                m.bind(&"fid", Value::Uint(i), Value::Uint(i + 100))
                    .unwrap();
            }
            m.unbind(&"fid", &Value::Uint(1), &Value::Uint(101));
            assert_eq!(m.forward(&"fid", &Value::Uint(1)), None);
            assert_eq!(m.backward(&"fid", &Value::Uint(101)), None);
            assert_eq!(m.forward(&"fid", &Value::Uint(2)), Some(Value::Uint(102)));
            m.bind(&"fid", Value::Uint(1), Value::Uint(7)).unwrap();
        }
    }

    /// A retired pair leaves the live pairs but answers every lookup and conflict as it did,
    /// in a short map and a long one; pairs of other values stay live.
    #[test]
    fn a_retired_pair_answers_as_it_did() {
        for n in [5, 2 * FEW as u64] {
            let mut m = ValueMap::new();
            for i in 0..n {
                m.bind(&"mid", Value::Uint(i), Value::Uint(i + 1000))
                    .unwrap();
            }
            let h = Value::Bytes(vec![7u8; 20].into());
            m.bind(&"handle", h.clone(), h.clone()).unwrap();
            let before = m.clone();
            m.retire(&"mid", &Value::Uint(1002));
            m.retire(&"mid", &Value::Uint(1000 + n - 1));
            m.retire(&"handle", &h);
            m.retire(&"mid", &Value::Uint(5555));
            assert_eq!(m.entries().len() as u64, n + 1 - 2);
            for i in 0..n + 2 {
                let (l, r) = (Value::Uint(i), Value::Uint(i + 1000));
                assert_eq!(m.forward(&"mid", &l), before.forward(&"mid", &l));
                assert_eq!(m.backward(&"mid", &r), before.backward(&"mid", &r));
            }
            assert_eq!(m.backward(&"handle", &h), Some(h.clone()));
            for (l, r) in [
                (2, 1002),
                (2, 7),
                (1, 1002),
                (n - 1, 9),
                (n + 5, 1000 + n - 1),
            ] {
                let (l, r) = (Value::Uint(l), Value::Uint(r));
                let (mut a, mut b) = (m.clone(), before.clone());
                assert_eq!(a.pair(&"mid", &l, &r), b.pair(&"mid", &l, &r), "{l} {r}");
                assert_eq!(a.bind_new(&"mid", &l), b.bind_new(&"mid", &l), "{l}");
            }
        }
    }

    /// A short map holds room for its pairs alone, however many it took (an idle session
    /// keeps it), and finds every pair both ways as its index is rebuilt for more.
    #[test]
    fn a_few_pairs_take_no_more_room_than_they_need() {
        let mut m = ValueMap::new();
        for n in 1..=FEW as u64 {
            m.bind(&"uid", Value::Uint(n), Value::Uint(n + 900))
                .unwrap();
            let Pairs::Few(f) = &m.pairs else {
                panic!("{n} pairs are a list")
            };
            let n = n as usize;
            assert_eq!(f.pairs.capacity(), n);
            assert!(f.slots.len() >= 2 * n);
            for i in 1..=n as u64 {
                assert_eq!(
                    m.forward(&"uid", &Value::Uint(i)),
                    Some(Value::Uint(i + 900))
                );
                assert_eq!(
                    m.backward(&"uid", &Value::Uint(i + 900)),
                    Some(Value::Uint(i))
                );
            }
            assert!(m.bind(&"uid", Value::Uint(1), Value::Uint(5)).is_err());
        }
    }

    /// One of each kind of value, bytes around the inline length among them.
    fn every_kind() -> Vec<Value> {
        let bytes = |n: usize| Value::Bytes((0..n as u8).collect::<Vec<_>>().into());
        vec![
            Value::Uint(0),
            Value::Uint(u64::MAX),
            Value::Int(0),
            Value::Int(-5),
            bytes(0),
            bytes(1),
            bytes(INLINE),
            bytes(INLINE + 1),
            bytes(100),
            Value::Str(String::new()),
            Value::Str("\u{1}".into()),
            Value::Ip("192.0.2.1".parse().unwrap()),
            Value::Ip("2001:db8::1".parse().unwrap()),
            Value::Socket("192.0.2.1:445".parse().unwrap()),
        ]
    }

    #[test]
    fn a_compact_value_is_the_value_it_was_made_from_and_no_other() {
        let all = every_kind();
        for (i, v) in all.iter().enumerate() {
            let c = Compact::new(v);
            assert_eq!(c.value(), *v);
            let inline = !matches!(v, Value::Bytes(b) if b.len() > INLINE)
                && matches!(v, Value::Uint(_) | Value::Int(_) | Value::Bytes(_));
            assert_eq!(!matches!(c, Compact::Boxed(_)), inline, "{v:?}");
            for (j, w) in all.iter().enumerate() {
                assert_eq!(c.is(w), i == j, "{v:?} against {w:?}");
                assert_eq!(c == Compact::new(w), i == j, "{v:?} against {w:?}");
            }
        }
        // Bytes that are a slice of a larger buffer are equal to the same bytes on their own.
        let buf = bytes::Bytes::from(vec![9u8; 64]);
        let c = Compact::new(&Value::Bytes(buf.slice(3..10)));
        assert!(c.is(&Value::Bytes(vec![9u8; 7].into())));
    }

    #[test]
    fn values_of_every_kind_pair_in_short_and_long_maps() {
        let all = every_kind();
        let n = all.len();
        for extra in [0, 2 * FEW as u64] {
            let mut m = ValueMap::new();
            for i in 0..extra {
                m.bind(&"mid", Value::Uint(i), Value::Uint(i)).unwrap();
            }
            for (i, v) in all.iter().enumerate() {
                m.bind(&"any", v.clone(), all[(i + 1) % n].clone()).unwrap();
            }
            assert_eq!(matches!(m.pairs, Pairs::Many(_)), extra > 0);
            for (i, v) in all.iter().enumerate() {
                let right = &all[(i + 1) % n];
                assert_eq!(m.forward(&"any", v).as_ref(), Some(right));
                assert_eq!(m.backward(&"any", right).as_ref(), Some(v));
                assert_eq!(m.forward(&"other", v), None);
            }
            let e = m.bind(&"any", all[0].clone(), all[2].clone()).unwrap_err();
            assert_eq!(e.earlier, all[1].to_string());
            let e = m.bind(&"any", Value::Uint(7), all[1].clone()).unwrap_err();
            assert_eq!(e.earlier, all[0].to_string());
            m.unbind(&"any", &all[7], &all[8]);
            assert_eq!(m.forward(&"any", &all[7]), None);
            assert_eq!(m.backward(&"any", &all[8]), None);
            assert_eq!(m.entries().len() as u64, n as u64 - 1 + extra);
        }
    }
}
