//! A small QMP (QEMU Machine Protocol) client: one JSON object a line over a Unix socket, the
//! commands the qemu backend needs (migration to a file, status) and nothing else.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("QMP: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: unreadable reply `{line}`: {source}")]
    Json {
        line: String,
        source: serde_json::Error,
    },
    #[error("QMP `{command}`: {class}: {desc}")]
    Refused {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP: the connection closed")]
    Closed,
    #[error("QMP: {what} not reached within {waited_ms} ms (last: {last})")]
    Timeout {
        what: String,
        waited_ms: u128,
        last: String,
    },
}

/// A QMP session in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the socket QEMU listens on (retrying until `timeout`: it appears once QEMU
    /// has started) and leaves capability negotiation.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(QmpError::Connect {
                        path: path.display().to_string(),
                        source: e,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        stream.set_read_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        // The greeting, then the handshake.
        qmp.read()?;
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|source| QmpError::Json {
            line: line.trim_end().to_string(),
            source,
        })
    }

    /// Runs `command` and returns its `return` value (events that arrive meanwhile are
    /// skipped).
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QmpError> {
        let msg = json!({ "execute": command, "arguments": arguments });
        self.writer.write_all(format!("{msg}\n").as_bytes())?;
        loop {
            let mut reply = self.read()?;
            if let Some(r) = reply.get_mut("return") {
                return Ok(r.take());
            }
            if let Some(e) = reply.get("error") {
                let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                return Err(QmpError::Refused {
                    command: command.to_string(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
        }
    }

    /// Polls `command` until `done` holds for its return value.
    pub fn wait_for(
        &mut self,
        command: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, QmpError> {
        let began = Instant::now();
        loop {
            let v = self.execute(command, json!({}))?;
            if done(&v) {
                return Ok(v);
            }
            if began.elapsed() >= timeout {
                return Err(QmpError::Timeout {
                    what: format!("`{command}`'s awaited state"),
                    waited_ms: began.elapsed().as_millis(),
                    last: v.to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Saves the running VM's whole state (RAM and devices) through `uri` (`exec:cat > FILE`)
    /// and waits until the migration has completed; the VM is paused after it.
    pub fn save_state(&mut self, uri: &str, timeout: Duration) -> Result<(), QmpError> {
        self.execute("migrate", json!({ "uri": uri }))?;
        let st = self.wait_for("query-migrate", timeout, |v| {
            matches!(
                v.get("status").and_then(Value::as_str),
                Some("completed" | "failed" | "cancelled")
            )
        })?;
        match st.get("status").and_then(Value::as_str) {
            Some("completed") => Ok(()),
            _ => Err(QmpError::Refused {
                command: "migrate".into(),
                class: "MigrationFailed".into(),
                desc: st.to_string(),
            }),
        }
    }

    /// Leaves RAM that is a shared file mapping out of migrations (QEMU's `x-ignore-shared`):
    /// the file itself is the saved RAM.
    pub fn ignore_shared_ram(&mut self) -> Result<(), QmpError> {
        let caps = json!({ "capabilities": [{ "capability": "x-ignore-shared", "state": true }] });
        self.execute("migrate-set-capabilities", caps).map(drop)
    }

    /// Waits until the VM runs (an incoming migration has been loaded).
    pub fn wait_running(&mut self, timeout: Duration) -> Result<(), QmpError> {
        self.wait_for("query-status", timeout, |v| {
            v.get("status").and_then(Value::as_str) == Some("running")
        })
        .map(drop)
    }
}
