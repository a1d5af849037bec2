//! A script: one recorded TCP dialog, every message kept byte-exact with its kind and role
//! fields, stored as versioned, indented JSON that a person can read and diff.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{Choices, Description, Entry, MatchKey, Role, RoleField, Value};
use crate::rewrite::Namespace;

use super::conversation::{Conversation, Decoded};
use super::shape::Shape;
use super::template::Template;

/// The `format` field of every script file.
pub const FORMAT: &str = "honeyfarm-script";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a script: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: format `{format}` version {version}: this build reads `{FORMAT}` version {VERSION}")]
    Version {
        path: String,
        format: String,
        version: u32,
    },
    #[error("{path}: no message type `{name}` in the specs")]
    UnknownType { path: String, name: String },
    #[error("{path}: message {index}: {reason}")]
    Message {
        path: String,
        index: usize,
        reason: String,
    },
}

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

/// One message of a script.
#[derive(Debug, Clone)]
pub struct ScriptMessage {
    pub side: Side,
    pub bytes: Bytes,
    pub kind: String,
    /// Its role fields (client messages' cookies are paired with the attacker's).
    pub fields: Vec<RoleField>,
    /// The content fields (client messages are matched on them).
    pub key: MatchKey,
    /// The options it offers (`@choice`).
    pub options: Choices,
    /// The decoder state just before this message, to decode it again for rewriting.
    before: Conversation,
    /// A server message as bytes to patch (none if its role fields cannot be patched).
    pub template: Option<Template>,
    /// A client message as bytes to compare (none if its role fields cannot be read in place).
    pub shape: Option<Shape>,
    /// The cookie values (the script's) that no later message carries: past this message a
    /// session's pairs for them are never read again (see [`super::Candidate`]).
    pub last_cookies: Vec<(Namespace, Value)>,
}

/// A service as the codecs see it: its name and the message type each side sends.
#[derive(Debug, Clone)]
pub struct ServiceCodecs {
    /// `smb`, `ftp`, ...
    pub name: String,
    pub client: &'static Entry,
    pub server: &'static Entry,
    /// Line-based (message kinds are verbs and reply codes, not switch cases).
    pub text: bool,
}

impl ServiceCodecs {
    /// The message type `side` sends.
    pub fn entry(&self, side: Side) -> &'static Entry {
        match side {
            Side::Client => self.client,
            Side::Server => self.server,
        }
    }
}

/// A recorded dialog of one service.
#[derive(Debug, Clone)]
pub struct Script {
    pub service: ServiceCodecs,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Where the dialog came from (capture file and stream).
    pub source: String,
    pub messages: Vec<ScriptMessage>,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    version: u32,
    service: String,
    client_type: String,
    server_type: String,
    text: bool,
    client: SocketAddr,
    server: SocketAddr,
    source: String,
    messages: Vec<FileMessage>,
}

#[derive(Serialize, Deserialize)]
struct FileMessage {
    from: Side,
    kind: String,
    length: usize,
    /// `path@role=value`, for people: loading recomputes them from the bytes.
    roles: Vec<String>,
    /// The message's bytes, in hex, 32 bytes a line.
    hex: Vec<String>,
}

/// Fills each message's [`ScriptMessage::last_cookies`]: the cookie values it is the last to
/// carry, in the order of its fields.
fn mark_last_cookies(messages: &mut [ScriptMessage]) {
    let mut later: HashSet<(&str, &Value)> = HashSet::new();
    let lasts: Vec<Vec<(Namespace, Value)>> = messages
        .iter()
        .rev()
        .map(|m| {
            let cookies = m.fields.iter().filter_map(|f| match f.role {
                Role::Cookie { namespace, .. } => Some((namespace, &f.value)),
                _ => None,
            });
            cookies
                .filter(|(namespace, v)| later.insert((**namespace, *v)))
                .map(|(namespace, v)| (namespace, v.clone()))
                .collect()
        })
        .collect();
    for (m, last) in messages.iter_mut().rev().zip(lasts) {
        m.last_cookies = last;
    }
}

