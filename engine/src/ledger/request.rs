//! A step as an agent sends it (one JSON object per line), parsed strictly: every missing
//! field, wrong type, non-finite or negative number and unknown key is a typed error naming the
//! field, found before anything is written.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::LedgerError;

/// A step as an agent sends it. Optional fields are filled in by the ledger: `step_id` (a
/// UUID), `timestamp` (now, ISO 8601 UTC), `block_reason` (empty), `metadata` (`{}`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepRequest {
    /// Run id (1–128 bytes, no control characters).
    pub run_id: String,
    /// Step id; the engine assigns a UUID when absent.
    pub step_id: Option<String>,
    /// Node id.
    pub node_id: String,
    /// Node kind.
    pub node_kind: String,
    /// Task given to the node (erasable).
    pub input_task: String,
    /// What the node produced (erasable).
    pub output_content: String,
    /// Verdict.
    pub verdict: String,
    /// Whether the step was blocked.
    pub blocked: bool,
    /// Why it was blocked (erasable; empty when absent).
    pub block_reason: Option<String>,
    /// Uncertainty (finite).
    pub uncertainty: f64,
    /// Cost in USD (finite, ≥ 0).
    pub cost_usd: f64,
    /// Tokens used.
    pub tokens_used: u64,
    /// Carbon in gCO2 (finite, ≥ 0).
    pub carbon_gco2: f64,
    /// Duration in ms (finite, ≥ 0).
    pub duration_ms: f64,
    /// ISO 8601 timestamp; the engine assigns one when absent.
    pub timestamp: Option<String>,
    /// The exact text of the metadata JSON object (erasable); `{}` when absent.
    pub metadata_json: Option<String>,
    /// When present, must name the handle's tenant.
    pub tenant_id: Option<String>,
    /// Expected entry hash of the run's head (`""` for an empty run): optimistic concurrency.
    pub prev_hash: Option<String>,
    /// Expected number of steps already in the run: optimistic concurrency.
    pub expected_step_index: Option<u64>,
}

/// Keys a step line may carry.
const KNOWN_KEYS: &[&str] = &[
    "run_id",
    "step_id",
    "node_id",
    "node_kind",
    "input_task",
    "output_content",
    "verdict",
    "blocked",
    "block_reason",
    "uncertainty",
    "cost_usd",
    "tokens_used",
    "carbon_gco2",
    "duration_ms",
    "timestamp",
    "metadata",
    "tenant_id",
    "prev_hash",
    "expected_step_index",
    "entry_hash",
];

fn invalid(reason: impl Into<String>) -> LedgerError {
    LedgerError::Invalid {
        reason: reason.into(),
    }
}

struct Fields {
    map: BTreeMap<String, Box<RawValue>>,
}

impl Fields {
    fn value(&self, key: &str) -> Result<Option<serde_json::Value>, LedgerError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(raw) => serde_json::from_str(raw.get())
                .map(Some)
                .map_err(|e| invalid(format!("{key}: {e}"))),
        }
    }

    fn required<T>(
        &self,
        key: &str,
        parse: impl Fn(&serde_json::Value) -> Result<T, String>,
    ) -> Result<T, LedgerError> {
        let value = self
            .value(key)?
            .ok_or_else(|| invalid(format!("missing field '{key}'")))?;
        parse(&value).map_err(|why| invalid(format!("{key}: {why}")))
    }

    fn optional<T>(
        &self,
        key: &str,
        parse: impl Fn(&serde_json::Value) -> Result<T, String>,
    ) -> Result<Option<T>, LedgerError> {
        match self.value(key)? {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => parse(&value)
                .map(Some)
                .map_err(|why| invalid(format!("{key}: {why}"))),
        }
    }
}

fn text(value: &serde_json::Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "must be a string".to_string())
}

fn number(value: &serde_json::Value) -> Result<f64, String> {
    let n = value
        .as_f64()
        .ok_or_else(|| "must be a number".to_string())?;
    if !n.is_finite() {
        return Err("must be a finite number".to_string());
    }
    Ok(n)
}

