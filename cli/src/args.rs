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
    /// The tenant whose runs the command works on.
    #[arg(
        long,
        global = true,
        env = "MESHFLOW_TENANT",
        default_value = "default"
    )]
    pub tenant: String,
    /// Structured output (and errors as {"error":{"kind":…,"message":…}}).
    #[arg(long, global = true)]
    pub json: bool,
    /// Whether --db (or MESHFLOW_DB) was given rather than defaulted.
    #[arg(skip)]
    pub db_given: bool,
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
    /// Append steps from JSON Lines (a file, or `-` / nothing for stdin); each batch of lines
    /// is atomic.
    Append(AppendArgs),
    /// List the tenant's runs, newest first, with summaries.
    Runs,
    /// Show a run's steps with their outputs, or diff it against another run.
    Replay(ReplayArgs),
    /// Summary, steps and chain status of a run (exit 1 when the chain is invalid).
    Trace(TraceArgs),
    /// Hold the writer lock and serve appends from other processes over a Unix socket
    /// (`docs/protocol.md`); write commands find it through `<db>/serve.json` and forward to it.
    Serve(ServeArgs),
    /// Export runs and verify chains, online or from an export file.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Policy rules: add, list, enable, disable, delete, evaluate (deny-overrides), decisions.
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// SLA contracts: define, record observations, stats, breaches (derived on entering
    /// breach), list.
    Sla {
        /// What to do.
        #[command(subcommand)]
        command: SlaCommand,
    },
    /// The secret vault: init, put, get, rotate, delete, list, audit (every access audited).
    Vault {
        /// What to do.
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// The lineage graph: add-node, add-edge, upstream, downstream, impact, subgraph,
    /// delete-subject (erases the subject's names and metadata), list.
    Lineage {
        /// What to do.
        #[command(subcommand)]
        command: LineageCommand,
    },
    /// Agent identities: register, revoke, list.
    Identity {
        /// What to do.
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Canary experiments: create, outcome, status (with promote/rollback checks), promote,
    /// rollback, route (sticky), list.
    Canary {
        /// What to do.
        #[command(subcommand)]
        command: CanaryCommand,
    },
    /// Locks with expiry and fencing tokens: acquire, release, extend, list, history.
    Lock {
        /// What to do.
        #[command(subcommand)]
        command: LockCommand,
    },
    /// Alerts: fire, resolve, ack, list.
    Alert {
        /// What to do.
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Feature flags: define, rule, evaluate, list.
    Flag {
        /// What to do.
        #[command(subcommand)]
        command: FlagCommand,
    },
    /// The tenant registry: create, list, get, suspend, activate, plan, delete (status only).
    Tenant {
        /// What to do.
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Compliance snapshots: export a deterministic ZIP of the governance views at one log
    /// offset, verify one (alone or against the log), list the recorded ones.
    Snapshot {
        /// What to do.
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Import an existing ledger.
    Import {
        /// What to import.
        #[command(subcommand)]
        command: ImportCommand,
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
    /// Write a checkpoint note (origin, size, global head; C2SP format) into the log's
    /// `checkpoints/`, signed with Ed25519 when `--key` is given, and print it.
    Checkpoint(CheckpointArgs),
    /// Create an Ed25519 key pair for signing checkpoint notes (keep it outside the log).
    Keygen(KeygenArgs),
}

/// `meshflow log checkpoint`
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Signer key file (`PRIVATE+KEY+…`, from `meshflow log keygen`); must be outside the log
    /// directory.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// `meshflow log keygen`
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Key name (shown in signature lines), e.g. `auditor.example.com`.
    #[arg(long)]
    pub name: String,
    /// File for the signer key (created new, mode 0600); the verifier key goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `meshflow append`
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// JSON Lines file of steps; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
    /// `sync`: each batch is durable before the next is read; `buffered`: one sync at the end.
    #[arg(long, default_value = "sync", value_parser = ["sync", "buffered"])]
    pub durability: String,
    /// Lines per atomic batch (default 1000; 1 with `--ack`).
    #[arg(long)]
    pub batch_lines: Option<usize>,
    /// Print `{"line","offset","run_id","step_index"}` for each step once it is durable.
    #[arg(long)]
    pub ack: bool,
    /// With no `serve` running and another process holding the writer lock, wait up to this
    /// many seconds for it.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub wait_lock: f64,
}

/// `meshflow serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The Unix socket to listen on (default `<db>/serve.sock`).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Also serve the HTTP API on this address (e.g. `127.0.0.1:8080`). API keys come from
    /// `MESHFLOW_API_KEYS` (`KEY=TENANT:ROLE,…`; roles append, read, admin); without keys only
    /// a loopback address is allowed.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Serve the HTTP API over TLS with this PEM certificate chain (with `--tls-key`).
    #[arg(long, value_name = "FILE", requires_all = ["http", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The largest request accepted, in bytes (socket messages and HTTP bodies; larger HTTP
    /// bodies get 413).
    #[arg(long, default_value_t = 16 << 20)]
    pub max_message_bytes: usize,
}

/// `meshflow replay`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The run.
    pub run_id: String,
    /// Compare with this run instead (node by node).
    #[arg(long, value_name = "RUN_B", conflicts_with_all = ["fork_at", "fork_at_offset"])]
    pub diff: Option<String>,
    /// Fork the run: −1 copies every step, 0 none, N the first N (`--fork-at -1` and
    /// `--fork-at=-1` both work).
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "fork_at_offset"
    )]
    pub fork_at: Option<i64>,
    /// Fork the run with the steps it had below this log offset.
    #[arg(long, value_name = "OFFSET")]
    pub fork_at_offset: Option<u64>,
    /// The fork's run id (default: a new UUID); an id in use is refused.
    #[arg(long)]
    pub new_run_id: Option<String>,
    /// Recorded with the fork: the model its replay uses.
    #[arg(long)]
    pub model: Option<String>,
    /// Recorded with the fork: the prompt its replay uses.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Recorded with the fork: `KEY=VALUE` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub inject: Vec<String>,
    /// Print the state at step N (the step a replay redoes) and fork there: the fork copies
    /// steps 0..N−1.
    #[arg(long, value_name = "N", conflicts_with_all = ["fork_at", "fork_at_offset", "diff"])]
    pub rewind: Option<u64>,
    /// Create one labelled fork per variant of `--forks` (at `--compare-step`), named
    /// `<run>--<label>`.
    #[arg(long, requires = "forks", conflicts_with_all = ["fork_at", "fork_at_offset", "diff", "rewind"])]
    pub branch_compare: bool,
    /// The variants: `LABEL:KEY=VALUE[;KEY=VALUE…],…` (`model` and `prompt` are recorded as
    /// such, other keys as injected values), e.g. `gpt4:model=gpt-4o,claude:model=claude-sonnet-4-6`.
    #[arg(long, value_name = "SPEC")]
    pub forks: Option<String>,
    /// The step the branches fork at (−1: all steps).
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub compare_step: i64,
    /// Compare the run with its labelled branches: steps, cost, tokens, verdicts, nodes that
    /// differ.
    #[arg(long, conflicts_with_all = ["fork_at", "fork_at_offset", "diff", "rewind", "branch_compare"])]
    pub branches: bool,
    /// Archive the run's export envelope to this directory or `file://` URI, once (as
    /// `<percent-encoded run id>.json`, read-only; an existing archive is refused).
    #[arg(long, value_name = "DEST", conflicts_with_all = ["diff", "fork_at", "fork_at_offset"])]
    pub archive: Option<String>,
    /// Seconds to wait for the writer lock when forking or archiving without a running
    /// `meshflow serve`.
    #[arg(long = "wait-lock", value_name = "SECS", default_value_t = 10.0)]
    pub wait_lock: f64,
}

