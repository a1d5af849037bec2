//! `honeyfarm specs`: the message types compiled from the specs, then the services the farm
//! serves with them, each with its largest message and how a message it cannot frame ends.

use std::io::{self, Write};

use honeyfarm_protocols::services::{types, SERVICES};
use honeyfarm_protocols::REGISTRY;

/// Writes the listing to `out`.
pub fn print(out: &mut impl Write) -> io::Result<()> {
    for e in REGISTRY {
        let framing = match (e.framing, e.max_frame) {
            (false, _) => String::new(),
            (true, None) => "  (frames a stream)".into(),
            (true, Some(max)) => format!("  (frames a stream, at most {max:#x} bytes)"),
        };
        writeln!(out, "{}{framing}", e.name)?;
    }
    writeln!(out, "\nservices:")?;
    for s in SERVICES {
        let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
        let largest = match types(s.client).and_then(|e| e.max_frame) {
            Some(max) => {
                format!("{max:#x} bytes (its framing's max), or max_message_bytes if less")
            }
            None => "max_message_bytes (the configuration)".into(),
        };
        writeln!(
            out,
            "{} (ports {}): client {}, server {}\n  largest message: {largest}\n  \
             a message the farm cannot frame: {}",
            s.name,
            ports.join(", "),
            s.client,
            s.server,
            s.unframeable,
        )?;
    }
    Ok(())
}
