//! One walk over a decoded message that gives the matcher and the store everything they need:
//! its content fields (the match key), its role fields (cookies, host names, options, what the
//! store compares with the script) and whether it carries artifacts. Paths are kept in one
//! buffer, not a string per field: a message that follows its script is compared field by
//! field, and text is made only for what differs.

use std::fmt;
use std::ops::Range;

use crate::codec::{AnyMessage, Class, FieldValue, MatchKey, Role, RoleField, Value, Visitor};

/// A field of a walked message.
#[derive(Debug)]
struct Entry {
    path: Range<usize>,
    /// `None`: a content field.
    role: Option<&'static Role>,
    value: Value,
}

/// A role field of a walked message, borrowed: shows as [`RoleField`] does.
#[derive(Debug, Clone, Copy)]
pub struct RoleRef<'a> {
    pub path: &'a str,
    pub role: &'static Role,
    pub value: &'a Value,
}

impl fmt::Display for RoleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}={}", self.path, self.role.name(), self.value)
    }
}

impl<'a> From<&'a RoleField> for RoleRef<'a> {
    fn from(f: &'a RoleField) -> Self {
        RoleRef {
            path: &f.path,
            role: f.role,
            value: &f.value,
        }
    }
}

impl RoleRef<'_> {
    /// The same field as `f`: same path, role and value (then their texts are equal too).
    pub fn same_as(&self, f: &RoleField) -> bool {
        // The value first: it is what differs when anything does; a value or path that is the
        // field's own (a message read in place) needs no comparing.
        (std::ptr::eq(self.value, &f.value) || *self.value == f.value)
            && same_path(self.path, &f.path)
            && (std::ptr::eq(self.role, f.role) || self.role == f.role)
    }
}

