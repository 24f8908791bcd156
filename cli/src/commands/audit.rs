//! `meshflow audit export | verify | verify-chain`.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use meshflow_engine::format::note::{self, Verified};
use meshflow_engine::ledger::anchor;
use meshflow_engine::ledger::export::{hex, report_json};
use meshflow_engine::ledger::offline::{verify_export, EnvelopeReport};
use meshflow_engine::ledger::{ChainReport, Ledger, LedgerError};
use meshflow_engine::Error;
use serde_json::json;

use super::ledger::open_read;
use crate::args::{Cli, ExportArgs, UsageError, VerifyArgs, VerifyChainArgs};

/// Writes through `write` into a temporary file beside `path`, fsyncs it and links it into
/// place only if `path` does not exist: the output appears whole or not at all, and an
/// existing file is never overwritten.
fn write_file_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    if path.exists() {
        anyhow::bail!(
            "{} already exists (an existing file is never overwritten)",
            path.display()
        );
    }
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map_or("export".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let file = crate::output::create_new(&tmp)?;
        let mut out = std::io::BufWriter::new(file);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::hard_link(&tmp, path).with_context(|| {
            format!(
                "creating {} (an existing file is never overwritten)",
                path.display()
            )
        })?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// `meshflow audit export`
pub fn export(cli: &Cli, args: &ExportArgs) -> Result<u8> {
    let ledger = open_read(cli)?;
    let csv = args.format == "csv";
    let run = args.run_id.as_deref();
    let write = |out: &mut dyn Write| -> Result<()> {
        match (csv, run) {
            (true, r) => ledger.export_csv(r, out)?,
            (false, Some(r)) => ledger.export_run(r, out)?,
            (false, None) => ledger.export_all(out)?,
        }
        Ok(())
    };
    match &args.out {
        Some(path) => {
            write_file_atomically(path, write)?;
            if cli.json {
                println!("{}", json!({"written": path.display().to_string()}));
            } else {
                println!("Written to {}", path.display());
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            write(&mut out)?;
            out.flush()?;
        }
    }
    Ok(0)
}

fn print_chain(out: &mut dyn Write, report: &ChainReport, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", report_json(report))?;
        return Ok(());
    }
    if report.valid {
        writeln!(
            out,
            "CHAIN VALID — {} step(s) verified for run '{}'.",
            report.steps_verified, report.run_id
        )?;
    } else {
        writeln!(
            out,
            "CHAIN INVALID — {} error(s) in run '{}':",
            report.errors.len(),
            report.run_id
        )?;
        for e in &report.errors {
            writeln!(out, "  {}", e.message)?;
        }
    }
    if report.steps_redacted > 0 {
        writeln!(
            out,
            "  {} step(s) redacted: their erased content is unverifiable; their hashes verify.",
            report.steps_redacted
        )?;
    }
    Ok(())
}

/// `meshflow audit verify-chain --run-id ID`
pub fn verify_chain(cli: &Cli, args: &VerifyChainArgs) -> Result<u8> {
    let ledger = open_read(cli)?;
    let report = ledger.verify_chain(&args.run_id)?;
    print_chain(&mut std::io::stdout().lock(), &report, cli.json)?;
    Ok(u8::from(!report.valid))
}

/// The trusted checkpoint given with `--trusted-checkpoint` and `--pubkey`, its signature
/// verified.
fn trusted_checkpoint(args: &VerifyArgs) -> Result<Option<Verified>> {
    let (Some(file), Some(key)) = (&args.trusted_checkpoint, &args.pubkey) else {
        return Ok(None);
    };
    let note = std::fs::read_to_string(file)
        .with_context(|| format!("reading the trusted checkpoint {}", file.display()))?;
    let key_text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).with_context(|| format!("reading the key {key}"))?
    } else {
        key.clone()
    };
    let verifier =
        note::parse_verifier(&key_text).map_err(|e| UsageError(format!("--pubkey: {e}")))?;
    match note::verify_note(&note, &verifier) {
        Ok(v) => Ok(Some(v)),
        Err(why) => Err(VerifyFailed(format!(
            "the trusted checkpoint {} does not verify: {why}",
            file.display()
        ))
        .into()),
    }
}

/// A verification failure found by the CLI itself (exit 1).
#[derive(Debug)]
pub struct VerifyFailed(pub String);

impl std::fmt::Display for VerifyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for VerifyFailed {}

