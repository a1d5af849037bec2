//! The `honeyfarm` command line.
//!
//! `run` is the farm (replay from scripts, handoff to honeypots, events in SQLite); `script`
//! makes and shows scripts; `events` reads the event store; `dissect` and `decode` run the
//! codecs compiled from `protocols/specs/` on captures and bytes; `bench` measures the farm.

mod bench;
mod config;
mod dissect;
mod events;
mod filter_gain;
mod kernel;
mod personality;
mod run;
mod script;
mod services;
mod specs;
mod synth_trace;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use honeyfarm_runtime::codec::{Class, FieldValue, Reader, Visitor};

/// mimalloc, not glibc's malloc: sessions allocate and free small buffers from every worker
/// thread, which glibc serves through locked arenas and consolidation passes. Its `no_thp`
/// feature keeps its arenas out of transparent huge pages, which made every touched page a
/// resident 2 MiB one (docs/ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// List the message types compiled from the protocol specs, and the services: their
    /// largest message and how one the farm cannot frame ends.
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
    /// The scan filter's gain on a trace (a pcap's SYNs, or a CSV of
    /// `time,source,destination,port`) for N = 1..10: probes, answered, gain.
    FilterGain {
        #[arg(long)]
        trace: PathBuf,
        /// A source idle this long is forgotten.
        #[arg(long, default_value_t = 86_400)]
        window_secs: u64,
        /// Sources the table holds.
        #[arg(long, default_value_t = 1 << 20)]
        capacity: usize,
        /// Sources by IPv4 prefix length.
        #[arg(long, default_value_t = 32)]
        ipv4_prefix: u8,
        /// Sources by IPv6 prefix length (at most 64).
        #[arg(long, default_value_t = 64)]
        ipv6_prefix: u8,
    },
    /// Write a SYNTHETIC telescope trace (CSV for filter-gain) from a documented model
    /// (docs/RUNNING.md), the same for the same seed.
    SynthTrace {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 2000)]
        sources: usize,
        /// Seconds over which sources start.
        #[arg(long, default_value_t = 3600.0)]
        duration: f64,
        /// Share of sources that are worms (the rest are scanners).
        #[arg(long, default_value_t = 0.2)]
        worm_share: f64,
        /// Pareto tail index of the addresses a scanner probes (smaller: heavier tail).
        #[arg(long, default_value_t = 0.9)]
        scanner_alpha: f64,
        /// The file to write (standard output without it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure the farm: scripted sessions/s against a baseline server, memory per idle
    /// connection (`bench idle`), floods and bad input (`bench flood`).
    Bench(Box<bench::Args>),
    /// Scripts: recorded dialogs the farm answers attackers from.
    Script {
        #[command(subcommand)]
        command: ScriptCommand,
    },
    /// Personalities: a real server's replies the emulator answers from (docs/EMULATION.md).
    Personality {
        #[command(subcommand)]
        command: PersonalityCommand,
    },
}

#[derive(Subcommand)]
enum PersonalityCommand {
    /// Scan a real server (`smtp`, `ftp` or `http` at HOST:PORT) into a personality file.
    Scan(personality::ScanArgs),
    /// Sessions per second of a farm emulating a server against the real server (both
    /// running), in interleaved rounds; bounded in sessions and time.
    Bench(personality::BenchArgs),
    /// Check a personality file and print its size.
    Show { file: PathBuf },
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

impl Command {
    /// Whether the command serves or measures (sockets, children, pipes to them) rather than
    /// prints a result.
    fn serves(&self) -> bool {
        matches!(
            self,
            Command::Run { .. }
                | Command::Bench(_)
                | Command::Personality {
                    command: PersonalityCommand::Scan(_) | PersonalityCommand::Bench(_)
                }
        )
    }
}

/// A command that prints ends, when its reader goes away (`| head`), as a Unix filter does:
/// killed by SIGPIPE, quietly (status 141 to a shell). Rust ignores SIGPIPE, so each write
/// would fail with EPIPE and `println!` panic. The farm and the benches keep ignoring it: a
/// child or peer that quits early must not kill them.
fn die_on_broken_pipe() {
    // SAFETY: restoring the default action of one signal, before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.serves() {
        die_on_broken_pipe();
    }
    let result = match cli.command {
        Command::Specs => specs::print(&mut std::io::stdout().lock())
            .map(|()| true)
            .map_err(Into::into),
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
        Command::Personality {
            command: PersonalityCommand::Scan(args),
        } => personality::scan(args),
        Command::Personality {
            command: PersonalityCommand::Bench(args),
        } => personality::bench(args),
        Command::Personality {
            command: PersonalityCommand::Show { file },
        } => personality::show(&file),
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
        Command::Bench(args) => bench::run(*args),
        Command::Events { db, connection } => {
            events::show(&db, connection, &mut std::io::stdout().lock()).map(|()| true)
        }
        Command::FilterGain {
            trace,
            window_secs,
            capacity,
            ipv4_prefix,
            ipv6_prefix,
        } => {
            let opts = filter_gain::GainOptions {
                filter: honeyfarm_runtime::farm::FilterConfig {
                    n: 1,
                    ipv4_prefix,
                    ipv6_prefix,
                    window: std::time::Duration::from_secs(window_secs),
                    capacity,
                },
                seed: 1,
            };
            filter_gain::run(&trace, &opts, &mut std::io::stdout().lock()).map(|()| true)
        }
        Command::SynthTrace {
            seed,
            sources,
            duration,
            worm_share,
            scanner_alpha,
            out,
        } => synth_trace(
            synth_trace::Model {
                seed,
                sources,
                duration,
                worm_share,
                scanner_alpha,
                ..Default::default()
            },
            out,
        ),
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

/// Writes a synthetic trace to `out` or standard output; the count goes to standard error.
fn synth_trace(model: synth_trace::Model, out: Option<PathBuf>) -> Result<bool> {
    let n = match &out {
        Some(p) => {
            let f = std::fs::File::create(p).with_context(|| format!("{}", p.display()))?;
            let mut w = std::io::BufWriter::new(f);
            let n = model.write(&mut w)?;
            w.flush()?;
            n
        }
        None => model.write(&mut std::io::BufWriter::new(std::io::stdout().lock()))?,
    };
    eprintln!(
        "honeyfarm: {n} probes from {} sources (synthetic)",
        model.sources
    );
    Ok(true)
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
