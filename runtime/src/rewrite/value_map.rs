//! A bijection per cookie namespace between two views of a session (attacker and script, or
//! attacker and honeypot): one value on the left pairs with one value on the right.

use std::collections::HashMap;

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

#[derive(Debug, Clone, Default)]
pub struct ValueMap {
    forward: HashMap<(&'static str, Value), Value>,
    backward: HashMap<(&'static str, Value), Value>,
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
        let conflict = |earlier: &Value| Conflict {
            namespace,
            left: left.to_string(),
            right: right.to_string(),
            earlier: earlier.to_string(),
        };
        if let Some(r) = self.forward.get(&(namespace, left.clone())) {
            return if *r == right {
                Ok(())
            } else {
                Err(conflict(r))
            };
        }
        if let Some(l) = self.backward.get(&(namespace, right.clone())) {
            return Err(conflict(l));
        }
        let (left, right) = (detached(left), detached(right));
        self.forward
            .insert((namespace, left.clone()), right.clone());
        self.backward.insert((namespace, right), left);
        Ok(())
    }

    /// Pairs a value the right side issued with a left value: itself if that is free on the
    /// left, else a fresh one of the same size (a number of no more bits, or random bytes of the
    /// same length), so two right values never share a left one. Returns the left value.
    pub fn bind_new(&mut self, namespace: &'static str, right: Value) -> Value {
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

    /// Forgets a pair made by [`ValueMap::bind`] (undoing a match that failed later).
    pub fn unbind(&mut self, namespace: &'static str, left: &Value, right: &Value) {
        self.forward.remove(&(namespace, left.clone()));
        self.backward.remove(&(namespace, right.clone()));
    }

    pub fn forward(&self, namespace: &'static str, left: &Value) -> Option<&Value> {
        self.forward.get(&(namespace, left.clone()))
    }

    pub fn backward(&self, namespace: &'static str, right: &Value) -> Option<&Value> {
        self.backward.get(&(namespace, right.clone()))
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
}
