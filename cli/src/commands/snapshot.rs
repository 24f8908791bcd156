//! `meshflow snapshot export | verify | list` (SPEC §7, `docs/snapshot-format.md`).

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use meshflow_engine::governance::snapshots;
use meshflow_engine::snapshot::{self, At, ReadLimits, Scope, SnapshotExporter, SnapshotOptions};

use super::governance::usage;
use crate::args::{Cli, SnapshotExportArgs, SnapshotVerifyArgs};

/// `meshflow snapshot export --output F …`: builds the snapshot from a read-only view of the
/// log, writes it safely (temporary file, fsync, rename), then records its manifest digest in
/// the log (through a running `serve`, or taking the lock) unless `--no-record`. If recording
/// fails, the file is removed again and the error reported.
pub fn export(cli: &Cli, args: &SnapshotExportArgs) -> Result<u8> {
    if !args.force && args.output.exists() {
        return Err(meshflow_engine::ledger::LedgerError::Conflict {
            reason: format!(
                "{} already exists (--force replaces it)",
                args.output.display()
            ),
        }
        .into());
    }
    let at = match (args.at_offset, &args.at_time) {
        (Some(offset), _) => At::Offset(offset),
        (None, Some(text)) => At::TimeNs(crate::time::parse_time(text).ok_or_else(|| {
            usage(format!(
                "--at-time '{text}': not RFC 3339 UTC (2026-11-25T10:00:00Z) or Unix seconds"
            ))
        })?),
        (None, None) => At::Now,
    };
    let created_at = match &args.created_at {
        None => None,
        Some(text) => Some(
            crate::time::parse_time(text)
                .map(|ns| ns as f64 / 1e9)
                .ok_or_else(|| {
                    usage(format!(
                        "--created-at '{text}': not RFC 3339 UTC or Unix seconds"
                    ))
                })?,
        ),
    };
    let scope = if args.all_tenants {
        Scope::All
    } else {
        Scope::Tenant(cli.tenant.clone())
    };
    let ledger = super::ledger::open_read(cli)?;
    let options = SnapshotOptions {
        scope: scope.clone(),
        at,
        snapshot_id: args.snapshot_id.clone(),
        created_at,
        created_by: args.created_by.clone(),
        description: args.description.clone(),
    };
    let bundle = SnapshotExporter::new(&ledger).export(&options)?;
    bundle.write_file(&args.output, args.force)?;
    let manifest = &bundle.manifest;
    let manifest_sha256 = manifest.sha256_hex();
    if !args.no_record {
        let event = manifest.taken_event();
        if let Err(e) = super::governance::write_event(cli, &event, args.wait) {
            let _ = std::fs::remove_file(&args.output);
            return Err(e.context(format!(
                "recording snapshot {} in the log failed, so {} was removed (--no-record \
                 exports without recording)",
                manifest.snapshot_id,
                args.output.display()
            )));
        }
    }
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({
                "file": args.output.display().to_string(),
                "snapshot_id": manifest.snapshot_id,
                "sections": manifest.sections.len(),
                "records": bundle.total_records(),
                "log_offset": manifest.log_offset,
                "manifest_sha256": manifest_sha256,
                "recorded": !args.no_record,
                // This process's peak resident set (VmHWM), for `bench --phases Z`.
                "peak_rss_bytes": meshflow_engine::bench::snapshot::peak_rss(),
            })
        )?;
    } else {
        writeln!(out, "Compliance snapshot exported.")?;
        writeln!(out, "File: {}", args.output.display())?;
        writeln!(out, "ID: {}", manifest.snapshot_id)?;
        writeln!(out, "Sections: {}", manifest.sections.len())?;
        writeln!(out, "Records: {}", bundle.total_records())?;
        writeln!(
            out,
            "Log offset: {} (global hash {})",
            manifest.log_offset,
            if manifest.global_hash_at.is_empty() {
                "none: empty log"
            } else {
                &manifest.global_hash_at
            }
        )?;
        if args.no_record {
            writeln!(
                out,
                "Not recorded in the log: its manifest's free-text fields are unanchored."
            )?;
        }
    }
    Ok(0)
}

/// `meshflow snapshot verify F [--db DIR]`: exit 0 when every check passes, 1 naming each
/// failing section or field.
pub fn verify(cli: &Cli, args: &SnapshotVerifyArgs) -> Result<u8> {
    let file = std::fs::File::open(&args.file)
        .map_err(|e| meshflow_engine::Error::io(format!("opening {}", args.file.display()), e))?;
    let snapshot = match snapshot::read_zip(std::io::BufReader::new(file), ReadLimits::default()) {
        Ok(s) => s,
        Err(e) => {
            let mut out = std::io::stdout().lock();
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    json!({"valid": false, "problems": [e.to_string()]})
                )?;
            } else {
                writeln!(out, "INVALID: {e}")?;
            }
            return Ok(1);
        }
    };
    let ledger = match cli.db_given.then_some(&cli.db) {
        Some(db) => Some(meshflow_engine::ledger::Ledger::open_read_only(
            db,
            meshflow_engine::log::LogOptions::default(),
            &cli.tenant,
        )?),
        None => None,
    };
    let report = snapshot::verify(&snapshot, ledger.as_ref())?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({
                "valid": report.valid(), "snapshot_id": report.snapshot_id,
                "sections": report.sections, "records": report.records,
                "log_offset": report.log_offset,
                "checked_against_log": report.checked_against_log,
                "manifest_recorded": report.manifest_recorded,
                "problems": report.problems,
            })
        )?;
    } else {
        writeln!(
            out,
            "Snapshot {}: {} section(s), {} record(s), taken at log offset {}",
            report.snapshot_id, report.sections, report.records, report.log_offset
        )?;
        for p in &report.problems {
            writeln!(out, "  FAIL {p}")?;
        }
        if report.valid() {
            writeln!(out, "Every section matches its SHA-256 and record count.")?;
        }
        if report.checked_against_log && report.valid() {
            writeln!(
                out,
                "Every section equals the log's governance state at offset {}.",
                report.log_offset
            )?;
            match report.manifest_recorded {
                Some(true) => writeln!(
                    out,
                    "The manifest is the one recorded in the log at export (free-text fields \
                     included)."
                )?,
                _ => writeln!(
                    out,
                    "The log holds no record of this snapshot: its free-text fields \
                     (description, created_by) are not anchored."
                )?,
            }
        } else if !report.checked_against_log {
            writeln!(
                out,
                "Not checked against a log (--db): a consistent rewrite of sections and \
                 manifest together is undetectable without one."
            )?;
        }
        writeln!(out, "{}", if report.valid() { "VALID" } else { "INVALID" })?;
    }
    Ok(u8::from(!report.valid()))
}

/// `meshflow snapshot list`: the snapshots this tenant recorded in the log, oldest first.
pub fn list(cli: &Cli) -> Result<u8> {
    let ledger = super::ledger::open_read(cli)?;
    let rows: Vec<snapshots::Taken> = ledger.with_governance(|g| {
        g.of(&cli.tenant)
            .snapshots
            .list()
            .into_iter()
            .cloned()
            .collect()
    })?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let v: Vec<serde_json::Value> = rows.iter().map(snapshots::Taken::to_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(v))?;
    } else if rows.is_empty() {
        writeln!(out, "No snapshots recorded.")?;
    } else {
        for t in rows {
            writeln!(
                out,
                "{}  offset {:<8} by {:<24} manifest sha256 {}",
                t.snapshot_id, t.log_offset, t.created_by, t.manifest_sha256
            )?;
        }
    }
    Ok(0)
}
