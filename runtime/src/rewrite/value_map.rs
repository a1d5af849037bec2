//! A bijection per cookie namespace between two views of a session (attacker and script, or
//! attacker and honeypot): one value on the left pairs with one value on the right.

use std::collections::HashMap;

use crate::codec::Value;

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
        self.forward
            .insert((namespace, left.clone()), right.clone());
        self.backward.insert((namespace, right), left);
        Ok(())
    }

    pub fn forward(&self, namespace: &'static str, left: &Value) -> Option<&Value> {
        self.forward.get(&(namespace, left.clone()))
    }

    pub fn backward(&self, namespace: &'static str, right: &Value) -> Option<&Value> {
        self.backward.get(&(namespace, right.clone()))
    }

    pub fn len(&self) -> usize {
        self.forward.len()
    }

    pub fn is_empty(&self) -> bool {
        self.forward.is_empty()
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
}
