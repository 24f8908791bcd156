//! `meshflow`: the command-line tool. Glue only: clap parses, `config` checks, and the
//! engine does the work. Exit codes (SPEC.md §8): 0 success; 1 not found, conflict or
//! verification failed; 2 usage; 3 corrupt or unreadable data; 4 I/O or other error.

mod args;
mod commands;
mod output;
mod time;

use std::process::ExitCode;

use meshflow_engine::Error;

use args::{AuditCommand, Cli, Command, LogCommand};
use meshflow_engine::ledger::LedgerError;
use meshflow_engine::service::client::ClientError;

/// mimalloc: threads allocate and free across each other at a high rate (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for each error kind.
fn exit_code(error: &anyhow::Error) -> u8 {
    if let Some(e) = error.downcast_ref::<ClientError>() {
        return match e {
            ClientError::Remote { kind, .. } => match kind.as_str() {
                "not_found" | "conflict" | "rejected" | "verification_failed" | "locked" => 1,
                "invalid_input" | "limit_exceeded" | "too_large" | "unsupported_version" => 2,
                "corrupt" | "unsupported_format" => 3,
                _ => 4,
            },
            _ => 4,
        };
    }
    if let Some(e) = error.downcast_ref::<meshflow_engine::governance::vault::VaultError>() {
        return match e {
            meshflow_engine::governance::vault::VaultError::WrongPassphrase => 1,
            meshflow_engine::governance::vault::VaultError::Invalid(_) => 2,
        };
    }
    let engine = match error.downcast_ref::<LedgerError>() {
        Some(LedgerError::NotFound { .. } | LedgerError::Conflict { .. }) => return 1,
        Some(LedgerError::Invalid { .. }) => return 2,
        Some(LedgerError::Log(e)) => Some(e),
        Some(_) => return 4,
        None => error.downcast_ref::<Error>(),
    };
    match engine {
        Some(Error::NotFound { .. } | Error::Verify(_) | Error::Rejected { .. }) => 1,
        Some(Error::Locked { .. }) => 1,
        Some(Error::InvalidInput { .. } | Error::LimitExceeded { .. }) => 2,
        Some(Error::Corrupt(_) | Error::UnsupportedVersion { .. }) => 3,
        Some(_) => 4,
        None if error.downcast_ref::<args::UsageError>().is_some() => 2,
        None if error
            .downcast_ref::<commands::audit::VerifyFailed>()
            .is_some() =>
        {
            1
        }
        None => 4,
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `snapshot verify` checks against a log only when one is named (flag or MESHFLOW_DB).
    cli.db_given = matches.value_source("db") != Some(clap::parser::ValueSource::DefaultValue);
    let json = cli.json;
    let result = match &cli.command {
        Command::Log { command } => match command {
            LogCommand::Stats => commands::log::stats(&cli),
            LogCommand::Verify => commands::log::verify(&cli),
            LogCommand::Tail(tail) => commands::log::tail(&cli, tail),
            LogCommand::Checkpoint(c) => commands::log::checkpoint(&cli, c),
            LogCommand::Keygen(k) => commands::log::keygen(&cli, k),
        },
        Command::Append(a) => commands::ledger::append(&cli, a),
        Command::Serve(a) => commands::serve::run(&cli, a),
        Command::Runs => commands::ledger::runs(&cli),
        Command::Replay(r) => commands::ledger::replay(&cli, r),
        Command::Trace(t) => commands::ledger::trace(&cli, t),
        Command::Audit { command } => match command {
            AuditCommand::Export(e) => commands::audit::export(&cli, e),
            AuditCommand::Verify(v) => commands::audit::verify(&cli, v),
            AuditCommand::VerifyChain(v) => commands::audit::verify_chain(&cli, v),
            AuditCommand::Anonymize(e) => commands::audit::erase(&cli, e, false),
            AuditCommand::DeleteRun(e) => commands::audit::erase(&cli, e, true),
            AuditCommand::Erasures => commands::audit::erasures(&cli),
        },
        Command::Policy { command } => commands::governance::policy(&cli, command),
        Command::Tenant { command } => commands::governance::tenant(&cli, command),
        Command::Sla { command } => commands::governance::sla(&cli, command),
        Command::Vault { command } => commands::governance::vault(&cli, command),
        Command::Identity { command } => commands::governance_more::identity(&cli, command),
        Command::Lineage { command } => commands::governance_more::lineage(&cli, command),
        Command::Canary { command } => commands::governance_more::canary(&cli, command),
        Command::Lock { command } => commands::governance_more::lock(&cli, command),
        Command::Alert { command } => commands::governance_more::alert(&cli, command),
        Command::Flag { command } => commands::governance_more::flag(&cli, command),
        Command::Snapshot { command } => match command {
            args::SnapshotCommand::Export(a) => commands::snapshot::export(&cli, a),
            args::SnapshotCommand::Verify(a) => commands::snapshot::verify(&cli, a),
            args::SnapshotCommand::List => commands::snapshot::list(&cli),
        },
        Command::Import {
            command: args::ImportCommand::MeshflowSqlite { path, wait },
        } => commands::audit::import_sqlite(&cli, path, *wait),
        Command::Demo(demo) => commands::demo::run(&cli, demo),
        Command::Bench(bench) => commands::bench::run(bench),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            output::print_error(&e, json);
            ExitCode::from(code)
        }
    }
}