/// `meshflow audit verify --run-id ID | --all | --file EXPORT`
pub fn verify(cli: &Cli, args: &VerifyArgs) -> Result<u8> {
    let trusted = trusted_checkpoint(args)?;
    if let Some(file) = &args.file {
        return verify_file(cli, file, trusted.as_ref());
    }
    let ledger = open_read(cli)?;
    if let Some(t) = &trusted {
        let anchored = anchor::check_log(ledger.reader(), &t.checkpoint)?;
        let mut out = std::io::stdout().lock();
        match anchored {
            Ok(()) => {
                if !cli.json {
                    writeln!(
                        out,
                        "ANCHOR OK — the log extends the trusted checkpoint ({} records, signed by '{}').",
                        t.checkpoint.size, t.key_name
                    )?;
                }
            }
            Err(why) => {
                if cli.json {
                    writeln!(
                        out,
                        "{}",
                        json!({"valid": false, "anchored": false, "anchor_error": why})
                    )?;
                } else {
                    writeln!(out, "ANCHOR FAILED — {why}")?;
                }
                return Ok(1);
            }
        }
    }
    if let Some(run) = &args.run_id {
        let report = if trusted.is_some() {
            // Anchored: the whole log must verify (every link up to the note's last record),
            // not only this run's records.
            let (_, reports) = ledger.verify_all()?;
            reports
                .into_iter()
                .find(|r| r.run_id == *run)
                .ok_or_else(|| LedgerError::NotFound {
                    what: format!("run '{run}'"),
                })?
        } else {
            ledger.verify_chain(run)?
        };
        print_chain(&mut std::io::stdout().lock(), &report, cli.json)?;
        return Ok(u8::from(!report.valid));
    }
    if !args.all {
        return Err(UsageError("give --run-id ID, --all or --file EXPORT".to_string()).into());
    }
    verify_all(cli, &ledger)
}

fn verify_all(cli: &Cli, ledger: &Ledger) -> Result<u8> {
    // One pass: frames, the global chain, erased slots (exit 3 on damage) and every run chain.
    let (log, reports) = match ledger.verify_all() {
        Ok(r) => r,
        Err(e) => {
            let offset = match &e {
                LedgerError::Log(Error::Verify(v)) => Some(v.offset),
                LedgerError::Log(Error::Corrupt(c)) => c.offset,
                _ => None,
            };
            let at = offset.and_then(|o| ledger.describe_offset(o));
            return Err(match at {
                Some(step) => anyhow::Error::from(e).context(format!("in {step}")),
                None => e.into(),
            });
        }
    };
    let mut out = std::io::stdout().lock();
    let invalid = reports.iter().filter(|r| !r.valid).count();
    if cli.json {
        let value = json!({
            "valid": invalid == 0,
            "log": {"records": log.record_count, "head_hash": log.head_hash,
                    "slots_erased": log.slots_erased},
            "runs": reports.iter().map(report_json).collect::<Vec<_>>(),
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "LOG VALID — {} record(s), global head {}",
            log.record_count, log.head_hash
        )?;
        for r in &reports {
            print_chain(&mut out, r, false)?;
        }
        writeln!(
            out,
            "{} run(s) verified for tenant '{}', {invalid} invalid.",
            reports.len(),
            cli.tenant
        )?;
    }
    Ok(u8::from(invalid > 0))
}

fn verify_file(cli: &Cli, file: &Path, trusted: Option<&Verified>) -> Result<u8> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the export from stdin")?;
    } else {
        std::fs::File::open(file)
            .and_then(|mut f| f.read_to_string(&mut text))
            .with_context(|| format!("reading {}", file.display()))?;
    }
    let value = meshflow_engine::ledger::offline::parse_strict(&text)
        .map_err(|e| UsageError(format!("{} is not an export: {e}", file.display())))?;
    let reports = verify_export(&value).map_err(UsageError)?;
    let mut anchor_notes = Vec::new();
    let mut anchor_failed = false;
    if let Some(t) = trusted {
        let envelopes: Vec<&serde_json::Value> = match &value {
            serde_json::Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for env in envelopes {
            let run = env["run_id"].as_str().unwrap_or("?");
            let at = env["as_of_offset"].as_u64();
            let hash = env["global_hash_at"].as_str().unwrap_or("");
            if at == Some(t.checkpoint.size) {
                if hash == hex(&t.checkpoint.head) {
                    anchor_notes.push(format!(
                        "run '{run}': anchored — taken at the trusted checkpoint's head"
                    ));
                } else {
                    anchor_failed = true;
                    anchor_notes.push(format!(
                        "run '{run}': ANCHOR FAILED — taken at the checkpoint's size but on another global head"
                    ));
                }
            } else {
                anchor_notes.push(format!(
                    "run '{run}': not anchorable offline (export at offset {}, checkpoint at {}); verify against the log with --run-id and --db",
                    at.map_or("?".to_string(), |a| a.to_string()),
                    t.checkpoint.size
                ));
            }
        }
    }
    let valid = reports.iter().all(EnvelopeReport::valid) && !anchor_failed;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let runs: Vec<_> = reports
            .iter()
            .map(|r| {
                json!({"run_id": r.run_id, "tenant": r.tenant, "valid": r.valid(),
                       "steps_verified": r.steps_verified, "steps_redacted": r.steps_redacted,
                       "head_entry_hash": r.head, "errors": r.errors})
            })
            .collect();
        writeln!(
            out,
            "{}",
            json!({"valid": valid, "anchored": false, "runs": runs})
        )?;
        return Ok(u8::from(!valid));
    }
    for r in &reports {
        if r.valid() {
            writeln!(
                out,
                "OK run '{}' (tenant '{}'): {} step(s) verified, {} redacted, head {}",
                r.run_id,
                r.tenant,
                r.steps_verified,
                r.steps_redacted,
                if r.head.is_empty() { "\"\"" } else { &r.head }
            )?;
        } else {
            writeln!(
                out,
                "FAIL run '{}' (tenant '{}'): {} error(s)",
                r.run_id,
                r.tenant,
                r.errors.len()
            )?;
            for e in &r.errors {
                writeln!(out, "  {e}")?;
            }
        }
    }
    if trusted.is_some() {
        for n in &anchor_notes {
            writeln!(out, "{n}")?;
        }
    } else {
        writeln!(
            out,
            "No trusted checkpoint given: the export is internally consistent, but a consistent \
             rewrite or a truncation is undetectable without an anchor. Compare the head(s) above \
             with a head you trust."
        )?;
    }
    Ok(u8::from(!valid))
}