impl Script {
    /// Builds a script from a dialog's messages in the order they were sent, decoding each.
    pub fn new(
        service: ServiceCodecs,
        client: SocketAddr,
        server: SocketAddr,
        source: &str,
        messages: Vec<(Side, Bytes)>,
    ) -> Result<Script, ScriptError> {
        let mut conv = Conversation::new();
        let mut out = Vec::with_capacity(messages.len());
        for (index, (side, bytes)) in messages.into_iter().enumerate() {
            let before = conv.clone();
            let entry = service.entry(side);
            let fail = |reason: String| ScriptError::Message {
                path: source.to_string(),
                index,
                reason,
            };
            let d = conv
                .decode(entry, bytes.clone(), side == Side::Client)
                .map_err(|e| fail(e.to_string()))?;
            if d.bytes.len() != bytes.len() {
                return Err(fail(format!(
                    "{} bytes, of which the message is only {}",
                    bytes.len(),
                    d.bytes.len()
                )));
            }
            let desc = Description::of(d.msg.as_ref());
            let key = MatchKey::of_any(d.msg.as_ref());
            let (template, shape) = match side {
                Side::Server => (Template::build(entry, &before, &bytes), None),
                Side::Client => (
                    None,
                    Shape::build(entry, &before, &bytes, (&desc.roles, &key)),
                ),
            };
            out.push(ScriptMessage {
                template,
                shape,
                side,
                kind: desc.kind(service.text),
                fields: desc.roles,
                key,
                options: Choices::of_any(d.msg.as_ref()),
                bytes,
                before,
                last_cookies: Vec::new(),
            });
        }
        mark_last_cookies(&mut out);
        Ok(Script {
            service,
            client,
            server,
            source: source.to_string(),
            messages: out,
        })
    }

    /// Decodes message `index` again (a fresh value to rewrite), with the decoder state it had.
    pub fn decode(&self, index: usize) -> Option<Decoded> {
        let m = self.messages.get(index)?;
        m.before
            .clone()
            .decode(
                self.service.entry(m.side),
                m.bytes.clone(),
                m.side == Side::Client,
            )
            .ok()
    }

    /// The script's first client message, which the library indexes.
    pub fn first_request(&self) -> Option<&ScriptMessage> {
        self.messages.iter().find(|m| m.side == Side::Client)
    }

    pub fn to_json(&self) -> String {
        let file = File {
            format: FORMAT.to_string(),
            version: VERSION,
            service: self.service.name.clone(),
            client_type: self.service.client.name.to_string(),
            server_type: self.service.server.name.to_string(),
            text: self.service.text,
            client: self.client,
            server: self.server,
            source: self.source.clone(),
            messages: self
                .messages
                .iter()
                .map(|m| FileMessage {
                    from: m.side,
                    kind: m.kind.clone(),
                    length: m.bytes.len(),
                    roles: m.fields.iter().map(ToString::to_string).collect(),
                    hex: m.bytes.chunks(32).map(hex).collect(),
                })
                .collect(),
        };
        let mut s = serde_json::to_string_pretty(&file).expect("a script serialises");
        s.push('\n');
        s
    }

    pub fn save(&self, path: &Path) -> Result<(), ScriptError> {
        std::fs::write(path, self.to_json()).map_err(|source| ScriptError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a script file; `types` finds a message type by name (the protocols' registry).
    pub fn load(
        path: &Path,
        types: &dyn Fn(&str) -> Option<&'static Entry>,
    ) -> Result<Script, ScriptError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Io {
            path: p.clone(),
            source,
        })?;
        let file: File = serde_json::from_str(&text).map_err(|source| ScriptError::Json {
            path: p.clone(),
            source,
        })?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(ScriptError::Version {
                path: p,
                format: file.format,
                version: file.version,
            });
        }
        let entry = |name: &str| {
            types(name).ok_or_else(|| ScriptError::UnknownType {
                path: p.clone(),
                name: name.to_string(),
            })
        };
        let service = ServiceCodecs {
            name: file.service,
            client: entry(&file.client_type)?,
            server: entry(&file.server_type)?,
            text: file.text,
        };
        let mut messages = Vec::with_capacity(file.messages.len());
        for (index, m) in file.messages.into_iter().enumerate() {
            let bytes = unhex(&m.hex.concat()).ok_or_else(|| ScriptError::Message {
                path: p.clone(),
                index,
                reason: "`hex` holds something other than pairs of hex digits".into(),
            })?;
            messages.push((m.from, Bytes::from(bytes)));
        }
        let mut script = Script::new(service, file.client, file.server, &p, messages)?;
        // Errors name the file, not where it was first recorded.
        script.source = file.source;
        Ok(script)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
