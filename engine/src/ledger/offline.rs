//! Offline verification of an export envelope (`docs/audit-chain.md` §7): recompute every
//! commitment, body digest and entry hash from the envelope alone, with no access to the log.
//! Pure: bytes in, report out.

use serde_json::Value;

use crate::format::{chain, note};

use super::export::{chain_hex, hex, parse_hash, ENVELOPE_FORMAT};
use super::step::{entry_hash, ForkOrigin, StepFields, KIND_STEP};

/// What offline verification found for one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeReport {
    /// The envelope's run id (`?` when missing).
    pub run_id: String,
    /// The envelope's tenant (`?` when missing).
    pub tenant: String,
    /// Steps checked.
    pub steps_verified: u64,
    /// Steps with redacted fields.
    pub steps_redacted: u64,
    /// The head entry hash the verification arrived at (hex, `""` for an empty run).
    pub head: String,
    /// Failures, each naming the step.
    pub errors: Vec<String>,
}

impl EnvelopeReport {
    /// No failures.
    pub fn valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Verifies a parsed export: one envelope, or an array of envelopes. `Err` when the JSON is not
/// shaped like an export at all.
pub fn verify_export(value: &Value) -> Result<Vec<EnvelopeReport>, String> {
    match value {
        Value::Array(items) => items.iter().map(verify_envelope).collect(),
        Value::Object(_) => Ok(vec![verify_envelope(value)?]),
        _ => Err("an export is a JSON object or an array of them".to_string()),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("'{key}' is missing or not a string"))
}

fn uint(v: &Value, key: &str) -> Result<u64, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("'{key}' is missing or not a non-negative integer"))
}

fn float(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("'{key}' is missing or not a number"))
}

/// Parses JSON text as an export is read: like `serde_json::from_str`, except that an object
/// with a duplicate key is refused (parsers disagree on which copy wins, so such a document
/// is not an envelope, `docs/audit-chain.md` §7).
pub fn parse_strict(text: &str) -> Result<Value, String> {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

    struct Strict(Value);
    struct StrictVisitor;

    impl<'de> serde::Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            d.deserialize_any(StrictVisitor)
        }
    }

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Strict;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
            Ok(Strict(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
            Ok(Strict(
                serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
            ))
        }
        fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
            Ok(Strict(Value::String(v.to_string())))
        }
        fn visit_string<E>(self, v: String) -> Result<Strict, E> {
            Ok(Strict(Value::String(v)))
        }
        fn visit_unit<E>(self) -> Result<Strict, E> {
            Ok(Strict(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            let mut out = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(Strict(Value::Array(out)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let Strict(value) = map.next_value()?;
                if out.insert(key.clone(), value).is_some() {
                    return Err(serde::de::Error::custom(format!("duplicate key '{key}'")));
                }
            }
            Ok(Strict(Value::Object(out)))
        }
    }

    serde_json::from_str::<Strict>(text)
        .map(|Strict(v)| v)
        .map_err(|e| e.to_string())
}

/// 64 lower-case hex digits (the only spelling of a hash in an export).
fn lower_hash(text: &str) -> Option<[u8; 32]> {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then(|| parse_hash(text))?
}

/// Verifies one envelope.
pub fn verify_envelope(env: &Value) -> Result<EnvelopeReport, String> {
    if env.get("format").and_then(Value::as_str) != Some(ENVELOPE_FORMAT) {
        return Err(format!(
            "not a meshflow run export (format is not {ENVELOPE_FORMAT})"
        ));
    }
    let tenant = text(env, "tenant")?;
    crate::log::check_tenant(tenant).map_err(|e| format!("tenant: {e}"))?;
    text(env, "run_id")?;
    let steps = env
        .get("steps")
        .and_then(Value::as_array)
        .ok_or("'steps' is missing or not an array")?;
    let mut report = EnvelopeReport {
        run_id: text(env, "run_id")?.to_string(),
        tenant: tenant.to_string(),
        steps_verified: 0,
        steps_redacted: 0,
        head: String::new(),
        errors: Vec::new(),
    };
    let mut prev = [0u8; 32];
    let mut last_offset: Option<u64> = None;
    let as_of = env.get("as_of_offset").and_then(Value::as_u64);
    match (as_of, env.get("global_hash_at").and_then(Value::as_str)) {
        (Some(0), Some("")) => {}
        (Some(n), Some(h)) if n > 0 && lower_hash(h).is_some() => {}
        _ => report.errors.push(
            "as_of_offset and global_hash_at disagree (\"\" exactly when as_of_offset is 0)"
                .to_string(),
        ),
    }
    for (i, step) in steps.iter().enumerate() {
        let index = i as u64;
        let step_id = step
            .get("step_id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        match check_step(step, index, &prev, &report, &mut last_offset, as_of) {
            Ok((hash, redacted)) => {
                report.steps_redacted += u64::from(redacted);
                prev = hash;
            }
            Err(why) => {
                report.errors.push(format!("step {i} ({step_id}): {why}"));
                // Continue from the hash the step claims, so one bad step is reported once.
                prev = step
                    .get("entry_hash")
                    .and_then(Value::as_str)
                    .and_then(parse_hash)
                    .unwrap_or([0; 32]);
            }
        }
        report.steps_verified += 1;
    }
    report.head = chain_hex(&prev);
    match env.get("step_count").and_then(Value::as_u64) {
        Some(n) if n == steps.len() as u64 => {}
        other => report.errors.push(format!(
            "step_count is {}, but the envelope holds {} step(s)",
            other.map_or("missing".to_string(), |n| n.to_string()),
            steps.len()
        )),
    }
    match env.get("checkpoint") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => match note::parse_text(text) {
            Err(why) => report
                .errors
                .push(format!("the embedded checkpoint is not a note: {why}")),
            Ok(c) => {
                if as_of.is_none_or(|end| c.size > end) {
                    report.errors.push(format!(
                        "the embedded checkpoint covers {} records, more than as_of_offset",
                        c.size
                    ));
                } else if as_of == Some(c.size)
                    && env.get("global_hash_at").and_then(Value::as_str) != Some(&hex(&c.head))
                {
                    report.errors.push(
                        "the embedded checkpoint has the export's size but another global hash"
                            .to_string(),
                    );
                }
            }
        },
        Some(_) => report
            .errors
            .push("checkpoint is neither null nor a note".to_string()),
    }
    let claimed = env.get("head_entry_hash").and_then(Value::as_str);
    if claimed != Some(report.head.as_str()) {
        report.errors.push(format!(
            "head_entry_hash is {}, but the last step's entry hash is '{}'",
            claimed.map_or("missing".to_string(), |h| format!("'{h}'")),
            report.head
        ));
    }
    Ok(report)
}

