//! Import of a reference MeshFlow SQLite ledger (SPEC §5.6, reference §3): every row of
//! `step_records`, in table order, grouped into runs by tenant and run id; each run's legacy-v1
//! chain checked (per run, as the reference verifies it, or chained across the whole table, as
//! its 1.15 batched mode wrote it); gzip+base64 outputs decoded; each run appended as one
//! atomic batch under its own tenant, with its legacy hashes kept in the step metadata
//! (`"_legacy": {"prev_hash", "entry_hash", "chain"}`). Runs whose legacy chain was already
//! broken are imported too, and reported. Importing again changes nothing: the step ids exist,
//! identical steps are retries. Negative costs, tokens, carbon or durations (the reference
//! accepted them) are imported as 0.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::legacy_v1::{entry_hash, LegacyFields};
use super::{Ledger, LedgerError, StepRequest};
use crate::log::Durability;

/// One imported run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedRun {
    /// Tenant.
    pub tenant: String,
    /// Run id.
    pub run_id: String,
    /// Steps.
    pub steps: u64,
    /// `per-run`, `batched`, or `broken: <why>`.
    pub legacy_chain: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// Every run, in order of first appearance.
    pub runs: Vec<ImportedRun>,
    /// Rows read.
    pub rows: u64,
}

impl ImportReport {
    /// The runs whose legacy chain did not verify.
    pub fn broken(&self) -> Vec<&ImportedRun> {
        self.runs
            .iter()
            .filter(|r| r.legacy_chain.starts_with("broken"))
            .collect()
    }
}

struct Row {
    run_id: String,
    step_id: String,
    node_id: String,
    node_kind: String,
    input_task: String,
    output_content: String,
    verdict: String,
    blocked: bool,
    block_reason: String,
    uncertainty: f64,
    cost_usd: f64,
    carbon_gco2: f64,
    duration_ms: f64,
    tokens_used: i64,
    timestamp: String,
    prev_hash: String,
    entry_hash: String,
    tenant_id: String,
    metadata: String,
}

fn invalid(reason: String) -> LedgerError {
    LedgerError::Invalid { reason }
}

/// base64 of gzip, as the reference stores outputs over 10,000 bytes; the stored text when it
/// does not decode (the reference reads it so too).
pub fn decompress(stored: &str) -> String {
    let Ok(gz) = base64::engine::general_purpose::STANDARD.decode(stored.trim()) else {
        return stored.to_string();
    };
    let mut text = String::new();
    match flate2::read::GzDecoder::new(gz.as_slice()).read_to_string(&mut text) {
        Ok(_) => text,
        Err(_) => stored.to_string(),
    }
}

fn recompute(r: &Row, prev: &str) -> String {
    entry_hash(&LegacyFields {
        run_id: &r.run_id,
        step_id: &r.step_id,
        node_id: &r.node_id,
        input_task: &r.input_task,
        output_content: &r.output_content,
        verdict: &r.verdict,
        blocked: r.blocked,
        timestamp: &r.timestamp,
        prev_hash: prev,
    })
}

/// Which layout a run's legacy chain follows, or why it is broken. `previous_in_table` is the
/// stored entry hash of the row before each of the run's rows in the whole table.
fn classify(rows: &[&Row], previous_in_table: &[String]) -> String {
    let per_run = rows.iter().enumerate().all(|(i, r)| {
        let prev = if i == 0 {
            ""
        } else {
            rows.get(i - 1).map_or("", |p| p.entry_hash.as_str())
        };
        r.prev_hash == prev && r.entry_hash == recompute(r, prev)
    });
    if per_run {
        return "per-run".to_string();
    }
    let batched = rows
        .iter()
        .zip(previous_in_table)
        .all(|(r, prev)| r.prev_hash == *prev && r.entry_hash == recompute(r, prev));
    if batched {
        return "batched".to_string();
    }
    let first_bad = rows
        .iter()
        .position(|r| r.entry_hash != recompute(r, &r.prev_hash))
        .map_or_else(
            || "its prev_hash links do not form a chain".to_string(),
            |i| format!("step {i}'s entry_hash does not match its content"),
        );
    format!("broken: {first_bad}")
}

