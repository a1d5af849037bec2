//! A bijection per cookie namespace between two views of a session (attacker and script, or
//! attacker and honeypot): one value on the left pairs with one value on the right.

use std::collections::HashMap;
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

/// The pairs of a [`ValueMap`].
#[derive(Debug, Clone)]
enum Pairs {
    Few(Few),
    /// Boxed: every candidate script of every session holds a map, nearly always few.
    Many(Box<Maps>),
}

/// A short map: its pairs in the order made, their hashes apart from them, and a small open
/// addressing index per side over those, so a lookup compares a value or two, not every pair
/// (a session looks up its cookies several times per message).
#[derive(Debug, Clone, Default)]
struct Few {
    /// [`key`] of `(namespace, left)` and of `(namespace, right)`, per pair.
    keys: Vec<[u32; 2]>,
    pairs: Vec<Pair>,
    /// Per side, from slot `key & mask` on: one more than the index of a pair with that key,
    /// 0 for an empty slot. A power of two at least twice the pairs' capacity (so never full);
    /// one byte a slot, as a short map holds at most [`FEW`] pairs.
    slots: Vec<[u8; 2]>,
}

#[derive(Debug, Clone)]
struct Pair {
    namespace: &'static str,
    left: Value,
    right: Value,
}

impl Pair {
    /// Whether side `way` (0: left, 1: right) holds `v` in `namespace`.
    fn holds(&self, way: usize, namespace: &str, v: &Value) -> bool {
        let own = if way == 0 { &self.left } else { &self.right };
        own == v && same_namespace(self.namespace, namespace)
    }
}