const SLOTS: [&str; 4] = [
    "input_task",
    "output_content",
    "block_reason",
    "metadata_json",
];

fn check_step(
    step: &Value,
    index: u64,
    prev: &[u8; 32],
    report: &EnvelopeReport,
    last_offset: &mut Option<u64>,
    as_of: Option<u64>,
) -> Result<([u8; 32], bool), String> {
    if uint(step, "step_index")? != index {
        return Err(format!(
            "step_index is not {index} (steps removed or reordered)"
        ));
    }
    if text(step, "run_id")? != report.run_id {
        return Err("run_id differs from the envelope's".to_string());
    }
    let tenant = text(step, "tenant_id")?;
    if tenant != report.tenant {
        return Err("tenant_id differs from the envelope's".to_string());
    }
    if text(step, "prev_hash")? != chain_hex(prev) {
        return Err(
            "prev_hash mismatch (the previous step was removed, reordered or edited)".to_string(),
        );
    }
    let offset = uint(step, "offset")?;
    if last_offset.is_some_and(|last| offset <= last) {
        return Err("offset does not increase".to_string());
    }
    *last_offset = Some(offset);
    if as_of.is_none_or(|end| offset >= end) {
        return Err("offset is not below the envelope's as_of_offset".to_string());
    }
    let fork_origin = match step.get("fork_origin") {
        None | Some(Value::Null) => None,
        Some(_) if index > 0 => {
            return Err("fork_origin on a step other than step 0".to_string());
        }
        Some(o) => Some(ForkOrigin {
            parent_run_id: text(o, "parent_run_id")?.to_string(),
            parent_step_index: uint(o, "parent_step_index")?,
            parent_entry_hash: lower_hash(text(o, "parent_entry_hash")?)
                .ok_or("fork_origin.parent_entry_hash is not 64 hex digits")?,
            parent_offset: uint(o, "parent_offset")?,
        }),
    };
    let fields = StepFields {
        run_id: text(step, "run_id")?.to_string(),
        step_id: text(step, "step_id")?.to_string(),
        node_id: text(step, "node_id")?.to_string(),
        node_kind: text(step, "node_kind")?.to_string(),
        verdict: text(step, "verdict")?.to_string(),
        blocked: step
            .get("blocked")
            .and_then(Value::as_bool)
            .ok_or("'blocked' is missing or not a boolean")?,
        uncertainty: float(step, "uncertainty")?,
        cost_usd: float(step, "cost_usd")?,
        tokens_used: uint(step, "tokens_used")?,
        carbon_gco2: float(step, "carbon_gco2")?,
        duration_ms: float(step, "duration_ms")?,
        timestamp: text(step, "timestamp")?.to_string(),
        fork_origin,
    };
    let payload = fields.encode().map_err(|e| e.to_string())?;
    let salts = step.get("salts");
    let mut descriptors = Vec::with_capacity(36 * SLOTS.len());
    let mut redacted = false;
    for (k, name) in SLOTS.iter().enumerate() {
        let value = step.get(*name).ok_or(format!("'{name}' is missing"))?;
        let (len, commitment) = match value {
            Value::String(content) => {
                let salt = salts
                    .and_then(|s| s.get(*name))
                    .and_then(Value::as_str)
                    .and_then(lower_hash)
                    .ok_or(format!(
                        "salts.{name} is missing or not 64 lower-case hex digits"
                    ))?;
                let slot = u16::try_from(k).unwrap_or(u16::MAX);
                (
                    content.len() as u64,
                    chain::slot_commitment(KIND_STEP, slot, &salt, content.as_bytes()),
                )
            }
            Value::Object(_) if value.get("redacted") == Some(&Value::Bool(true)) => {
                redacted = true;
                (
                    uint(value, "length")?,
                    lower_hash(text(value, "commitment")?)
                        .ok_or(format!("{name}.commitment is not 64 lower-case hex digits"))?,
                )
            }
            _ => return Err(format!("'{name}' is neither a string nor a redaction")),
        };
        let len32 = u32::try_from(len).map_err(|_| format!("{name} is too long"))?;
        descriptors.extend_from_slice(&len32.to_le_bytes());
        descriptors.extend_from_slice(&commitment);
    }
    let body = chain::body_digest(4, &descriptors, &payload);
    let hash = entry_hash(prev, index, offset, tenant.as_bytes(), &body);
    let claimed = text(step, "entry_hash")?;
    if claimed != hex(&hash) {
        return Err(format!(
            "entry_hash mismatch — record was modified (expected={}... got={}...)",
            claimed.get(..12).unwrap_or(claimed),
            hex(hash.get(..6).unwrap_or(&[]))
        ));
    }
    Ok((hash, redacted))
}