/// `meshflow trace`
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The run.
    pub run_id: String,
    /// Also write `{run_id, summary, chain_valid, steps}` as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
}

/// `meshflow audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Export one run (or all the tenant's runs) as verifiable JSON envelopes, or CSV for
    /// spreadsheets (CSV cannot be verified).
    Export(ExportArgs),
    /// Verify run chains in the log (`--run-id`, `--all`) or an export file offline (`--file`).
    Verify(VerifyArgs),
    /// Verify one run's chain and print the reference's lines.
    VerifyChain(VerifyChainArgs),
    /// Erase every personal field of a run in place (its chain stays valid; fields read
    /// [REDACTED]).
    Anonymize(EraseArgs),
    /// Erase a run as `anonymize` does and delete it: "not found" everywhere afterwards.
    DeleteRun(EraseArgs),
    /// The tenant's erasures: who, when, why, which runs, how many slots.
    Erasures,
}

/// `meshflow audit anonymize | delete-run`
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The run.
    pub run_id: String,
    /// Also erase the run's forks, and theirs (anonymize only).
    #[arg(long)]
    pub with_forks: bool,
    /// Who asks (recorded with the erasure).
    #[arg(long, default_value = "cli")]
    pub by: String,
    /// Why (recorded with the erasure).
    #[arg(long, default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub wait: WaitLock,
}