impl Few {
    /// The pair whose side `way` holds `v` (hashing to `k`) in `namespace`.
    fn find(&self, way: usize, k: u32, namespace: &str, v: &Value) -> Option<&Pair> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut at = k as usize & mask;
        loop {
            let i = usize::from(self.slots[at][way]).checked_sub(1)?;
            let p = &self.pairs[i];
            if self.keys[i][way] == k && p.holds(way, namespace, v) {
                return Some(p);
            }
            at = (at + 1) & mask;
        }
    }

    fn push(&mut self, keys: [u32; 2], pair: Pair) {
        // Grown by half at a time: the list is kept for the connection's life, and a doubling
        // would leave up to half of it unused.
        let n = self.pairs.len();
        if n == self.pairs.capacity() {
            self.pairs.reserve_exact((n / 2).max(2).min(FEW - n));
        }
        self.keys
            .reserve_exact(self.pairs.capacity() - self.keys.len());
        self.keys.push(keys);
        self.pairs.push(pair);
        if self.slots.len() < 2 * self.pairs.capacity() {
            self.reindex();
        } else {
            self.place(n);
        }
    }

    /// Forgets pair `i`.
    fn remove(&mut self, i: usize) {
        self.keys.remove(i);
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
            let mut at = self.keys[i][way] as usize & mask;
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
        namespace: &'static str,
        left: Value,
        right: Value,
    ) -> Result<(), Conflict> {
        self.pair(namespace, &left, &right).map(|_| ())
    }

    /// [`ValueMap::bind`] for borrowed values (copied only into a new pair); `true` when the
    /// pair is new.
    pub fn pair(
        &mut self,
        namespace: &'static str,
        left: &Value,
        right: &Value,
    ) -> Result<bool, Conflict> {
        let conflict = |earlier: &Value| Conflict {
            namespace,
            left: left.to_string(),
            right: right.to_string(),
            earlier: earlier.to_string(),
        };
        let keys = [key(namespace, left), key(namespace, right)];
        let (forward, backward) = match &self.pairs {
            Pairs::Few(f) => (
                f.find(0, keys[0], namespace, left).map(|p| &p.right),
                f.find(1, keys[1], namespace, right).map(|p| &p.left),
            ),
            Pairs::Many(m) => (
                m.forward.get(&(namespace, left.clone())),
                m.backward.get(&(namespace, right.clone())),
            ),
        };
        match (forward, backward) {
            (Some(r), _) if r == right => return Ok(false),
            (Some(earlier), _) | (None, Some(earlier)) => return Err(conflict(earlier)),
            (None, None) => {}
        }
        self.insert(
            keys,
            namespace,
            detached(left.clone()),
            detached(right.clone()),
        );
        Ok(true)
    }

    /// Adds a pair neither of whose values is paired yet (`keys`: their [`key`]s).
    fn insert(&mut self, keys: [u32; 2], namespace: &'static str, left: Value, right: Value) {
        match &mut self.pairs {
            Pairs::Few(f) if f.pairs.len() < FEW => f.push(
                keys,
                Pair {
                    namespace,
                    left,
                    right,
                },
            ),
            Pairs::Few(f) => {
                let mut forward = HashMap::with_capacity_and_hasher(2 * FEW, Quick::default());
                let mut backward = HashMap::with_capacity_and_hasher(2 * FEW, Quick::default());
                let new = Pair {
                    namespace,
                    left,
                    right,
                };
                for p in std::mem::take(&mut f.pairs).into_iter().chain([new]) {
                    forward.insert((p.namespace, p.left.clone()), p.right.clone());
                    backward.insert((p.namespace, p.right), p.left);
                }
                self.pairs = Pairs::Many(Box::new(Maps { forward, backward }));
            }
            Pairs::Many(m) => {
                m.forward.insert((namespace, left.clone()), right.clone());
                m.backward.insert((namespace, right), left);
            }
        }
    }

    /// Forgets a pair made by [`ValueMap::bind`] (undoing a match that failed later).
    pub fn unbind(&mut self, namespace: &'static str, left: &Value, right: &Value) {
        match &mut self.pairs {
            Pairs::Few(f) => {
                let at = f.pairs.iter().position(|p| {
                    same_namespace(p.namespace, namespace) && p.left == *left && p.right == *right
                });
                if let Some(i) = at {
                    f.remove(i);
                }
            }
            Pairs::Many(m) => {
                m.forward.remove(&(namespace, left.clone()));
                m.backward.remove(&(namespace, right.clone()));
            }
        }
    }

    /// Pairs a value the right side issued with a left value: itself if that is free on the
    /// left, else a fresh one of the same size (a number of no more bits, or random bytes of the
    /// same length), so two right values never share a left one. Returns the left value.
    pub fn bind_new(&mut self, namespace: &'static str, right: Value) -> Value {
        if let Pairs::Few(f) = &self.pairs {
            // The common cases, hashing once: `right` paired already, or free on both sides
            // (then it stands for itself).
            let k = key(namespace, &right);
            if let Some(p) = f.find(1, k, namespace, &right) {
                return p.left.clone();
            }
            if f.find(0, k, namespace, &right).is_none() {
                let right = detached(right);
                self.insert([k, k], namespace, right.clone(), right.clone());
                return right;
            }
        }
        if let Some(l) = self.backward(namespace, &right) {
            return l.clone();
        }
        let free = |m: &Self, v: &Value| m.forward(namespace, v).is_none();
        let left = if free(self, &right) {
            right.clone()
        } else {
            match &right {
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
        let _ = self.bind(namespace, left.clone(), right);
        left
    }

    /// Every pair, `(namespace, left, right)`, in no particular order.
    pub fn entries(&self) -> Vec<(&'static str, &Value, &Value)> {
        match &self.pairs {
            Pairs::Few(f) => f
                .pairs
                .iter()
                .map(|p| (p.namespace, &p.left, &p.right))
                .collect(),
            Pairs::Many(m) => m.forward.iter().map(|((ns, l), r)| (*ns, l, r)).collect(),
        }
    }

    pub fn forward(&self, namespace: &'static str, left: &Value) -> Option<&Value> {
        match &self.pairs {
            Pairs::Few(f) => f
                .find(0, key(namespace, left), namespace, left)
                .map(|p| &p.right),
            Pairs::Many(m) => m.forward.get(&(namespace, left.clone())),
        }
    }

    pub fn backward(&self, namespace: &'static str, right: &Value) -> Option<&Value> {
        match &self.pairs {
            Pairs::Few(f) => f
                .find(1, key(namespace, right), namespace, right)
                .map(|p| &p.left),
            Pairs::Many(m) => m.backward.get(&(namespace, right.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_pairs_with_one_value_both_ways() {
        let mut m = ValueMap::new();
        m.bind("fid", Value::Uint(1), Value::Uint(7)).unwrap();
        m.bind("fid", Value::Uint(1), Value::Uint(7)).unwrap();
        assert!(m.bind("fid", Value::Uint(1), Value::Uint(8)).is_err());
        assert!(m.bind("fid", Value::Uint(2), Value::Uint(7)).is_err());
        // Namespaces are separate.
        m.bind("tid", Value::Uint(1), Value::Uint(9)).unwrap();
        assert_eq!(m.forward("fid", &Value::Uint(1)), Some(&Value::Uint(7)));
        assert_eq!(m.backward("tid", &Value::Uint(9)), Some(&Value::Uint(1)));
    }

    #[test]
    fn a_new_value_taken_on_the_left_gets_a_fresh_one() {
        let mut m = ValueMap::new();
        // The attacker knows FID 7 as the honeypot's 9; the honeypot now issues 7.
        m.bind("fid", Value::Uint(7), Value::Uint(9)).unwrap();
        let left = m.bind_new("fid", Value::Uint(7));
        assert_ne!(left, Value::Uint(7));
        assert!(matches!(left, Value::Uint(n) if n < 256));
        assert_eq!(m.backward("fid", &Value::Uint(7)), Some(&left));
        assert_eq!(m.forward("fid", &Value::Uint(7)), Some(&Value::Uint(9)));
        // A free value stands for itself; asking again gives the same pair.
        assert_eq!(m.bind_new("fid", Value::Uint(11)), Value::Uint(11));
        assert_eq!(m.bind_new("fid", Value::Uint(7)), left);
        let h = Value::Bytes(vec![1u8; 20].into());
        m.bind("handle", h.clone(), Value::Bytes(vec![2u8; 20].into()))
            .unwrap();
        let fresh = m.bind_new("handle", h.clone());
        assert!(matches!(&fresh, Value::Bytes(b) if b.len() == 20 && *b != vec![1u8; 20]));
    }

    #[test]
    fn many_pairs_stay_paired_past_the_list() {
        let mut m = ValueMap::new();
        for i in 0..3 * FEW as u64 {
            m.bind("mid", Value::Uint(i), Value::Uint(i + 1000))
                .unwrap();
            m.bind("mid", Value::Uint(i), Value::Uint(i + 1000))
                .unwrap();
        }
        assert!(matches!(m.pairs, Pairs::Many(_)));
        for i in 0..3 * FEW as u64 {
            assert_eq!(
                m.forward("mid", &Value::Uint(i)),
                Some(&Value::Uint(i + 1000))
            );
            assert_eq!(
                m.backward("mid", &Value::Uint(i + 1000)),
                Some(&Value::Uint(i))
            );
        }
        assert!(m.bind("mid", Value::Uint(1), Value::Uint(7)).is_err());
        assert!(m
            .bind("mid", Value::Uint(7_000), Value::Uint(1001))
            .is_err());
        assert_eq!(m.forward("tid", &Value::Uint(1)), None);
    }

    #[test]
    fn an_unbound_pair_is_forgotten_both_ways() {
        for n in [3, 3 * FEW as u64] {
            let mut m = ValueMap::new();
            for i in 0..n {
                m.bind("fid", Value::Uint(i), Value::Uint(i + 100)).unwrap();
            }
            m.unbind("fid", &Value::Uint(1), &Value::Uint(101));
            assert_eq!(m.forward("fid", &Value::Uint(1)), None);
            assert_eq!(m.backward("fid", &Value::Uint(101)), None);
            assert_eq!(m.forward("fid", &Value::Uint(2)), Some(&Value::Uint(102)));
            m.bind("fid", Value::Uint(1), Value::Uint(7)).unwrap();
        }
    }

    #[test]
    fn a_few_pairs_take_no_more_room_than_they_need() {
        let mut m = ValueMap::new();
        for i in 0..6 {
            m.bind("uid", Value::Uint(i), Value::Uint(i + 9)).unwrap();
        }
        let Pairs::Few(f) = &m.pairs else {
            panic!("six pairs are a list")
        };
        assert_eq!((f.pairs.capacity(), f.keys.capacity()), (6, 6));
    }
}