fn non_negative(value: &serde_json::Value) -> Result<f64, String> {
    let n = number(value)?;
    if n < 0.0 {
        return Err("must not be negative".to_string());
    }
    Ok(n)
}

fn count(value: &serde_json::Value) -> Result<u64, String> {
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    if value.as_i64().is_some_and(|n| n < 0) {
        return Err("must not be negative".to_string());
    }
    Err("must be a non-negative integer".to_string())
}

fn flag(value: &serde_json::Value) -> Result<bool, String> {
    match value {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        serde_json::Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        _ => Err("must be true or false".to_string()),
    }
}

impl StepRequest {
    /// Parses one JSON object. Unknown keys and an `entry_hash` (which only the engine
    /// computes) are refused.
    pub fn from_json(line: &str) -> Result<StepRequest, LedgerError> {
        Self::from_json_for_run(line, None)
    }

    /// [`StepRequest::from_json`] for a step posted to run `run` (the HTTP API's
    /// `/v1/runs/{run_id}/steps`): a missing `run_id` is `run`, a different one is refused.
    pub fn from_json_for_run(line: &str, run: Option<&str>) -> Result<StepRequest, LedgerError> {
        let mut map: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(line).map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        if let Some(run) = run {
            let given = map
                .get("run_id")
                .map(|raw| serde_json::from_str::<String>(raw.get()).ok());
            match given {
                None => {
                    let quoted =
                        serde_json::to_string(run).map_err(|e| invalid(format!("run_id: {e}")))?;
                    let raw = RawValue::from_string(quoted)
                        .map_err(|e| invalid(format!("run_id: {e}")))?;
                    map.insert("run_id".to_string(), raw);
                }
                Some(Some(id)) if id == run => {}
                Some(None) => return Err(invalid("run_id: must be a string")),
                Some(_) => {
                    return Err(invalid(format!(
                        "run_id differs from the run '{run}' it was posted to"
                    )))
                }
            }
        }
        if map.contains_key("entry_hash") {
            return Err(invalid(
                "entry_hash is computed by the engine and must not be sent",
            ));
        }
        if let Some(unknown) = map.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!("unknown field '{unknown}'")));
        }
        let fields = Fields { map };
        let metadata_json = match fields.map.get("metadata") {
            None => None,
            Some(raw) if raw.get() == "null" => None,
            Some(raw) => {
                let text = raw.get();
                if !text.trim_start().starts_with('{') {
                    return Err(invalid("metadata: must be a JSON object"));
                }
                Some(text.to_string())
            }
        };
        Ok(StepRequest {
            run_id: fields.required("run_id", text)?,
            step_id: fields.optional("step_id", text)?,
            node_id: fields.required("node_id", text)?,
            node_kind: fields.required("node_kind", text)?,
            input_task: fields.required("input_task", text)?,
            output_content: fields.required("output_content", text)?,
            verdict: fields.required("verdict", text)?,
            blocked: fields.required("blocked", flag)?,
            block_reason: fields.optional("block_reason", text)?,
            uncertainty: fields.required("uncertainty", number)?,
            cost_usd: fields.required("cost_usd", non_negative)?,
            tokens_used: fields.required("tokens_used", count)?,
            carbon_gco2: fields.required("carbon_gco2", non_negative)?,
            duration_ms: fields.required("duration_ms", non_negative)?,
            timestamp: fields.optional("timestamp", text)?,
            metadata_json,
            tenant_id: fields.optional("tenant_id", text)?,
            prev_hash: fields.optional("prev_hash", text)?,
            expected_step_index: fields.optional("expected_step_index", count)?,
        })
    }
}

