//! What a decoded message is, in a line: the switch cases it took (binary messages), its first
//! content field (a verb, a reply code, a method: text messages), and its role fields.

use super::registry::AnyMessage;
use super::role::{Class, RoleField, Visitor};
use super::value::{FieldValue, Value};

/// A message's kind and role fields, as `dissect`, scripts and events show them.
#[derive(Debug, Default, Clone)]
pub struct Description {
    /// The switch cases taken, in visiting order (case names are capitalised).
    pub cases: Vec<String>,
    /// The first content field that is a number or bytes (at most 24 bytes of it).
    pub first_content: Option<String>,
    /// Every role field, in wire order.
    pub roles: Vec<RoleField>,
    stack: Vec<String>,
}

impl Description {
    pub fn of(msg: &dyn AnyMessage) -> Description {
        let mut d = Description::default();
        msg.visit(&mut d);
        d
    }

    /// Binary messages are named by their cases (`Smb1.TreeConnectRequest`), text messages by
    /// their verb or reply code.
    pub fn kind(&self, text: bool) -> String {
        if !text && !self.cases.is_empty() {
            self.cases.join(".")
        } else {
            self.first_content.clone().unwrap_or_default()
        }
    }

    fn case(&mut self, name: &str) {
        let is_case = name.starts_with(|c: char| c.is_ascii_uppercase());
        if is_case && self.cases.last().map(String::as_str) != Some(name) {
            self.cases.push(name.to_string());
        }
    }
}

impl Visitor for Description {
    fn enter(&mut self, name: &str) {
        self.case(name);
        self.stack.push(name.to_string());
    }
    fn leave(&mut self) {
        self.stack.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &dyn FieldValue) {
        // A case that holds a plain value (`_ -> Other: bytes`) is visited as a field.
        self.case(name);
        match class {
            Class::Content if self.first_content.is_none() => match value.value() {
                Value::Bytes(b) => {
                    self.first_content =
                        Some(String::from_utf8_lossy(&b[..b.len().min(24)]).into_owned())
                }
                v @ Value::Uint(_) => self.first_content = Some(v.to_string()),
                _ => {}
            },
            Class::Role(role) => {
                let mut path = self.stack.join(".");
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                self.roles.push(RoleField {
                    path,
                    role,
                    value: value.value(),
                });
            }
            _ => {}
        }
    }
}