impl Ledger {
    /// Imports the reference ledger at `path` (see the module docs). The file is opened
    /// read-only; a file that is not such a ledger is `Invalid` and nothing is written.
    pub fn import_meshflow_sqlite(&self, path: &Path) -> Result<ImportReport, LedgerError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            invalid(format!(
                "{}: not a readable SQLite file: {e}",
                path.display()
            ))
        })?;
        let sql = "SELECT run_id, step_id, node_id, node_kind, input_task, output_content, \
                   output_compressed, verdict, blocked, block_reason, uncertainty, cost_usd, \
                   carbon_gco2, duration_ms, tokens_used, timestamp, prev_hash, entry_hash, \
                   tenant_id, metadata FROM step_records ORDER BY id";
        let bad = |e: rusqlite::Error| {
            invalid(format!(
                "{}: not a MeshFlow ledger (table step_records): {e}",
                path.display()
            ))
        };
        let mut stmt = conn.prepare(sql).map_err(bad)?;
        let text = |row: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<String> {
            Ok(row.get::<_, Option<String>>(i)?.unwrap_or_default())
        };
        let real = |row: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<f64> {
            Ok(row.get::<_, Option<f64>>(i)?.unwrap_or(0.0))
        };
        let rows: Vec<Row> = stmt
            .query_map([], |row| {
                let compressed = row.get::<_, Option<i64>>(6)?.unwrap_or(0) != 0;
                let output = text(row, 5)?;
                Ok(Row {
                    run_id: text(row, 0)?,
                    step_id: text(row, 1)?,
                    node_id: text(row, 2)?,
                    node_kind: text(row, 3)?,
                    input_task: text(row, 4)?,
                    output_content: if compressed {
                        decompress(&output)
                    } else {
                        output
                    },
                    verdict: text(row, 7)?,
                    blocked: row.get::<_, Option<i64>>(8)?.unwrap_or(0) != 0,
                    block_reason: text(row, 9)?,
                    uncertainty: real(row, 10)?,
                    cost_usd: real(row, 11)?,
                    carbon_gco2: real(row, 12)?,
                    duration_ms: real(row, 13)?,
                    tokens_used: row.get::<_, Option<i64>>(14)?.unwrap_or(0),
                    timestamp: text(row, 15)?,
                    prev_hash: text(row, 16)?,
                    entry_hash: text(row, 17)?,
                    tenant_id: {
                        let t = text(row, 18)?;
                        if t.is_empty() {
                            "default".to_string()
                        } else {
                            t
                        }
                    },
                    metadata: text(row, 19)?,
                })
            })
            .map_err(bad)?
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        // Runs in order of first appearance, with each row's table predecessor.
        let mut order: Vec<(String, String)> = Vec::new();
        let mut runs: BTreeMap<(String, String), Vec<(usize, String)>> = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            let key = (r.tenant_id.clone(), r.run_id.clone());
            let prev = i
                .checked_sub(1)
                .and_then(|p| rows.get(p))
                .map_or(String::new(), |p| p.entry_hash.clone());
            runs.entry(key.clone())
                .or_insert_with(|| {
                    order.push(key.clone());
                    Vec::new()
                })
                .push((i, prev));
        }
        let mut report = ImportReport {
            rows: rows.len() as u64,
            ..ImportReport::default()
        };
        for key in order {
            let Some(members) = runs.get(&key) else {
                continue;
            };
            let run_rows: Vec<&Row> = members.iter().filter_map(|(i, _)| rows.get(*i)).collect();
            let previous: Vec<String> = members.iter().map(|(_, p)| p.clone()).collect();
            let chain = classify(&run_rows, &previous);
            let handle = self.with_tenant(&key.0)?;
            let mut requests = Vec::with_capacity(run_rows.len());
            for r in &run_rows {
                let mut metadata: Map<String, Value> = serde_json::from_str(&r.metadata)
                    .ok()
                    .and_then(|v: Value| v.as_object().cloned())
                    .unwrap_or_default();
                metadata.insert(
                    "_legacy".to_string(),
                    json!({"prev_hash": r.prev_hash, "entry_hash": r.entry_hash, "chain": chain}),
                );
                requests.push(StepRequest {
                    run_id: r.run_id.clone(),
                    step_id: Some(r.step_id.clone()),
                    node_id: r.node_id.clone(),
                    node_kind: r.node_kind.clone(),
                    input_task: r.input_task.clone(),
                    output_content: r.output_content.clone(),
                    verdict: r.verdict.clone(),
                    blocked: r.blocked,
                    block_reason: Some(r.block_reason.clone()),
                    uncertainty: r.uncertainty,
                    cost_usd: r.cost_usd.max(0.0),
                    tokens_used: u64::try_from(r.tokens_used).unwrap_or(0),
                    carbon_gco2: r.carbon_gco2.max(0.0),
                    duration_ms: r.duration_ms.max(0.0),
                    timestamp: Some(r.timestamp.clone()),
                    metadata_json: Some(Value::Object(metadata).to_string()),
                    ..StepRequest::default()
                });
            }
            handle
                .append_batch(requests, Durability::Sync)
                .map_err(|e| match e {
                    LedgerError::Invalid { reason } => invalid(format!(
                        "run '{}' (tenant '{}'): {reason}; nothing of it was imported",
                        key.1, key.0
                    )),
                    other => other,
                })?;
            report.runs.push(ImportedRun {
                tenant: key.0.clone(),
                run_id: key.1.clone(),
                steps: run_rows.len() as u64,
                legacy_chain: chain,
            });
        }
        Ok(report)
    }
}