impl StepRequest {
    /// The request as one JSON object text, the line format [`StepRequest::from_json`] reads
    /// (metadata is spliced in as its exact text).
    pub fn to_json_line(&self) -> String {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        let num = |x: f64| {
            serde_json::Number::from_f64(x)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        };
        put("run_id", self.run_id.clone().into());
        if let Some(id) = &self.step_id {
            put("step_id", id.clone().into());
        }
        put("node_id", self.node_id.clone().into());
        put("node_kind", self.node_kind.clone().into());
        put("input_task", self.input_task.clone().into());
        put("output_content", self.output_content.clone().into());
        put("verdict", self.verdict.clone().into());
        put("blocked", self.blocked.into());
        if let Some(r) = &self.block_reason {
            put("block_reason", r.clone().into());
        }
        put("uncertainty", num(self.uncertainty));
        put("cost_usd", num(self.cost_usd));
        put("tokens_used", self.tokens_used.into());
        put("carbon_gco2", num(self.carbon_gco2));
        put("duration_ms", num(self.duration_ms));
        if let Some(t) = &self.timestamp {
            put("timestamp", t.clone().into());
        }
        if let Some(t) = &self.tenant_id {
            put("tenant_id", t.clone().into());
        }
        if let Some(p) = &self.prev_hash {
            put("prev_hash", p.clone().into());
        }
        if let Some(e) = self.expected_step_index {
            put("expected_step_index", e.into());
        }
        let text = serde_json::Value::Object(m).to_string();
        match &self.metadata_json {
            // Splice the exact metadata text in before the closing brace.
            Some(meta) => match text.strip_suffix('}') {
                Some(open) => format!("{open},\"metadata\":{meta}}}"),
                None => text,
            },
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{"run_id":"r","node_id":"n","node_kind":"llm","input_task":"t",
        "output_content":"o","verdict":"commit","blocked":false,"uncertainty":0.1,
        "cost_usd":0.01,"tokens_used":10,"carbon_gco2":0.0,"duration_ms":5,
        "metadata":{ "b": 1,"a":[2] }}"#;

    #[test]
    fn a_request_round_trips_through_its_json_line() {
        let r = StepRequest::from_json(FULL).unwrap();
        assert_eq!(StepRequest::from_json(&r.to_json_line()).unwrap(), r);
    }

    #[test]
    fn parses_a_full_step_and_keeps_metadata_bytes_exactly() {
        let r = StepRequest::from_json(FULL).unwrap();
        assert_eq!(r.run_id, "r");
        assert_eq!(r.metadata_json.as_deref(), Some(r#"{ "b": 1,"a":[2] }"#));
        assert_eq!(r.step_id, None);
        assert!((r.duration_ms - 5.0).abs() < f64::EPSILON);
    }

    #[test]
    fn refuses_missing_negative_wrong_typed_unknown_and_entry_hash() {
        let cases = [
            (
                FULL.replace(r#""node_id":"n","#, ""),
                "missing field 'node_id'",
            ),
            (
                FULL.replace("0.01", "-0.01"),
                "cost_usd: must not be negative",
            ),
            (
                FULL.replace(r#""tokens_used":10"#, r#""tokens_used":-1"#),
                "tokens_used: must not be negative",
            ),
            (
                FULL.replace(r#""tokens_used":10"#, r#""tokens_used":1.5"#),
                "tokens_used: must be a non-negative integer",
            ),
            (
                FULL.replace(r#""verdict":"commit""#, r#""verdict":3"#),
                "verdict: must be a string",
            ),
            (
                FULL.replace(r#""blocked":false"#, r#""blocked":"no""#),
                "blocked: must be true or false",
            ),
            (
                FULL.replace(r#""run_id":"r""#, r#""run_id":"r","colour":1"#),
                "unknown field 'colour'",
            ),
            (
                FULL.replace(r#""run_id":"r""#, r#""run_id":"r","entry_hash":"ab""#),
                "entry_hash is computed",
            ),
            (
                FULL.replace(r#"{ "b": 1,"a":[2] }"#, "[1]"),
                "metadata: must be a JSON object",
            ),
            (FULL.replace("0.1,", "1e999,"), "uncertainty"),
            ("[1,2]".to_string(), "not a JSON object"),
        ];
        for (line, expected) in cases {
            let err = StepRequest::from_json(&line).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }
}
