//! The `honeyfarm` command line.
//!
//! `run` is the farm (replay from scripts, handoff to honeypots, events in SQLite); `script`
//! makes and shows scripts; `events` reads the event store; `dissect` and `decode` run the
//! codecs compiled from `protocols/specs/` on captures and bytes.

mod config;
mod dissect;
mod events;
mod run;
mod script;
mod services;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::{Class, FieldValue, Reader, Visitor};

#[derive(Parser)]
#[command(
    name = "honeyfarm",
    version,
    about = "A honeyfarm for network telescopes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the message types compiled from the protocol specs.
    Specs,
    /// Decode messages of one type, show every field with its role, and check that they
    /// re-encode to exactly the input.
    Decode {
        /// The message type, `protocol.Unit` (see `honeyfarm specs`).
        spec: String,
        /// The input as hex (spaces allowed).
        #[arg(long, conflicts_with = "file")]
        hex: Option<String>,
        /// The input file (`-` for standard input).
        #[arg(long)]
        file: Option<String>,
        /// Decode one message after another until the input ends (a captured stream).
        #[arg(long)]
        stream: bool,
    },
    /// Decode every message of every TCP stream in a pcap or pcapng file, check that each
    /// re-encodes exactly, and end with a summary line.
    Dissect {
        /// The capture file.
        pcap: PathBuf,
        /// One JSON object per message (with the byte spans of role fields), the summary last.
        #[arg(long)]
        json: bool,
        /// Show the byte spans of role fields in the text output.
        #[arg(long)]
        roles: bool,
        /// Read streams to this server port as this service (repeatable): `--port 2121=ftp`.
        #[arg(long = "port", value_parser = services::parse_port)]
        ports: Vec<(u16, String)>,
    },
    /// Run the farm until SIGINT or SIGTERM.
    Run {
        /// The configuration file (TOML); without it, the embedded default
        /// (config/honeyfarm.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show the event store: a line per connection and the artifacts, or one connection's
    /// messages.
    Events {
        /// The SQLite file (`[events] path` of the configuration).
        #[arg(long, default_value = "honeyfarm-events.sqlite")]
        db: PathBuf,
        /// Show this connection's messages.
        #[arg(long)]
        connection: Option<i64>,
    },
    /// Scripts: recorded dialogs the farm answers attackers from.
    Script {
        #[command(subcommand)]
        command: ScriptCommand,
    },
}

#[derive(Subcommand)]
enum ScriptCommand {
    /// Make a script from one TCP dialog of a capture.
    Import {
        /// The capture file (pcap or pcapng).
        #[arg(long)]
        pcap: PathBuf,
        /// The TCP stream (as `dissect` numbers them); the first of a known service if absent.
        #[arg(long)]
        stream: Option<usize>,
        /// Read streams to this server port as this service (repeatable): `--port 4451=smb`.
        #[arg(long = "port", value_parser = services::parse_port)]
        ports: Vec<(u16, String)>,
        /// The script file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a script: each message's direction, kind and role fields.
    Show {
        file: PathBuf,
        /// Also dump each message's bytes.
        #[arg(long)]
        hex: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Specs => {
            for e in REGISTRY {
                println!(
                    "{}{}",
                    e.name,
                    if e.framing { "  (frames a stream)" } else { "" }
                );
            }
            Ok(true)
        }
        Command::Decode {
            spec,
            hex,
            file,
            stream,
        } => input(hex, file).and_then(|bytes| decode(&spec, bytes, stream)),
        Command::Dissect {
            pcap,
            json,
            roles,
            ports,
        } => {
            let opts = dissect::Options { json, roles, ports };
            dissect::run(&pcap, &opts, &mut std::io::stdout().lock())
                .map(|s| s.errors == 0 && s.roundtrip_exact == s.decoded)
        }
        Command::Script {
            command:
                ScriptCommand::Import {
                    pcap,
                    stream,
                    ports,
                    out,
                },
        } => script::import(&pcap, stream, &ports, &out).map(|s| {
            println!(
                "script {}: {} messages of {} from {}",
                out.display(),
                s.messages.len(),
                s.service.name,
                s.source
            );
            true
        }),
        Command::Run { config } => run::run(config.as_deref()),
        Command::Events { db, connection } => {
            events::show(&db, connection, &mut std::io::stdout().lock()).map(|()| true)
        }
        Command::Script {
            command: ScriptCommand::Show { file, hex },
        } => script::show(&file, hex, &mut std::io::stdout().lock()).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("honeyfarm: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn input(hex: Option<String>, file: Option<String>) -> Result<Bytes> {
    match (hex, file) {
        (Some(h), _) => parse_hex(&h),
        (None, Some(f)) if f == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            Ok(buf.into())
        }
        (None, Some(f)) => Ok(std::fs::read(&f)
            .with_context(|| format!("reading {f}"))?
            .into()),
        (None, None) => bail!("give the input with --hex or --file"),
    }
}

fn parse_hex(h: &str) -> Result<Bytes> {
    let clean: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    if clean.len() % 2 != 0 {
        bail!("hex input has an odd number of digits");
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&clean[i..i + 2], 16)
                .with_context(|| format!("bad hex at digit {i}"))
        })
        .collect::<Result<Vec<u8>>>()
        .map(Bytes::from)
}

/// Decodes and prints; `Ok(false)` when a message failed to decode or to re-encode exactly.
fn decode(spec: &str, mut bytes: Bytes, stream: bool) -> Result<bool> {
    let entry = services::entry(spec)?;
    let mut offset = 0;
    let mut all_exact = true;
    loop {
        let mut r = Reader::new(bytes.clone());
        let msg = match (entry.decode)(&mut r) {
            Ok(m) => m,
            Err(e) => {
                println!("{} at input byte {offset}: error: {e}", entry.name);
                return Ok(false);
            }
        };
        let used = r.pos();
        println!("{} at input byte {offset} ({used} bytes)", msg.name());
        let mut printer = Printer::default();
        msg.visit(&mut printer);
        let mut out = BytesMut::new();
        let exact = match msg.encode(&mut out) {
            Ok(()) if out[..] == bytes[..used] => "exact".to_string(),
            Ok(()) => format!("DIFFERS ({} bytes re-encoded)", out.len()),
            Err(e) => format!("cannot encode: {e}"),
        };
        all_exact &= exact == "exact";
        println!("  roundtrip: {exact}");
        offset += used;
        bytes = bytes.slice(used..);
        if !stream || bytes.is_empty() || used == 0 {
            break;
        }
    }
    if !bytes.is_empty() {
        println!("{} byte(s) after the last message", bytes.len());
    }
    Ok(all_exact)
}

/// Prints one line per leaf field: path, class, value.
#[derive(Default)]
struct Printer {
    stack: Vec<String>,
}

impl Visitor for Printer {
    fn enter(&mut self, name: &str) {
        self.stack.push(name.to_string());
    }
    fn leave(&mut self) {
        self.stack.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &dyn FieldValue) {
        let mut path = self.stack.join(".");
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(name);
        let class = match class {
            Class::Content => "content".to_string(),
            Class::Layout => "layout".to_string(),
            Class::Role(r) => format!("@{r}"),
        };
        println!("  {path:<48} {class:<28} {}", value.value());
    }
}