/// Whether two field paths are equal: a message read in place borrows the script's paths,
/// which then need no reading.
pub fn same_path(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// The content and role fields of one message, in wire order.
#[derive(Debug, Default)]
pub struct Walked {
    /// Every recorded path, one after the other.
    paths: String,
    /// The path of the level being visited, each level followed by a dot.
    at: String,
    /// Where each open level starts in `at`.
    levels: Vec<usize>,
    fields: Vec<Entry>,
    /// Path prefixes of `@choice` lists (their elements are not content to match).
    option_lists: Vec<Range<usize>>,
}

impl Walked {
    /// Walks `msg`, reusing this walk's buffers.
    pub fn walk(&mut self, msg: &dyn AnyMessage) {
        self.paths.clear();
        self.at.clear();
        self.levels.clear();
        self.fields.clear();
        self.option_lists.clear();
        msg.visit(self);
    }

    pub fn of(msg: &dyn AnyMessage) -> Walked {
        // Room for a typical message from the start, rather than growing field by field.
        let mut w = Walked {
            paths: String::with_capacity(4096),
            at: String::with_capacity(256),
            levels: Vec::with_capacity(16),
            fields: Vec::with_capacity(96),
            option_lists: Vec::new(),
        };
        w.walk(msg);
        w
    }

    fn path(&self, r: &Range<usize>) -> &str {
        &self.paths[r.clone()]
    }

    /// Role fields, in wire order.
    pub fn roles(&self) -> impl Iterator<Item = RoleRef<'_>> + Clone + '_ {
        self.fields.iter().filter_map(|e| {
            e.role.map(|role| RoleRef {
                path: self.path(&e.path),
                role,
                value: &e.value,
            })
        })
    }

    /// How many role fields it has.
    pub fn role_count(&self) -> usize {
        self.fields.iter().filter(|e| e.role.is_some()).count()
    }

    /// Whether it carries bytes written to a file (`@artifact`).
    pub fn has_artifacts(&self) -> bool {
        self.roles()
            .any(|f| matches!(f.role, Role::Artifact { .. }))
    }

    /// The options of its `@choice` lists, `(list, value)`, in wire order.
    pub fn choices(&self) -> impl Iterator<Item = (&'static str, &Value)> + '_ {
        self.roles().filter_map(|f| match f.role {
            Role::Choice { list } => Some((*list, f.value)),
            _ => None,
        })
    }

    /// The match key's fields: content (and artifact bytes) outside `@choice` lists, as
    /// [`MatchKey::of_any`] has them.
    fn key(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.fields
            .iter()
            .filter(|e| matches!(e.role, None | Some(Role::Artifact { .. })))
            .map(|e| (self.path(&e.path), &e.value))
            .filter(|(p, _)| {
                !self
                    .option_lists
                    .iter()
                    .any(|l| p.starts_with(&self.paths[l.clone()]))
            })
    }

    /// Whether its match key equals `key` (as `MatchKey::of_any(msg) == *key`).
    pub fn key_equals(&self, key: &MatchKey) -> bool {
        let want = key.fields();
        let mut n = 0;
        for (p, v) in self.key() {
            match want.get(n) {
                Some((wp, wv)) if wp == p && wv == v => n += 1,
                _ => return false,
            }
        }
        n == want.len()
    }
}

impl Visitor for Walked {
    fn enter(&mut self, name: &str) {
        self.levels.push(self.at.len());
        self.at.push_str(name);
        self.at.push('.');
    }

    fn leave(&mut self) {
        if let Some(n) = self.levels.pop() {
            self.at.truncate(n);
        }
    }

    fn field(&mut self, name: &'static str, class: Class, value: &dyn FieldValue) {
        let role = match class {
            Class::Layout => return,
            Class::Content => None,
            Class::Role(role) => Some(role),
        };
        if let Some(Role::Choice { .. }) = role {
            // The whole list is left out of the key: the path of the element's parent.
            let parent = &self.at[..self.levels.last().copied().unwrap_or(0)];
            let known = self
                .option_lists
                .iter()
                .any(|l| &self.paths[l.clone()] == parent);
            if !known {
                let start = self.paths.len();
                self.paths.push_str(parent);
                self.option_lists.push(start..self.paths.len());
            }
        }
        let start = self.paths.len();
        self.paths.push_str(&self.at);
        self.paths.push_str(name);
        self.fields.push(Entry {
            path: start..self.paths.len(),
            role,
            value: value.value(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::RoleFields;

    /// A message with nested levels, a choice list and every class of field.
    #[derive(Debug)]
    struct Sample;

    static COOKIE: Role = Role::Cookie {
        namespace: "fid",
        issuer: crate::codec::Issuer::Server,
    };
    static CHOICE: Role = Role::Choice { list: "dialects" };

    impl AnyMessage for Sample {
        fn name(&self) -> &'static str {
            "t.Sample"
        }
        fn encode(&self, _: &mut bytes::BytesMut) -> Result<(), crate::codec::EncodeError> {
            Ok(())
        }
        fn visit(&self, v: &mut dyn Visitor) {
            v.field("command", Class::Content, &7u8);
            v.enter("body");
            v.field("fid", Class::Role(&COOKIE), &9u16);
            v.field("pad", Class::Layout, &0u8);
            v.enter("dialects");
            for (i, d) in [1u16, 2].iter().enumerate() {
                v.enter(&i.to_string());
                v.field("revision", Class::Content, d);
                v.field("name", Class::Role(&CHOICE), d);
                v.leave();
            }
            v.leave();
            v.field("flags", Class::Content, &3u32);
            v.leave();
        }
        fn visit_mut(&mut self, _: &mut dyn crate::codec::VisitorMut) {}
    }

    #[test]
    fn one_walk_gives_what_the_codec_visitors_give() {
        let w = Walked::of(&Sample);
        let key = MatchKey::of_any(&Sample);
        assert!(w.key_equals(&key));
        assert_eq!(key.fields().len(), 2, "{key:?}");
        let roles = RoleFields::of_any(&Sample);
        let mine: Vec<String> = w.roles().map(|r| r.to_string()).collect();
        let theirs: Vec<String> = roles.iter().map(ToString::to_string).collect();
        assert_eq!(mine, theirs);
        assert!(w.roles().zip(&roles).all(|(a, b)| a.same_as(b)));
        assert_eq!(w.choices().count(), 2);
        assert!(!w.has_artifacts());
    }
}
