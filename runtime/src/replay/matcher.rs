//! Following one script: an attacker's message matches the script's next client message when
//! every field without a role is equal and its cookies pair consistently with the script's;
//! the replies are then the script's, rewritten for this attacker.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::codec::{AnyMessage, Choices, MatchKey, Role, RoleField, Value};
use crate::rewrite::{detached, Rewrite, ValueMap, Way};

use super::script::{Script, Side};
use super::shape::roles_of;
use super::walked::{same_path, RoleRef, Walked};

/// Why an attacker's message does not follow the script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Deviation(pub String);

/// A script being followed, and where.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub script: Arc<Script>,
    /// Index of the script's next message.
    pub pos: usize,
    /// Attacker cookie values (left) paired with the script's (right).
    pub cookies: ValueMap,
    /// The options (`@choice`) of the last client message: the attacker's, and the index of
    /// the script's message (whose options are the script's).
    options: (Choices, Option<usize>),
}

/// What answering one attacker message produced.
#[derive(Debug, Clone)]
pub struct Step {
    /// The rewritten replies, to send in order.
    pub replies: Vec<Bytes>,
    /// The script's index of the first reply.
    pub at: usize,
    /// Per reply, when it was patched from its template: the role fields that changed (by
    /// index among its role fields) and their new values; the others are the script's.
    pub patched: Vec<Option<Vec<(usize, Value)>>>,
}

/// Who the attacker is talking to, for the replies.
#[derive(Debug, Clone, Copy)]
pub struct Audience {
    /// The address the attacker connected to.
    pub telescope: IpAddr,
    pub attacker: IpAddr,
}

impl Candidate {
    pub fn new(script: Arc<Script>) -> Self {
        Candidate {
            script,
            pos: 0,
            cookies: ValueMap::new(),
            options: (Choices::default(), None),
        }
    }

    /// Checks the attacker's message against the script's next client message and pairs their
    /// cookies; on success the script moves past it.
    pub fn accept(&mut self, msg: &dyn AnyMessage) -> Result<(), Deviation> {
        self.accept_walked(msg, &Walked::of(msg))
    }

    /// [`Candidate::accept`] with the message's fields already walked.
    pub fn accept_walked(
        &mut self,
        msg: &dyn AnyMessage,
        walked: &Walked,
    ) -> Result<(), Deviation> {
        let Some(expected) = self.script.messages.get(self.pos) else {
            return Err(Deviation(format!(
                "the script ends after {} messages",
                self.script.messages.len()
            )));
        };
        if expected.side != Side::Client {
            return Err(Deviation(
                "the script expects the server to speak first".into(),
            ));
        }
        if !walked.key_equals(&expected.key) {
            // The rare deviation names the difference: the key is built whole for it.
            let key = MatchKey::of_any(msg);
            let (path, got, want) = key.first_difference(&expected.key).unwrap_or_default();
            return Err(Deviation(format!(
                "message {} ({}): {path} is {got}, the script has {want}",
                self.pos, expected.kind
            )));
        }
        let script_fields = || expected.fields.iter().map(RoleRef::from);
        same_paths_beyond_names(walked.roles(), script_fields())
            .map_err(|e| Deviation(format!("message {} ({}): {e}", self.pos, expected.kind)))?;
        pair_cookie_refs(&mut self.cookies, walked.roles(), script_fields())
            .map_err(|e| Deviation(format!("message {}: {e}", self.pos)))?;
        // Kept until the next message: detached from this one's receive buffer.
        let theirs = walked.choices().map(|(l, v)| (l, detached(v.clone())));
        self.options = (Choices(theirs.collect()), Some(self.pos));
        self.passed();
        Ok(())
    }

    /// [`Candidate::accept`] for a message still in the receive buffer (`input`: its bytes
    /// and whatever came after them): when it has the shape of the script's next client
    /// message, its role values are read in place and, when they pair, the script moves past
    /// it. Returns the message's length and its role values (`None`: the script's). `None`
    /// when it needs the full path, which then decides as it always does.
    pub fn accept_bytes(&mut self, input: &[u8]) -> Option<(usize, Vec<Option<Value>>)> {
        let expected = self
            .script
            .messages
            .get(self.pos)
            .filter(|m| m.side == Side::Client)?;
        let shape = expected.shape.as_ref()?;
        let values = shape.read(input)?;
        let roles = || roles_of(&expected.fields, &values);
        let script_fields = || expected.fields.iter().map(RoleRef::from);
        same_paths_beyond_names(roles(), script_fields()).ok()?;
        pair_cookie_refs(&mut self.cookies, roles(), script_fields()).ok()?;
        let theirs = roles().filter_map(|f| match f.role {
            Role::Choice { list } => Some((*list, detached(f.value.clone()))),
            _ => None,
        });
        self.options = (Choices(theirs.collect()), Some(self.pos));
        let len = shape.len();
        self.passed();
        Some((len, values))
    }

