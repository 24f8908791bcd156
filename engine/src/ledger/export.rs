//! JSON and CSV forms of ledger data: steps as agents and operators read them, run summaries,
//! diffs, chain reports, the export envelope of `docs/audit-chain.md` §6 and the reference's
//! CSV. Envelopes and CSV are streamed to a writer, step by step.

use std::io::Write;

use serde_json::{json, Map, Value};

use super::query::{ChainReport, RunDiff, RunSummary, Step};
use super::record::FieldValue;
use super::{Ledger, LedgerError};
use crate::error::Error;

/// `format` of a run export envelope.
pub const ENVELOPE_FORMAT: &str = "meshflow-run-export/1";

/// The reference's CSV header (15 columns).
pub const CSV_HEADER: [&str; 15] = [
    "run_id",
    "step_id",
    "node_id",
    "node_kind",
    "verdict",
    "blocked",
    "block_reason",
    "uncertainty",
    "cost_usd",
    "tokens_used",
    "carbon_gco2",
    "duration_ms",
    "timestamp",
    "entry_hash",
    "prev_hash",
];

const SLOT_NAMES: [&str; 4] = ["input_task", "output_content", "block_reason", "metadata"];

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The first 12 hex digits of a hash.
pub fn short_hex(hash: &[u8; 32]) -> String {
    hex(hash.get(..6).unwrap_or(&[]))
}

/// A chain hash as exported: `""` for the zero hash that precedes step 0.
pub fn chain_hex(hash: &[u8; 32]) -> String {
    if *hash == [0; 32] {
        String::new()
    } else {
        hex(hash)
    }
}

/// Parses 64 hex digits.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Rounds like Python's `round(x, places)` (correctly rounded through decimal text).
pub fn round_to(value: f64, places: usize) -> f64 {
    format!("{value:.places$}").parse().unwrap_or(value)
}