/// `meshflow audit export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run (default: every run of the tenant).
    #[arg(long)]
    pub run_id: Option<String>,
    /// `json` (envelopes) or `csv` (15 columns, CRLF).
    #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
    pub format: String,
    /// Write to this file (created new; refused if it exists) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `meshflow audit verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify this run's chain in the log.
    #[arg(long, conflicts_with_all = ["all", "file"])]
    pub run_id: Option<String>,
    /// Verify the whole log (frames, global chain, erased slots) and every run of the tenant.
    #[arg(long, conflicts_with = "file")]
    pub all: bool,
    /// Verify an export file offline (`-` for stdin), with no access to the log.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A checkpoint note you trust (kept outside the log): the log must still extend it.
    #[arg(long, value_name = "FILE", requires = "pubkey")]
    pub trusted_checkpoint: Option<PathBuf>,
    /// Verifier key of the trusted checkpoint's signer: the key text, or a file holding it.
    #[arg(long, value_name = "KEY", requires = "trusted_checkpoint")]
    pub pubkey: Option<String>,
}

/// `meshflow audit verify-chain`
#[derive(Debug, Args)]
pub struct VerifyChainArgs {
    /// The run.
    #[arg(long)]
    pub run_id: String,
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
    /// Which layer to measure: `ledger` (steps with both chains) or `log` (bare records).
    #[arg(long, default_value = "ledger", value_parser = ["ledger", "log"])]
    pub layer: String,
    /// Phases to run, comma-separated: A, B, B64 (or B<W>), C, D (ledger only), E, S64 (or
    /// S<W>: B<W> through the writer service's socket; ledger only; P: policy evaluation over
    /// 1,000 rules; G: rebuilding every governance view from scratch; R / R10: reopening with
    /// checkpoints the canonical log plus governance events, and 10× it; F: forking a
    /// 10,000-step run; X: anonymizing one run of phase A's log; Z: a compliance snapshot of
    /// 100,000 governance records against serde_json + zip directly, with peak RSS). Default:
    /// A, B, B64, C, D, E for the ledger, A, B, B64, C, E for the log.
    #[arg(long)]
    pub phases: Option<String>,
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

/// How long a write command waits for another process's writer lock (when no `serve` runs).
#[derive(Debug, Args, Clone, Copy)]
pub struct WaitLock {
    /// Seconds to wait for the writer lock when no `meshflow serve` runs for this log.
    #[arg(long = "wait-lock", value_name = "SECS", default_value_t = 10.0)]
    pub secs: f64,
}

/// Which state a read command shows.
#[derive(Debug, Args, Clone, Default)]
pub struct AtOffset {
    /// Show the view as it was just before this log offset (default: now).
    #[arg(long = "at-offset", value_name = "N", conflicts_with = "time")]
    pub offset: Option<u64>,
    /// Show the view as it was at this time: RFC 3339 UTC (`2026-11-25T10:00:00Z`) or Unix
    /// seconds.
    #[arg(long = "at-time", value_name = "T")]
    pub time: Option<String>,
}

/// `meshflow policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Add a rule (its name is unique in the tenant).
    Add(PolicyAddArgs),
    /// List the rules, highest priority first.
    List {
        /// Only rules of this framework.
        #[arg(long, default_value = "")]
        framework: String,
        /// Only enabled rules.
        #[arg(long)]
        enabled_only: bool,
        #[command(flatten)]
        at: AtOffset,
    },
    /// Enable a rule (by id or name).
    Enable {
        /// Rule id or name.
        rule: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Disable a rule (by id or name).
    Disable {
        /// Rule id or name.
        rule: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Delete a rule (by id or name).
    Delete {
        /// Rule id or name.
        rule: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Evaluate a context (a JSON object): any matching deny wins, else the highest-priority
    /// match, else the default. Exit 0 whatever the verdict.
    Evaluate {
        /// The context, a JSON object.
        #[arg(long)]
        context: String,
        /// Only rules of this framework.
        #[arg(long, default_value = "")]
        framework: String,
        /// Also append the decision to the tenant's decision log.
        #[arg(long)]
        log: bool,
        /// A key naming what was decided, kept in the decision log.
        #[arg(long, default_value = "")]
        context_key: String,
        #[command(flatten)]
        at: AtOffset,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// The decision log, newest first.
    Decisions {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        at: AtOffset,
    },
    /// What no match means: `allow` (the reference's default) or `deny`.
    Default {
        /// `allow` or `deny`.
        action: String,
        #[command(flatten)]
        wait: WaitLock,
    },
}

/// `meshflow policy add`
#[derive(Debug, Args)]
pub struct PolicyAddArgs {
    /// The rule's name (unique in the tenant).
    pub name: String,
    /// allow, deny, log or alert.
    #[arg(long)]
    pub action: String,
    /// Higher is evaluated first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// The framework the rule belongs to.
    #[arg(long, default_value = "custom")]
    pub framework: String,
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
    /// A condition `FIELD OP [VALUE]` (repeatable; all must hold). OP is one of eq, neq, in,
    /// not_in, gt, lt, gte, lte, contains, exists; VALUE is read as JSON when it parses
    /// (`100`, `true`, `["a","b"]`), as text otherwise.
    #[arg(long = "condition", value_name = "FIELD OP [VALUE]")]
    pub conditions: Vec<String>,
    /// Conditions as a JSON array of `{"field","op","value"}` (added to `--condition`s).
    #[arg(long)]
    pub conditions_json: Option<String>,
    /// Add the rule disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub wait: WaitLock,
}

/// `meshflow tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Register a tenant (name and slug unique; the id defaults to the slug).
    Create {
        /// Display name.
        name: String,
        /// Slug.
        #[arg(long)]
        slug: String,
        /// free, pro or enterprise.
        #[arg(long, default_value = "free")]
        plan: String,
        /// The tenant id its data is written under (default: the slug). Never reusable.
        #[arg(long)]
        id: Option<String>,
        /// A JSON object of metadata.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// List tenants, newest first.
    List {
        /// Only tenants with this status (active, suspended, deleted).
        #[arg(long, default_value = "")]
        status: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// Show one tenant (by id or slug).
    Get {
        /// Id or slug.
        tenant: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// Suspend a tenant.
    Suspend {
        /// Id or slug.
        tenant: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Activate a suspended tenant.
    Activate {
        /// Id or slug.
        tenant: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Mark a tenant deleted (its id is never reused). With --purge also erase its data: every
    /// run deleted, every lineage node and vault secret erased; other tenants are untouched.
    Delete {
        /// Id or slug (with --purge: the tenant id).
        tenant: String,
        /// Also erase the tenant's runs and personal governance data.
        #[arg(long)]
        purge: bool,
        /// Who asks (recorded with the erasure).
        #[arg(long, default_value = "cli")]
        by: String,
        /// Why (recorded with the erasure).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Change a tenant's plan.
    Plan {
        /// Id or slug.
        tenant: String,
        /// free, pro or enterprise.
        plan: String,
        #[command(flatten)]
        wait: WaitLock,
    },
}

/// `meshflow sla …`
#[derive(Debug, Subcommand)]
pub enum SlaCommand {
    /// Define (or replace) an agent's contract: p50 ≤ p95 ≤ p99 in ms, 0 ≤ error rate ≤ 1.
    Define {
        /// The agent.
        agent: String,
        /// p50 latency bound, ms.
        #[arg(long)]
        p50: f64,
        /// p95 latency bound, ms.
        #[arg(long)]
        p95: f64,
        /// p99 latency bound, ms.
        #[arg(long)]
        p99: f64,
        /// Failed-fraction bound.
        #[arg(long, default_value_t = 0.05)]
        error_rate: f64,
        /// Window, seconds.
        #[arg(long, default_value_t = 3600.0)]
        window: f64,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Record one observation of an agent's call; prints the breaches it caused.
    Record {
        /// The agent.
        agent: String,
        /// Latency, ms.
        #[arg(long)]
        latency: f64,
        /// The call failed.
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Window statistics of an agent.
    Stats {
        /// The agent.
        agent: String,
        /// The window's end, Unix seconds (default: now).
        #[arg(long)]
        now: Option<f64>,
        #[command(flatten)]
        at: AtOffset,
    },
    /// Breaches, newest first.
    Breaches {
        /// Only this agent's.
        #[arg(long, default_value = "")]
        agent: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        at: AtOffset,
    },
    /// The contracts, by agent.
    List {
        #[command(flatten)]
        at: AtOffset,
    },
}

/// The vault passphrase and the actor of a vault command.
#[derive(Debug, Args, Clone)]
pub struct VaultAuth {
    /// The vault passphrase (there is no default).
    #[arg(long, env = "MESHFLOW_VAULT_PASSPHRASE", hide_env_values = true)]
    pub vault_passphrase: Option<String>,
    /// Who acts, as the audit trail records it.
    #[arg(long = "by", default_value = "cli")]
    pub by: String,
}

/// Where a secret value comes from.
#[derive(Debug, Args, Clone)]
pub struct SecretValue {
    /// The value (visible to other users in the process list: prefer --value-file).
    #[arg(long, conflicts_with = "value_file")]
    pub value: Option<String>,
    /// Read the value from this file (`-` for stdin; one trailing newline is dropped).
    #[arg(long)]
    pub value_file: Option<PathBuf>,
}

/// `meshflow vault …`
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Create the tenant's vault: Argon2id parameters and a passphrase verifier.
    Init {
        #[command(flatten)]
        auth: VaultAuth,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Store a new secret.
    Put {
        /// The secret's name (unique in the tenant).
        name: String,
        #[command(flatten)]
        value: SecretValue,
        /// Category.
        #[arg(long, default_value = "generic")]
        category: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        auth: VaultAuth,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Print a secret's value (the read is audited first).
    Get {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        auth: VaultAuth,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Replace a secret's value (the old ciphertext is erased).
    Rotate {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        value: SecretValue,
        #[command(flatten)]
        auth: VaultAuth,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Delete a secret (its ciphertexts are erased).
    Delete {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        auth: VaultAuth,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Secrets' metadata, newest first (never values).
    List {
        /// Only this category.
        #[arg(long, default_value = "")]
        category: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// The audit trail, newest first.
    Audit {
        /// Only this secret's entries.
        name: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        at: AtOffset,
    },
}

/// `meshflow identity …`
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Register an agent identity (its name is unique).
    Register {
        /// The agent's name.
        name: String,
        /// A capability (repeatable).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// The issuer.
        #[arg(long, default_value = "meshflow")]
        issuer: String,
        /// A JSON object of metadata.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Revoke an identity (by id or name).
    Revoke {
        /// Id or name.
        agent: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// List identities, oldest first.
    List {
        /// Only unrevoked identities.
        #[arg(long)]
        active_only: bool,
        #[command(flatten)]
        at: AtOffset,
    },
}

/// `meshflow canary …`
#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// Create an experiment.
    Create {
        /// Its unique name.
        name: String,
        /// The stable agent.
        #[arg(long)]
        stable: String,
        /// The canary agent.
        #[arg(long)]
        canary: String,
        /// Fraction of traffic to the canary.
        #[arg(long, default_value_t = 0.1)]
        split: f64,
        /// Canary outcomes needed before a check passes.
        #[arg(long, default_value_t = 10)]
        min_requests: i64,
        /// Promote at or above this success rate.
        #[arg(long, default_value_t = 0.95)]
        promote_threshold: f64,
        /// Roll back below this one.
        #[arg(long, default_value_t = 0.80)]
        rollback_threshold: f64,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Record one outcome of a cohort (`stable` or `canary`).
    Outcome {
        /// Experiment name or id.
        experiment: String,
        /// `stable` or `canary`.
        #[arg(long)]
        cohort: String,
        /// The call failed.
        #[arg(long)]
        failed: bool,
        /// Latency, ms.
        #[arg(long, default_value_t = 0.0)]
        latency: f64,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Show an experiment with its cohorts and the promote / rollback checks.
    Status {
        /// Experiment name or id.
        experiment: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// Promote (only when the promote check passes, unless --force).
    Promote {
        /// Experiment name or id.
        experiment: String,
        /// Promote whatever the check says.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Roll back (only when the rollback check passes, unless --force).
    Rollback {
        /// Experiment name or id.
        experiment: String,
        /// Roll back whatever the check says.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Pause or resume (`paused`, `active`).
    SetStatus {
        /// Experiment name or id.
        experiment: String,
        /// active, paused, promoted, rolled_back.
        status: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Which cohort an entity is routed to (sticky).
    Route {
        /// Experiment name or id.
        experiment: String,
        /// The entity (user, session, agent).
        entity: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// List experiments.
    List {
        #[command(flatten)]
        at: AtOffset,
    },
}

/// `meshflow lock …`
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Acquire a resource for TTL seconds; prints the fencing token.
    Acquire {
        /// The resource.
        resource: String,
        /// Who holds it.
        #[arg(long)]
        owner: String,
        /// Seconds.
        #[arg(long, default_value_t = 30.0)]
        ttl: f64,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Release a held resource.
    Release {
        /// The resource.
        resource: String,
        /// The holder.
        #[arg(long)]
        owner: String,
        /// The lease's fencing token (refused when stale).
        #[arg(long)]
        token: Option<u64>,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Extend a held lease.
    Extend {
        /// The resource.
        resource: String,
        /// The holder.
        #[arg(long)]
        owner: String,
        /// Seconds to add.
        #[arg(long)]
        add: f64,
        /// The lease's fencing token (refused when stale).
        #[arg(long)]
        token: Option<u64>,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Leases (unexpired ones unless --all).
    List {
        /// Expired leases too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        at: AtOffset,
    },
    /// The acquire / extend / release history, oldest first.
    History {
        /// Only this resource.
        resource: Option<String>,
        #[command(flatten)]
        at: AtOffset,
    },
}

/// `meshflow alert …`
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Fire an alert.
    Fire {
        /// The agent.
        agent: String,
        /// The metric.
        #[arg(long)]
        metric: String,
        /// gt, lt, gte, lte, eq.
        #[arg(long, default_value = "gt")]
        operator: String,
        /// The threshold.
        #[arg(long)]
        threshold: f64,
        /// The value that crossed it.
        #[arg(long)]
        value: f64,
        /// The rule's name.
        #[arg(long, default_value = "")]
        rule: String,
        /// Text (default: the reference's `<agent>.<metric> <op> <threshold> (value=…)`).
        #[arg(long, default_value = "")]
        message: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Resolve a firing alert.
    Resolve {
        /// Alert id.
        alert_id: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Acknowledge a firing or resolved alert.
    Ack {
        /// Alert id.
        alert_id: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        by: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Alerts, newest first.
    List {
        /// firing, resolved or acked.
        #[arg(long, default_value = "")]
        status: String,
        /// Only this agent's.
        #[arg(long, default_value = "")]
        agent: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        at: AtOffset,
    },
}

/// `meshflow flag …`
#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    /// Define a flag.
    Define {
        /// Its unique name.
        name: String,
        /// bool, string or number.
        #[arg(long = "type", default_value = "bool")]
        flag_type: String,
        /// The default value, as JSON (`false`, `"blue"`, `3`).
        #[arg(long, default_value = "false")]
        default: String,
        /// Percentage of entities the rules apply to (0..100).
        #[arg(long, default_value_t = 100)]
        rollout: i64,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Define it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Add a targeting rule: when `KEY OP VALUE` holds, the flag gives RETURN.
    Rule {
        /// Flag name or id.
        flag: String,
        /// The condition `KEY OP VALUE` (eq, neq, in, gt, lt, gte, lte, contains).
        #[arg(long = "when", value_name = "KEY OP VALUE")]
        when: String,
        /// The value to give, as JSON.
        #[arg(long = "return", value_name = "JSON")]
        return_value: String,
        /// Higher first.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i64,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Evaluate a flag for a context (a JSON object; `entity_id` or `agent_name` picks the
    /// rollout bucket).
    Evaluate {
        /// Flag name or id.
        flag: String,
        /// The context.
        #[arg(long, default_value = "{}")]
        context: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// List flags with their rules.
    List {
        #[command(flatten)]
        at: AtOffset,
    },
}

/// `meshflow lineage …`
#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Add a node (its name and metadata are erasable).
    AddNode {
        /// The node's name.
        name: String,
        /// source, transform, sink, agent, tool, dataset, artifact, run.
        #[arg(long)]
        kind: String,
        /// The node id (default: a new UUID).
        #[arg(long)]
        id: Option<String>,
        /// The run it belongs to.
        #[arg(long, default_value = "")]
        run_id: String,
        /// The agent.
        #[arg(long, default_value = "")]
        agent: String,
        /// A JSON object of metadata.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Add an edge SOURCE → TARGET between known nodes.
    AddEdge {
        /// Source node id.
        source: String,
        /// Target node id.
        target: String,
        /// derived_from, produced_by, consumed_by, uses, feeds, depends_on, forked_from, archived_to.
        #[arg(long, default_value = "derived_from")]
        relation: String,
        /// A JSON object of metadata.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Everything a node derives from.
    Upstream {
        /// Node id.
        node: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// Everything derived from a node.
    Downstream {
        /// Node id.
        node: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// What a change to a node affects (its downstream).
    Impact {
        /// Node id.
        node: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// A node with everything up- and downstream, and the edges among them.
    Subgraph {
        /// Node id.
        node: String,
        #[command(flatten)]
        at: AtOffset,
    },
    /// Delete every node named NAME with its edges, and erase their names and metadata.
    DeleteSubject {
        /// The exact name.
        name: String,
        #[command(flatten)]
        wait: WaitLock,
    },
    /// Every node and edge.
    List {
        #[command(flatten)]
        at: AtOffset,
    },
}

/// `meshflow import …`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A reference MeshFlow SQLite ledger: every run's legacy chain checked (per run or
    /// batched), gzip+base64 outputs decoded, tenants kept, legacy hashes kept as provenance;
    /// each run imported atomically; runs whose legacy chain was broken are reported (exit 1).
    MeshflowSqlite {
        /// The SQLite file.
        path: PathBuf,
        #[command(flatten)]
        wait: WaitLock,
    },
}

/// `meshflow snapshot …`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Export the governance views (13 sections, the seed's order) at one log offset to a
    /// deterministic ZIP; records its manifest digest in the log unless --no-record.
    Export(SnapshotExportArgs),
    /// Check every section against the manifest; with --db, also against the log's state at
    /// the snapshot's offset and the manifest digest recorded at export. Exit 1 naming what
    /// fails.
    Verify(SnapshotVerifyArgs),
    /// The snapshots this tenant recorded in the log.
    List,
}

/// `meshflow snapshot export`
#[derive(Debug, Args)]
pub struct SnapshotExportArgs {
    /// The ZIP file to write (refused when it exists, unless --force).
    #[arg(long, value_name = "F")]
    pub output: PathBuf,
    /// Free text (default "Compliance snapshot <first 8 characters of the id>").
    #[arg(long)]
    pub description: Option<String>,
    /// Who takes it.
    #[arg(long, default_value = "cli")]
    pub created_by: String,
    /// The state just before this log offset (default: the durable end).
    #[arg(long, value_name = "N", conflicts_with = "at_time")]
    pub at_offset: Option<u64>,
    /// The state at this time: RFC 3339 UTC or Unix seconds.
    #[arg(long, value_name = "T")]
    pub at_time: Option<String>,
    /// Every tenant's views and the whole tenant registry (records carry a `tenant` key).
    #[arg(long)]
    pub all_tenants: bool,
    /// Pin the snapshot id (with --created-at, two exports at one offset are byte-identical).
    #[arg(long, value_name = "ID", requires = "created_at")]
    pub snapshot_id: Option<String>,
    /// Pin the creation time (RFC 3339 UTC or Unix seconds); also "now" for time-dependent
    /// fields.
    #[arg(long, value_name = "TS", requires = "snapshot_id")]
    pub created_at: Option<String>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Do not record the snapshot in the log (its free-text fields are then unanchored).
    #[arg(long)]
    pub no_record: bool,
    #[command(flatten)]
    pub wait: WaitLock,
}

/// `meshflow snapshot verify`
#[derive(Debug, Args)]
pub struct SnapshotVerifyArgs {
    /// The snapshot ZIP. With --db DIR (or MESHFLOW_DB), it is also checked against that log.
    pub file: PathBuf,
}