    /// The script's replies due now (the server messages up to its next client message),
    /// rewritten: cookies the attacker chose echo the attacker's values, cookies the server
    /// chose keep the script's, the recorded addresses become the ones of this connection,
    /// timestamps are now and nonces fresh; every length is recomputed by the encoder.
    pub fn serve(&mut self, to: Audience) -> Result<Step, Deviation> {
        let mut step = Step {
            replies: Vec::new(),
            at: self.pos,
            patched: Vec::new(),
        };
        while let Some(m) = self.script.messages.get(self.pos) {
            if m.side != Side::Server {
                break;
            }
            // Cookies the server issues here stand for themselves (or a fresh value where the
            // attacker already uses theirs): the attacker will send them back.
            for f in &m.fields {
                if let Role::Cookie { namespace, .. } = f.role {
                    self.cookies.bind_new(namespace, &f.value);
                }
            }
            let indexes = self.chosen(&m.fields)?;
            let mut rw = Rewrite::new();
            rw.indexes = indexes;
            rw.cookies = Some((&self.cookies, Way::Backward));
            rw.addresses = vec![
                (self.script.server.ip(), to.telescope),
                (self.script.client.ip(), to.attacker),
            ];
            // The clock is read only for a reply that carries a time.
            let timed = |f: &RoleField| matches!(f.role, Role::Timestamp { .. });
            rw.now = m.fields.iter().any(timed).then(SystemTime::now);
            rw.fresh_nonces = true;
            // The recording patched where it can be; else decoded, rewritten and encoded.
            let patched = m
                .template
                .as_ref()
                .and_then(|t| t.patch(&m.bytes, &m.fields, &rw));
            let (out, changed) = match patched {
                Some((out, changed)) => (out, Some(changed)),
                None => {
                    rw.now = Some(SystemTime::now());
                    let mut d = self
                        .script
                        .decode(self.pos)
                        .ok_or_else(|| Deviation("the script's reply no longer decodes".into()))?;
                    let out = rw
                        .apply(d.msg.as_mut())
                        .map_err(|e| Deviation(format!("reply {}: {e}", self.pos)))?;
                    (out, None)
                }
            };
            step.replies.push(out);
            step.patched.push(changed);
            self.passed();
        }
        Ok(step)
    }

    /// Moves past the script's message at `pos`, retiring the pairs of the cookie values it
    /// was the last to carry ([`ValueMap::retire`]). No reply is rewritten with them again (a
    /// reply's values are later ones); only a later attacker value that meets one (a reused
    /// MID) reads them, and a retired pair still answers it as before. Live, they cost an idle
    /// session some 50 bytes per pair, several per request, for as long as it stays open.
    pub(crate) fn passed(&mut self) {
        if let Some(m) = self.script.messages.get(self.pos) {
            for (namespace, v) in &m.last_cookies {
                self.cookies.retire(namespace, v);
            }
        }
        self.pos += 1;
    }

    /// Forgets the options of the last client message once its replies are built: a session
    /// waiting for the next message keeps none (the next message brings its own).
    pub fn forget_options(&mut self) {
        self.options = (Choices::default(), None);
    }