/// `meshflow audit anonymize | delete-run RUN`: through a running `serve`, or here.
pub fn erase(cli: &Cli, args: &crate::args::EraseArgs, delete: bool) -> Result<u8> {
    if delete && args.with_forks {
        return Err(crate::args::UsageError(
            "--with-forks goes with anonymize (delete the forks one by one)".to_string(),
        )
        .into());
    }
    let receipt = match meshflow_engine::service::client::Client::discover(&cli.db) {
        Some(mut client) => client.erase(
            &cli.tenant,
            &args.run_id,
            delete,
            args.with_forks,
            &args.by,
            &args.reason,
        )?,
        None => {
            let ledger = crate::commands::ledger::open_write_waiting(cli, args.wait.secs)?;
            if delete {
                ledger.delete_run(&args.run_id, &args.by, &args.reason)?
            } else {
                ledger.anonymize_run(&args.run_id, args.with_forks, &args.by, &args.reason)?
            }
        }
    };
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"runs": receipt.runs, "slots_erased": receipt.slots_erased,
                               "offsets": receipt.offsets, "deleted": delete,
                               "archives": receipt.archives})
        )?;
    } else {
        writeln!(
            out,
            "{} {}: {} slot(s) erased in place (erasure record(s) at offset {}); every chain still verifies",
            if delete { "deleted" } else { "anonymized" },
            receipt.runs.join(", "),
            receipt.slots_erased,
            receipt
                .offsets
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        for uri in &receipt.archives {
            writeln!(
                out,
                "  not reached: the archive {uri} (outside the data directory: remove it yourself)"
            )?;
        }
    }
    Ok(0)
}

/// `meshflow audit erasures`
pub fn erasures(cli: &Cli) -> Result<u8> {
    let ledger = meshflow_engine::ledger::Ledger::open_read_only(
        &cli.db,
        meshflow_engine::log::LogOptions::default(),
        &cli.tenant,
    )?;
    let list = ledger.erasures()?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|e| serde_json::json!({"offset": e.offset, "slots": e.slots, "note": e.note}))
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(v))?;
    } else if list.is_empty() {
        writeln!(out, "No erasures.")?;
    } else {
        for e in &list {
            let n = &e.note;
            writeln!(
                out,
                "offset {:<8} {:<10} {:>5} slot(s)  runs {}  by {}  at {}  {}",
                e.offset,
                n["op"].as_str().unwrap_or("erase"),
                e.slots,
                n["runs"]
                    .as_array()
                    .map(|r| r
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default(),
                n["by"].as_str().unwrap_or(""),
                n["at"].as_str().unwrap_or(""),
                n["reason"].as_str().unwrap_or("")
            )?;
            for a in n["archives"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "  archive not reached: {}",
                    a["uri"].as_str().unwrap_or("?")
                )?;
            }
        }
    }
    Ok(0)
}

/// `meshflow import meshflow-sqlite PATH`: takes the writer lock (a running `serve` holds it:
/// stop it first). Exit 1 when some run's legacy chain was already broken (imported anyway).
pub fn import_sqlite(cli: &Cli, path: &std::path::Path, wait: crate::args::WaitLock) -> Result<u8> {
    if !path.is_file() {
        return Err(crate::args::UsageError(format!("{}: no such file", path.display())).into());
    }
    let ledger = crate::commands::ledger::open_write_waiting(cli, wait.secs)?;
    let report = ledger.import_meshflow_sqlite(path)?;
    let broken = report.broken().len();
    let mut out = std::io::stdout().lock();
    if cli.json {
        let runs: Vec<serde_json::Value> = report
            .runs
            .iter()
            .map(|r| {
                serde_json::json!({"tenant": r.tenant, "run_id": r.run_id, "steps": r.steps,
                                   "legacy_chain": r.legacy_chain})
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"rows": report.rows, "runs": runs, "broken": broken})
        )?;
    } else {
        for r in &report.runs {
            writeln!(
                out,
                "{:<16} {:<36} {:>6} step(s)  legacy chain: {}",
                r.tenant, r.run_id, r.steps, r.legacy_chain
            )?;
        }
        writeln!(
            out,
            "imported {} row(s) in {} run(s); {broken} run(s) had a broken legacy chain",
            report.rows,
            report.runs.len()
        )?;
    }
    Ok(u8::from(broken > 0))
}
