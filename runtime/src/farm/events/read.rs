//! Reading a connection's messages back: those that followed its script rebuilt from the
//! script stored with it and the differences kept, then the rows of the others.

use rusqlite::{Connection, OptionalExtension};
use serde::Deserialize;

use crate::replay::Side;

use super::compact::{DecodeError, Differences};
use super::Source;

/// One message of a connection as the store has it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub to_server: bool,
    /// `attacker`, `script`, `replayed` or `relayed`.
    pub source: String,
    pub kind: String,
    pub length: usize,
    /// `path@role=value` of each role field.
    pub roles: Vec<String>,
    /// When the store got it; none for messages rebuilt from the script.
    pub time: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("event store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("event store: script {id} is not a script: {source}")]
    Script { id: i64, source: serde_json::Error },
    #[error("event store: connection {connection} followed {followed} messages of script {id}, which has {has}")]
    Followed {
        connection: i64,
        id: i64,
        followed: usize,
        has: usize,
    },
    #[error("event store: connection {connection}: {source}")]
    Differences {
        connection: i64,
        source: DecodeError,
    },
}

/// The parts of a script file the reader needs.
#[derive(Deserialize)]
struct ScriptFile {
    messages: Vec<ScriptFileMessage>,
}

#[derive(Deserialize)]
struct ScriptFileMessage {
    from: Side,
    kind: String,
    length: usize,
    roles: Vec<String>,
}

/// The messages of `connection` in the order they were sent (an unknown connection has none).
pub fn stored_messages(db: &Connection, connection: i64) -> Result<Vec<StoredMessage>, ReadError> {
    let mut out = followed(db, connection)?;
    let mut q = db.prepare(
        "SELECT direction, source, kind, length, roles, time FROM messages WHERE connection = ?1 ORDER BY id",
    )?;
    let rows = q.query_map([connection], |r| {
        Ok(StoredMessage {
            to_server: r.get::<_, String>(0)? == "to_server",
            source: r.get(1)?,
            kind: r.get(2)?,
            length: r.get::<_, i64>(3)?.try_into().unwrap_or_default(),
            roles: r
                .get::<_, String>(4)?
                .lines()
                .map(ToString::to_string)
                .collect(),
            time: r.get(5)?,
        })
    })?;
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}

/// The messages that followed the connection's script, with what differed put back.
fn followed(db: &Connection, connection: i64) -> Result<Vec<StoredMessage>, ReadError> {
    let row = db
        .query_row(
            "SELECT c.script_id, c.followed, c.differences, s.content FROM connections c \
             JOIN scripts s ON s.id = c.script_id WHERE c.id = ?1 AND c.followed > 0",
            [connection],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((id, followed, blob, content)) = row else {
        return Ok(Vec::new());
    };
    let script: ScriptFile =
        serde_json::from_str(&content).map_err(|source| ReadError::Script { id, source })?;
    let differences = Differences::decode(blob.as_deref().unwrap_or_default())
        .map_err(|source| ReadError::Differences { connection, source })?;
    let followed = usize::try_from(followed).unwrap_or(usize::MAX);
    if followed > script.messages.len() {
        return Err(ReadError::Followed {
            connection,
            id,
            followed,
            has: script.messages.len(),
        });
    }
    Ok(script
        .messages
        .into_iter()
        .take(followed)
        .enumerate()
        .map(|(i, m)| {
            let (mut length, mut roles) = (m.length, m.roles);
            differences.apply(i, &mut length, &mut roles);
            let to_server = m.from == Side::Client;
            StoredMessage {
                to_server,
                source: if to_server {
                    Source::Attacker
                } else {
                    Source::Script
                }
                .name()
                .to_string(),
                kind: m.kind,
                length,
                roles,
                time: None,
            }
        })
        .collect())
}