    /// Where, in the attacker's options, is each option the script's reply chose: the new
    /// values of its `@index` fields. An option the attacker did not offer is a deviation.
    fn chosen(&self, reply: &[RoleField]) -> Result<Vec<(&'static str, u64)>, Deviation> {
        let (theirs, at) = &self.options;
        let none = Choices::default();
        let ours = at
            .and_then(|i| self.script.messages.get(i))
            .map_or(&none, |m| &m.options);
        let mut out = Vec::new();
        for f in reply {
            let (Role::Index { list }, Value::Uint(i)) = (f.role, &f.value) else {
                continue;
            };
            let ours = ours.list(list);
            let Some(option) = usize::try_from(*i).ok().and_then(|i| ours.get(i)) else {
                // An index that chose nothing (0xffff: no dialect) stays as it is.
                continue;
            };
            match theirs.list(list).iter().position(|o| o == option) {
                Some(j) => out.push((*list, j as u64)),
                None => {
                    return Err(Deviation(format!(
                        "the script's server chose {option} from `{list}`, which the attacker does not offer"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// Pairs the cookies among the role fields of two messages with the same content (`left`'s
/// values on the map's left), field by field in wire order.
pub fn pair_cookies(
    map: &mut ValueMap,
    left: &[RoleField],
    right: &[RoleField],
) -> Result<(), String> {
    pair_cookie_refs(
        map,
        left.iter().map(RoleRef::from),
        right.iter().map(RoleRef::from),
    )
}

/// [`pair_cookies`] for borrowed role fields; on an error the map is left as it was.
pub fn pair_cookie_refs<'a, 'b>(
    map: &mut ValueMap,
    left: impl Iterator<Item = RoleRef<'a>> + Clone,
    right: impl Iterator<Item = RoleRef<'b>> + Clone,
) -> Result<(), String> {
    let is_cookie = |f: &RoleRef| matches!(f.role, Role::Cookie { .. });
    let l = left.filter(is_cookie);
    let r = right.filter(is_cookie);
    let (nl, nr) = (l.clone().count(), r.clone().count());
    if nl != nr {
        return Err(format!("{nl} cookie fields against {nr}"));
    }
    let mut made = Vec::new();
    let mut pair = |a: RoleRef<'a>, b: RoleRef<'b>| {
        let (Role::Cookie { namespace, .. }, true) = (a.role, same_path(a.path, b.path)) else {
            return Err(format!("cookie {} against {}", a.path, b.path));
        };
        let new = map
            .pair(namespace, a.value, b.value)
            .map_err(|e| format!("{}: {e}", a.path))?;
        if new {
            made.push((namespace, a.value, b.value));
        }
        Ok(())
    };
    let res = l.zip(r).try_for_each(|(a, b)| pair(a, b));
    if res.is_err() {
        for (namespace, a, b) in made {
            map.unbind(namespace, a, b);
        }
    }
    res
}

/// What a host-name field holds beyond the name: the rest of a `\\name\share` or
/// `//name/path` path (compared without case, as Windows does), nothing for a bare name.
fn beyond_name(v: &Value) -> Option<String> {
    let text = match v {
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => return None,
    };
    let rest = text
        .strip_prefix("\\\\")
        .or_else(|| text.strip_prefix("//"))?;
    let at = rest.find(['\\', '/']).unwrap_or(rest.len());
    Some(rest[at..].to_lowercase())
}

/// Host-name fields are ignored in matching, but a path that contains a name (a UNC path) is
/// content beyond it: `\\10.0.0.1\IPC$` and `\\10.0.0.2\ADMIN$` differ.
fn same_paths_beyond_names<'a, 'b>(
    left: impl Iterator<Item = RoleRef<'a>>,
    right: impl Iterator<Item = RoleRef<'b>>,
) -> Result<(), String> {
    let is_name = |f: &RoleRef| matches!(f.role, Role::Hostname);
    for (a, b) in left.filter(is_name).zip(right.filter(is_name)) {
        // Equal values need no text (the path of a message read in place is the script's).
        let same_value = std::ptr::eq(a.value, b.value) || a.value == b.value;
        if !same_path(a.path, b.path) || same_value {
            continue;
        }
        if beyond_name(a.value) != beyond_name(b.value) {
            return Err(format!(
                "{} is {}, the script has {}",
                a.path, a.value, b.value
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_beyond_names() {
        let s = |t: &str| Value::Str(t.to_string());
        assert_eq!(
            beyond_name(&s("\\\\127.0.0.77\\IPC$")).as_deref(),
            Some("\\ipc$")
        );
        assert_eq!(
            beyond_name(&s("\\\\FILESRV01\\ipc$")),
            beyond_name(&s("\\\\10.0.0.1\\IPC$"))
        );
        assert_ne!(
            beyond_name(&s("\\\\h\\IPC$")),
            beyond_name(&s("\\\\h\\ADMIN$"))
        );
        assert_eq!(beyond_name(&s("mail.example.com")), None);
        assert_eq!(beyond_name(&s("\\\\host")).as_deref(), Some(""));
    }
}
