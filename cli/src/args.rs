//! Command-line arguments (clap derive) and their checks.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A usage error found after parsing (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for UsageError {}

/// meshflow: a tamper-evident, event-sourced log for AI-agent governance.
#[derive(Debug, Parser)]
#[command(name = "meshflow", version, about, propagate_version = true)]
pub struct Cli {
    /// The log directory.
    #[arg(
        long,
        global = true,
        env = "MESHFLOW_DB",
        default_value = "./meshflow-data"
    )]
    pub db: PathBuf,
    /// Structured output (and errors as {"error":{"kind":…,"message":…}}).
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and check the log itself.
    Log {
        /// What to do.
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Simulated agents append concurrently into a fresh directory; then reopen, verify, stats.
    Demo(DemoArgs),
    /// Run the canonical benchmark workload, one JSON object per phase on stdout.
    Bench(BenchArgs),
}

/// `meshflow log …`
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Segments, records, bytes, head hash and durable state.
    Stats,
    /// Check every frame, the global chain, every slot and every erasure (exit 0 valid,
    /// 1 hash or chain mismatch, 3 corrupt data).
    Verify,
    /// Print records from an offset (default: the last 10), optionally waiting for new ones.
    Tail(TailArgs),
}

/// `meshflow log tail`
#[derive(Debug, Args)]
pub struct TailArgs {
    /// First offset to print (default: ten before the end).
    #[arg(long)]
    pub from: Option<u64>,
    /// Keep waiting for new durable records.
    #[arg(long)]
    pub follow: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<u64>,
}

/// `meshflow demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory to create for the demo (must not exist; default: a new one under the
    /// system temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Concurrent simulated agents.
    #[arg(long, default_value_t = 8)]
    pub agents: u64,
    /// Steps each agent appends.
    #[arg(long, default_value_t = 500)]
    pub steps: u64,
}

/// `meshflow bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which layer to measure (`log`; `ledger` arrives with the ledger).
    #[arg(long, default_value = "log")]
    pub layer: String,
    /// Phases to run, comma-separated: A, B, B64 (or B<W>), C, E.
    #[arg(long, default_value = "A,B,B64,C,E")]
    pub phases: String,
    /// Runs (R).
    #[arg(long, default_value_t = 1000)]
    pub runs: u64,
    /// Steps per run (S).
    #[arg(long, default_value_t = 200)]
    pub steps: u64,
    /// Bytes of input and of output per step (P).
    #[arg(long, default_value_t = 256)]
    pub payload: u64,
    /// Concurrent appenders for phase B<W> (the phase named `B64` uses 64).
    #[arg(long)]
    pub writers: Option<u64>,
    /// Records for the durable-per-record phases B and B<W> (default: min(R×S, 2000) for B and
    /// min(R×S, 64 × 200) for B<W>).
    #[arg(long)]
    pub sync_records: Option<u64>,
    /// Directory for the bench's logs (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}
