//! `honeyfarm bench`: the farm under load (issue 9, item 7). It replays a script's client
//! side against the farm and against a baseline server that answers without decoding, and
//! prints the ratio; `bench idle` measures memory per idle connection; `bench flood` runs the
//! hostile inputs and checks that the farm survives them. Figures are printed, never asserted:
//! the machine is shared, ratios from interleaved runs are what counts.

mod baseline;
mod client;
mod flood;
mod idle;
mod load;
mod target;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Subcommand, ValueEnum};

pub use client::Failure;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Script(#[from] honeyfarm_runtime::replay::ScriptError),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("listening on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("starting a server process: {0}")]
    Spawn(std::io::Error),
    #[error("the server did not start; its standard error:\n{0}")]
    Start(String),
    #[error("the first scripted session against the {0} failed: {1}")]
    Warmup(&'static str, Failure),
    #[error("raising the open files limit: {0}")]
    Limit(std::io::Error),
    #[error("{0} connections need more descriptors than the limit of {1} allows")]
    TooMany(usize, u64),
}

impl BenchError {
    fn io(path: &Path, source: std::io::Error) -> BenchError {
        BenchError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

#[derive(ClapArgs)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
}

/// What every mode needs.
#[derive(ClapArgs)]
pub struct Common {
    /// The script whose client side is replayed.
    #[arg(long, default_value = "protocols/scripts/samba-enumdomusers.json")]
    script: PathBuf,
    /// Load a farm already running at this address instead of starting one (its CPU, memory
    /// and store are then not read).
    #[arg(long)]
    target: Option<SocketAddr>,
}

#[derive(ClapArgs)]
pub struct LoadArgs {
    /// Concurrent clients, one table each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128")]
    concurrency: Vec<usize>,
    /// Seconds per run (each round runs the farm, then the baseline).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// At most this many sessions per run.
    #[arg(long, default_value_t = 50_000)]
    sessions: u64,
    /// Rounds per concurrency.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
}

#[derive(Subcommand)]
enum Mode {
    /// Hold idle connections and print the farm's memory growth per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: IdleArgs,
    },
    /// Run the flood and bad-input cases, each against a fresh farm, and check that it stays
    /// alive and serves a scripted session after each.
    Flood {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: FloodArgs,
    },
    /// The baseline server (started by `bench` itself).
    #[command(hide = true)]
    ServeBaseline {
        #[arg(long)]
        script: PathBuf,
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(ClapArgs)]
pub struct IdleArgs {
    /// Connections to hold (each costs a descriptor here and one in the farm).
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Client messages (with their replies) each connection plays before it falls silent.
    #[arg(long, default_value_t = 0)]
    messages: usize,
    /// Seconds to wait, once the farm has accepted them all, before reading its memory.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
}

/// The flood cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Case {
    ConnectClose,
    Random,
    Mutated,
    Slowloris,
    Trickle,
    FdExhaustion,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::ConnectClose => "connect-close",
            Case::Random => "random",
            Case::Mutated => "mutated",
            Case::Slowloris => "slowloris",
            Case::Trickle => "trickle",
            Case::FdExhaustion => "fd-exhaustion",
        }
    }
}

#[derive(ClapArgs)]
pub struct FloodArgs {
    /// The cases to run (all if none).
    #[arg(value_enum)]
    cases: Vec<Case>,
    /// One JSON object per case instead of text.
    #[arg(long)]
    json: bool,
    /// Connections in flight at once (connect-close, random, mutated).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// No case starts new connections after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    case_seconds: f64,
    #[arg(long, default_value_t = 20_000)]
    connect_close: u64,
    /// Connections sending 1-2048 random bytes.
    #[arg(long, default_value_t = 10_000)]
    random: u64,
    /// Connections replaying the script up to a bit-flipped or truncated client message.
    #[arg(long, default_value_t = 20_000)]
    mutated: u64,
    /// Connections sending one byte every `--slowloris-interval` seconds.
    #[arg(long, default_value_t = 1_000)]
    slowloris: usize,
    #[arg(long, default_value_t = 2.0)]
    slowloris_interval: f64,
    /// The farm's idle timeout in the slowloris case (its connections are held three times
    /// it); the other cases keep the default (120 s).
    #[arg(long, default_value_t = 5)]
    idle_timeout: u64,
    /// Connections trickling an unfinished message.
    #[arg(long, default_value_t = 200)]
    trickle: usize,
    /// The length the trickled messages declare after their 4-byte NetBIOS header (at most
    /// 0xFFFFFF): 1 MiB in all, the farm's default `max_message_bytes`.
    #[arg(long, default_value_t = (1 << 20) - 4)]
    trickle_bytes: usize,
    /// The farm's soft limit of open files in the fd-exhaustion case.
    #[arg(long, default_value_t = 256)]
    fd_limit: u64,
    /// Connections held in the fd-exhaustion case.
    #[arg(long, default_value_t = 1_000)]
    fd_connections: usize,
    /// Seconds they are held.
    #[arg(long, default_value_t = 5.0)]
    fd_seconds: f64,
}

/// Runs the mode asked for; errors are the tool's, not the farm's.
pub fn run(args: Args) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    rt.block_on(async move {
        match args.mode {
            None => load::throughput(&args.common, &args.load).await,
            Some(Mode::Idle { common, args }) => idle::idle(&common, &args).await,
            Some(Mode::Flood { common, args }) => flood::flood(&common, &args).await,
            Some(Mode::ServeBaseline { script, listen }) => {
                baseline::serve(client::Plan::load(&script)?, listen).await
            }
        }
    })?;
    Ok(true)
}