/// A float as Python's `str()` writes it (`0.0`, `0.01`, `1e-07`, `1234.5`).
pub fn python_float(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_string();
    }
    // Shortest round-trip digits and decimal exponent, from Rust's `{:e}`.
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-5..16).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let body = if point <= 0 {
        format!(
            "0.{}{digits}",
            "0".repeat(usize::try_from(-point).unwrap_or(0))
        )
    } else if point >= n {
        format!(
            "{digits}{}.0",
            "0".repeat(usize::try_from(point - n).unwrap_or(0))
        )
    } else {
        let (int, frac) = digits.split_at(usize::try_from(point).unwrap_or(0));
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

fn float(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// A step as `get_run`, `replay --json` and the HTTP API show it: the reference's keys, with
/// erased fields as `[REDACTED]` (metadata as `{}`) and listed under `redacted`.
pub fn step_json(step: &Step) -> Value {
    let f = &step.stored.fields;
    let metadata = match step.stored.slots.get(3) {
        Some(FieldValue::Text(t)) => serde_json::from_str(t).unwrap_or_else(|_| json!({})),
        _ => json!({}),
    };
    let mut m = Map::new();
    m.insert("step_index".into(), json!(step.step_index));
    m.insert("offset".into(), json!(step.stored.offset));
    m.insert("run_id".into(), json!(f.run_id));
    m.insert("step_id".into(), json!(f.step_id));
    m.insert("node_id".into(), json!(f.node_id));
    m.insert("node_kind".into(), json!(f.node_kind));
    m.insert("input_task".into(), json!(step.text(0)));
    m.insert("output_content".into(), json!(step.text(1)));
    m.insert("verdict".into(), json!(f.verdict));
    m.insert("blocked".into(), json!(f.blocked));
    m.insert("block_reason".into(), json!(step.text(2)));
    m.insert("uncertainty".into(), float(f.uncertainty));
    m.insert("cost_usd".into(), float(f.cost_usd));
    m.insert("tokens_used".into(), json!(f.tokens_used));
    m.insert("carbon_gco2".into(), float(f.carbon_gco2));
    m.insert("duration_ms".into(), float(f.duration_ms));
    m.insert("timestamp".into(), json!(f.timestamp));
    m.insert("prev_hash".into(), json!(chain_hex(&step.prev_hash)));
    m.insert("entry_hash".into(), json!(hex(&step.entry_hash)));
    m.insert("tenant_id".into(), json!(step.stored.tenant));
    m.insert("metadata".into(), metadata);
    m.insert("redacted".into(), json!(step.redacted()));
    if let Some(origin) = &f.fork_origin {
        m.insert("fork_origin".into(), fork_origin_json(origin));
    }
    Value::Object(m)
}

fn fork_origin_json(origin: &super::step::ForkOrigin) -> Value {
    json!({
        "parent_run_id": origin.parent_run_id,
        "parent_step_index": origin.parent_step_index,
        "parent_entry_hash": hex(&origin.parent_entry_hash),
        "parent_offset": origin.parent_offset,
    })
}

/// A step as an export envelope holds it (`docs/audit-chain.md` §6): every field needed to
/// recompute its hashes, erased fields as `{"redacted": true, "length", "commitment"}`,
/// metadata as its exact committed text (`metadata_json`).
pub fn envelope_step_json(step: &Step) -> Value {
    let f = &step.stored.fields;
    let mut m = Map::new();
    m.insert("step_index".into(), json!(step.step_index));
    m.insert("offset".into(), json!(step.stored.offset));
    m.insert("run_id".into(), json!(f.run_id));
    m.insert("step_id".into(), json!(f.step_id));
    m.insert("node_id".into(), json!(f.node_id));
    m.insert("node_kind".into(), json!(f.node_kind));
    m.insert("verdict".into(), json!(f.verdict));
    m.insert("blocked".into(), json!(f.blocked));
    m.insert("uncertainty".into(), float(f.uncertainty));
    m.insert("cost_usd".into(), float(f.cost_usd));
    m.insert("tokens_used".into(), json!(f.tokens_used));
    m.insert("carbon_gco2".into(), float(f.carbon_gco2));
    m.insert("duration_ms".into(), float(f.duration_ms));
    m.insert("timestamp".into(), json!(f.timestamp));
    m.insert("tenant_id".into(), json!(step.stored.tenant));
    m.insert(
        "fork_origin".into(),
        f.fork_origin.as_ref().map_or(Value::Null, fork_origin_json),
    );
    let mut salt_map = Map::new();
    for (i, (value, name)) in step.stored.slots.iter().zip(SLOT_NAMES).enumerate() {
        let key = if name == "metadata" {
            "metadata_json"
        } else {
            name
        };
        let shown = match value {
            FieldValue::Text(t) => {
                if let Some(Some(salt)) = step.stored.salts.get(i) {
                    salt_map.insert(key.into(), json!(hex(salt)));
                }
                json!(t)
            }
            FieldValue::Redacted { len, commitment } => json!({
                "redacted": true,
                "length": len,
                "commitment": hex(commitment),
            }),
        };
        m.insert(key.into(), shown);
    }
    m.insert("salts".into(), Value::Object(salt_map));
    m.insert("prev_hash".into(), json!(chain_hex(&step.prev_hash)));
    m.insert("entry_hash".into(), json!(hex(&step.entry_hash)));
    Value::Object(m)
}

/// The run summary as JSON (the reference's keys).
pub fn summary_json(s: &RunSummary) -> Value {
    json!({
        "run_id": s.run_id,
        "steps": s.steps,
        "nodes": s.nodes,
        "total_cost_usd": float(s.total_cost_usd),
        "total_tokens": s.total_tokens,
        "total_carbon_gco2": float(s.total_carbon_gco2),
        "blocked_steps": s.blocked_steps,
        "verdicts": s.verdicts,
        "timestamps": {"start": s.start, "end": s.end},
    })
}

/// The diff as JSON (the reference's `RunDiff` keys).
pub fn diff_json(d: &RunDiff) -> Value {
    let changed: Vec<Value> = d
        .changed
        .iter()
        .map(|c| {
            json!({
                "node_id": c.node_id,
                "verdict_a": c.verdict_a,
                "verdict_b": c.verdict_b,
                "output_a": c.output_a,
                "output_b": c.output_b,
                "cost_delta_usd": float(c.cost_delta_usd),
            })
        })
        .collect();
    json!({
        "run_id_a": d.run_id_a,
        "run_id_b": d.run_id_b,
        "only_in_a": d.only_in_a,
        "only_in_b": d.only_in_b,
        "common": d.common,
        "changed": changed,
        "cost_delta_usd": float(d.cost_delta_usd),
        "token_delta": i64::try_from(d.token_delta).unwrap_or(i64::MAX),
    })
}

/// The chain report as JSON (the reference's keys plus `steps_redacted` and structured errors
/// under `failures`).
pub fn report_json(r: &ChainReport) -> Value {
    let failures: Vec<Value> = r
        .errors
        .iter()
        .map(|e| json!({"step_index": e.step_index, "step_id": e.step_id, "hash": e.hash}))
        .collect();
    json!({
        "run_id": r.run_id,
        "valid": r.valid,
        "steps_verified": r.steps_verified,
        "steps_redacted": r.steps_redacted,
        "errors": r.errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>(),
        "failures": failures,
    })
}

fn io(what: &str) -> impl Fn(std::io::Error) -> LedgerError + '_ {
    move |e| LedgerError::Log(Error::io(what.to_string(), e))
}

impl Ledger {
    /// Writes the run's export envelope to `out`, streaming its steps.
    pub fn export_run(&self, run_id: &str, out: &mut dyn Write) -> Result<(), LedgerError> {
        let snapshot = self.reader().snapshot()?;
        let (count, head) = {
            let view = self.refresh()?;
            let run = view
                .run(&self.tenant, run_id)
                .ok_or_else(|| LedgerError::NotFound {
                    what: format!("run '{run_id}'"),
                })?;
            // Steps are in offset order: those below the snapshot are a prefix.
            let below = run
                .steps
                .partition_point(|s| s.offset < snapshot.head.next_offset);
            let head = below
                .checked_sub(1)
                .and_then(|i| run.steps.get(i))
                .map_or([0; 32], |s| s.entry_hash);
            (below as u64, head)
        };
        let header = json!({
            "format": ENVELOPE_FORMAT,
            "tenant": self.tenant,
            "run_id": run_id,
            "step_count": count,
            "head_entry_hash": chain_hex(&head),
            "as_of_offset": snapshot.head.next_offset,
            "global_hash_at": chain_hex(&snapshot.head.head_hash),
            "checkpoint": super::anchor::latest_note(self.dir(), snapshot.head.next_offset).map_or(Value::Null, Value::String),
        });
        let text = serde_json::to_string_pretty(&header)
            .map_err(|e| LedgerError::Log(Error::io("encoding an export", e.into())))?;
        // Splice the streamed steps in before the closing brace.
        let open = text.trim_end().trim_end_matches('}').trim_end();
        let w = io("writing an export");
        write!(out, "{open},\n  \"steps\": [").map_err(&w)?;
        let mut first = true;
        // Exactly the steps the header counted (a step appended meanwhile is not exported).
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        self.for_each_step_in(run_id, 0, count, |step| {
            let value = envelope_step_json(&step);
            out.write_all(if first { b"\n    " } else { b",\n    " })
                .map_err(&w)?;
            serde_json::to_writer(&mut *out, &value)
                .map_err(|e| LedgerError::Log(Error::io("writing an export", e.into())))?;
            first = false;
            Ok(())
        })?;
        out.write_all(if first { b"]\n}\n" } else { b"\n  ]\n}\n" })
            .map_err(&w)?;
        Ok(())
    }

    /// Writes the export envelopes of all the tenant's runs as a JSON array.
    pub fn export_all(&self, out: &mut dyn Write) -> Result<(), LedgerError> {
        let w = io("writing an export");
        out.write_all(b"[\n").map_err(&w)?;
        for (i, run) in self.list_runs()?.iter().enumerate() {
            if i > 0 {
                out.write_all(b",\n").map_err(&w)?;
            }
            self.export_run(run, out)?;
        }
        out.write_all(b"]\n").map_err(&w)?;
        Ok(())
    }

    /// Writes the reference's CSV (15 columns, CRLF) for one run, or all the tenant's runs
    /// (newest first) when `run_id` is `None`. CSV is for spreadsheets: it cannot be verified.
    pub fn export_csv(&self, run_id: Option<&str>, out: &mut dyn Write) -> Result<(), LedgerError> {
        let runs = match run_id {
            Some(r) => {
                // Fail before writing the header when the run does not exist.
                self.run_summary_exists(r)?;
                vec![r.to_string()]
            }
            None => self.list_runs()?,
        };
        let mut csv = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        let fail = |e: csv::Error| LedgerError::Log(Error::io("writing CSV", e.into()));
        csv.write_record(CSV_HEADER).map_err(fail)?;
        for run in runs {
            self.for_each_step(&run, 0, |step| {
                let f = &step.stored.fields;
                csv.write_record([
                    f.run_id.as_str(),
                    &f.step_id,
                    &f.node_id,
                    &f.node_kind,
                    &f.verdict,
                    if f.blocked { "1" } else { "0" },
                    step.text(2),
                    &python_float(f.uncertainty),
                    &python_float(f.cost_usd),
                    &f.tokens_used.to_string(),
                    &python_float(f.carbon_gco2),
                    &python_float(f.duration_ms),
                    &f.timestamp,
                    &hex(&step.entry_hash),
                    &chain_hex(&step.prev_hash),
                ])
                .map_err(fail)
            })?;
        }
        csv.flush().map_err(io("writing CSV"))?;
        Ok(())
    }

    fn run_summary_exists(&self, run_id: &str) -> Result<(), LedgerError> {
        let view = self.refresh()?;
        view.run(&self.tenant, run_id)
            .map(|_| ())
            .ok_or_else(|| LedgerError::NotFound {
                what: format!("run '{run_id}'"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_matches_python_str() {
        // Values and their str() as printed by CPython 3.
        let cases = [
            (0.0, "0.0"),
            (0.01, "0.01"),
            (1e-07, "1e-07"),
            (0.0001, "0.0001"),
            (1234.5, "1234.5"),
            (120.0, "120.0"),
            (1e16, "1e+16"),
            (123_456_789_012_345.6, "123456789012345.6"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5, "-2.5"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float(value), expected, "{value:?}");
        }
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = [0xab; 32];
        assert_eq!(parse_hash(&hex(&h)), Some(h));
        assert_eq!(parse_hash("xy"), None);
        assert_eq!(chain_hex(&[0; 32]), "");
        assert_eq!(round_to(0.123_456_789, 6), 0.123_457);
    }
}
