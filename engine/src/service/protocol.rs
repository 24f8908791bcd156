//! Framing and messages of the writer-service protocol (`docs/protocol.md`): a message is a
//! little-endian `u32` length and that many bytes of one JSON object. Pure: bytes in, values out.
//!
//! Requests are parsed in two steps: every field is first taken as raw JSON text (one scan, no
//! allocation), the version is checked, and only then are the fields interpreted, so a request
//! of another version gets `unsupported_version` whatever its other fields hold.

use std::borrow::Cow;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::format::{hash_from_hex, hex};
use crate::ledger::{LedgerError, StepReceipt, StepRequest};
use crate::log::Durability;

/// Protocol version carried in every request (`"v"`).
pub const VERSION: u64 = 1;
/// The default largest message, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// The length prefix and body of `value`, serialised once into the output buffer.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&[0; 4]);
    if serde_json::to_writer(&mut out, value).is_err() {
        // Only a map with non-string keys fails; none of the protocol's messages has one.
        out.truncate(4);
        let refusal = error("error", "the response could not be encoded");
        out.extend_from_slice(refusal.to_string().as_bytes());
    }
    let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    if let Some(prefix) = out.get_mut(..4) {
        prefix.copy_from_slice(&len.to_le_bytes());
    }
    out
}

/// The body length a 4-byte prefix announces.
pub fn body_len(prefix: [u8; 4]) -> usize {
    usize::try_from(u32::from_le_bytes(prefix)).unwrap_or(usize::MAX)
}

/// An error response.
pub fn error(kind: &str, message: &str) -> Value {
    json!({"ok": false, "error": {"kind": kind, "message": message}})
}

/// The protocol's error kind for a ledger error.
pub fn error_kind(e: &LedgerError) -> &'static str {
    match e {
        LedgerError::Invalid { .. } => "invalid_input",
        LedgerError::NotFound { .. } => "not_found",
        LedgerError::Conflict { .. } => "conflict",
        LedgerError::Log(inner) => inner.kind_name(),
        _ => "error",
    }
}

/// The error response for a ledger error.
pub fn ledger_error(e: &LedgerError) -> Value {
    error(error_kind(e), &e.to_string())
}

/// A refused request: the error kind and message of its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error kind (`invalid_input`, `unsupported_version`, …).
    pub kind: &'static str,
    /// What was wrong.
    pub message: String,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            kind: "invalid_input",
            message: message.into(),
        }
    }

    /// The error response.
    pub fn response(&self) -> Value {
        error(self.kind, &self.message)
    }
}

/// A request, checked.
#[derive(Debug)]
pub enum Request {
    /// `ping`: who serves which log.
    Ping,
    /// `sync`: make everything sequenced durable.
    Sync,
    /// `append`: one atomic batch of steps for `tenant`.
    Append {
        /// The tenant the steps belong to.
        tenant: String,
        /// When the response is sent.
        durability: Durability,
        /// The steps, parsed.
        steps: Vec<StepRequest>,
    },
    /// `fork`: fork a run (SPEC §5.3), durable on response.
    Fork {
        /// The tenant.
        tenant: String,
        /// The parent run.
        run_id: String,
        /// −1 / 0 / k, or `None` when `at_offset` is given.
        from_step: Option<i64>,
        /// Fork at this log offset instead.
        at_offset: Option<u64>,
        /// The fork's id (a new UUID when `None`).
        new_run_id: Option<String>,
        /// Recorded overrides.
        overrides: crate::ledger::fork::ForkOverrides,
    },
    /// `erase`: anonymize or delete a run (SPEC §5.4).
    Erase {
        /// The tenant.
        tenant: String,
        /// The run.
        run_id: String,
        /// `anonymize`, `delete-run` or `purge-tenant` (the request's tenant; no run).
        mode: String,
        /// Forks too (anonymize only).
        with_forks: bool,
        /// Who asks.
        by: String,
        /// Why.
        reason: String,
    },
    /// `event`: one governance event (`docs/governance-events.md`), durable on response.
    Event {
        /// The tenant it is for (tenant registry events go to `_system` whatever this is).
        tenant: String,
        /// The event.
        event: crate::governance::Event,
        /// Its erasable slots (a vault ciphertext), decoded from base64.
        slots: Vec<Vec<u8>>,
    },
}

/// A request's fields as raw JSON text, before anything but the version is interpreted.
/// Unknown fields are ignored; a repeated field is an error.
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow, default)]
    v: Option<&'a RawValue>,
    #[serde(borrow, default)]
    op: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tenant: Option<&'a RawValue>,
    #[serde(borrow, default)]
    durability: Option<&'a RawValue>,
    #[serde(borrow, default)]
    lines: Option<&'a RawValue>,
    #[serde(borrow, default)]
    steps: Option<&'a RawValue>,
    #[serde(borrow, default)]
    family: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    slots: Option<&'a RawValue>,
    #[serde(borrow, default)]
    fork: Option<&'a RawValue>,
    #[serde(borrow, default)]
    erase: Option<&'a RawValue>,
}

/// Interprets one field's raw text as `T`, naming the field when it is not one.
fn field<'a, T: Deserialize<'a>>(raw: &'a RawValue, name: &str, what: &str) -> Result<T, Refusal> {
    serde_json::from_str(raw.get()).map_err(|_| Refusal::invalid(format!("{name} must be {what}")))
}

/// Parses and checks one request body.
pub fn parse_request(body: &[u8]) -> Result<Request, Refusal> {
    // A derived reader would also take an array (fields by position): only an object is one.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Refusal::invalid("not a JSON object"));
    }
    let raw: RawRequest<'_> = serde_json::from_slice(body)
        .map_err(|e| Refusal::invalid(format!("not a JSON object: {e}")))?;
    let version = raw
        .v
        .and_then(|v| serde_json::from_str::<u64>(v.get()).ok());
    if version != Some(VERSION) {
        return Err(Refusal {
            kind: "unsupported_version",
            message: format!("this service speaks protocol version {VERSION}"),
        });
    }
    let Some(op) = raw.op else {
        return Err(Refusal::invalid("a request names its op"));
    };
    let op: Cow<'_, str> = field(op, "op", "a string")?;
    match op.as_ref() {
        "ping" => Ok(Request::Ping),
        "sync" => Ok(Request::Sync),
        "append" => parse_append(&raw),
        "event" => parse_event(&raw),
        "fork" => parse_fork(&raw),
        "erase" => parse_erase(&raw),
        other => Err(Refusal::invalid(format!("unknown op '{other}'"))),
    }
}

fn parse_append(raw: &RawRequest<'_>) -> Result<Request, Refusal> {
    let tenant = match raw.tenant {
        None => "default".to_string(),
        Some(t) => field::<String>(t, "tenant", "a string")?,
    };
    let durability = match raw.durability {
        None => Durability::Sync,
        Some(d) => match field::<Cow<'_, str>>(d, "durability", "a string")?.as_ref() {
            "sync" => Durability::Sync,
            "buffered" => Durability::Buffered,
            other => {
                return Err(Refusal::invalid(format!(
                    "durability '{other}' is not sync or buffered"
                )))
            }
        },
    };
    let step = |i: usize, text: &str| {
        StepRequest::from_json(text).map_err(|e| Refusal::invalid(format!("line {}: {e}", i + 1)))
    };
    let steps = match (raw.steps, raw.lines) {
        (Some(_), Some(_)) => {
            return Err(Refusal::invalid(
                "an append carries 'steps' or 'lines', not both",
            ))
        }
        (Some(steps), None) => {
            let objects: Vec<&RawValue> = field(steps, "steps", "an array of JSON objects")?;
            let mut out = Vec::with_capacity(objects.len());
            for (i, object) in objects.iter().enumerate() {
                out.push(step(i, object.get())?);
            }
            out
        }
        (None, Some(lines)) => {
            let lines: Vec<Cow<'_, str>> = field(lines, "lines", "an array of strings")?;
            let mut out = Vec::with_capacity(lines.len());
            for (i, line) in lines.iter().enumerate() {
                out.push(step(i, line)?);
            }
            out
        }
        (None, None) => {
            return Err(Refusal::invalid(
                "an append carries 'steps' (an array of step objects) or 'lines'",
            ))
        }
    };
    Ok(Request::Append {
        tenant,
        durability,
        steps,
    })
}

fn parse_event(raw: &RawRequest<'_>) -> Result<Request, Refusal> {
    let tenant = match raw.tenant {
        None => "default".to_string(),
        Some(t) => field::<String>(t, "tenant", "a string")?,
    };
    let family: Cow<'_, str> = field(
        raw.family
            .ok_or_else(|| Refusal::invalid("an event request names its family"))?,
        "family",
        "a string",
    )?;
    let family = crate::governance::Family::from_name(&family)
        .ok_or_else(|| Refusal::invalid(format!("unknown event family '{family}'")))?;
    let body: crate::governance::event::Body = field(
        raw.event
            .ok_or_else(|| Refusal::invalid("an event request carries 'event'"))?,
        "event",
        "a JSON object",
    )?;
    let event = crate::governance::Event { family, body };
    // The payload must decode as the log will read it.
    crate::governance::Event::decode(family, &event.encode()).map_err(Refusal::invalid)?;
    let slots = match raw.slots {
        None => Vec::new(),
        Some(raw) => {
            use base64::Engine;
            let texts: Vec<Cow<'_, str>> = field(raw, "slots", "an array of base64 strings")?;
            texts
                .iter()
                .map(|t| base64::engine::general_purpose::STANDARD.decode(t.as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|e| Refusal::invalid(format!("slots: not base64: {e}")))?
        }
    };
    Ok(Request::Event {
        tenant,
        event,
        slots,
    })
}

/// A fork request's fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkFields {
    run_id: String,
    #[serde(default)]
    from_step: Option<i64>,
    #[serde(default)]
    at_offset: Option<u64>,
    #[serde(default)]
    new_run_id: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    inject: std::collections::BTreeMap<String, String>,
}

fn parse_fork(raw: &RawRequest<'_>) -> Result<Request, Refusal> {
    let tenant = match raw.tenant {
        None => "default".to_string(),
        Some(t) => field::<String>(t, "tenant", "a string")?,
    };
    let f: ForkFields = serde_json::from_str(
        raw.fork
            .ok_or_else(|| Refusal::invalid("a fork request carries 'fork'"))?
            .get(),
    )
    .map_err(|e| Refusal::invalid(format!("fork: {e}")))?;
    if f.from_step.is_some() == f.at_offset.is_some() {
        return Err(Refusal::invalid(
            "a fork gives one of 'from_step' and 'at_offset'",
        ));
    }
    Ok(Request::Fork {
        tenant,
        run_id: f.run_id,
        from_step: f.from_step,
        at_offset: f.at_offset,
        new_run_id: f.new_run_id,
        overrides: crate::ledger::fork::ForkOverrides {
            label: f.label,
            model: f.model,
            prompt: f.prompt,
            inject: f.inject,
        },
    })
}

/// An erase request's fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseFields {
    run_id: String,
    mode: String,
    #[serde(default)]
    with_forks: bool,
    #[serde(default)]
    by: String,
    #[serde(default)]
    reason: String,
}

fn parse_erase(raw: &RawRequest<'_>) -> Result<Request, Refusal> {
    let tenant = match raw.tenant {
        None => "default".to_string(),
        Some(t) => field::<String>(t, "tenant", "a string")?,
    };
    let f: EraseFields = serde_json::from_str(
        raw.erase
            .ok_or_else(|| Refusal::invalid("an erase request carries 'erase'"))?
            .get(),
    )
    .map_err(|e| Refusal::invalid(format!("erase: {e}")))?;
    if !matches!(f.mode.as_str(), "anonymize" | "delete-run" | "purge-tenant") {
        return Err(Refusal::invalid(format!("erase mode '{}'", f.mode)));
    }
    Ok(Request::Erase {
        tenant,
        run_id: f.run_id,
        mode: f.mode,
        with_forks: f.with_forks,
        by: f.by,
        reason: f.reason,
    })
}

/// An `erase` request.
pub fn erase_request(
    tenant: &str,
    run_id: &str,
    mode: &str,
    with_forks: bool,
    by: &str,
    reason: &str,
) -> Value {
    json!({
        "v": VERSION, "op": "erase", "tenant": tenant,
        "erase": {"run_id": run_id, "mode": mode,
                  "with_forks": with_forks, "by": by, "reason": reason},
    })
}

/// A `fork` request.
pub fn fork_request(
    tenant: &str,
    run_id: &str,
    from_step: Option<i64>,
    at_offset: Option<u64>,
    new_run_id: Option<&str>,
    overrides: &crate::ledger::fork::ForkOverrides,
) -> Value {
    json!({
        "v": VERSION,
        "op": "fork",
        "tenant": tenant,
        "fork": {
            "run_id": run_id, "from_step": from_step, "at_offset": at_offset,
            "new_run_id": new_run_id, "label": overrides.label, "model": overrides.model,
            "prompt": overrides.prompt,
            "inject": overrides.inject,
        },
    })
}

/// An `event` request.
pub fn event_request(tenant: &str, event: &crate::governance::Event, slots: &[Vec<u8>]) -> Value {
    use base64::Engine;
    let slots: Vec<String> = slots
        .iter()
        .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
        .collect();
    json!({
        "v": VERSION,
        "op": "event",
        "tenant": tenant,
        "family": event.family.name(),
        "event": event.to_value(),
        "slots": slots,
    })
}

/// A receipt as the protocol carries it: the entry hash in lower-case hex.
pub struct WireReceipt<'a>(pub &'a StepReceipt);

impl Serialize for WireReceipt<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut out = s.serialize_struct("Receipt", 6)?;
        out.serialize_field("run_id", &r.run_id)?;
        out.serialize_field("step_id", &r.step_id)?;
        out.serialize_field("step_index", &r.step_index)?;
        out.serialize_field("offset", &r.offset)?;
        out.serialize_field("entry_hash", &hex(&r.entry_hash))?;
        out.serialize_field("timestamp", &r.timestamp)?;
        out.end()
    }
}

/// A receipt as the protocol carries it, as a JSON value.
pub fn receipt_json(r: &StepReceipt) -> Value {
    serde_json::to_value(WireReceipt(r)).unwrap_or(Value::Null)
}

/// The `ok` response to an append.
pub struct AppendResponse<'a>(pub &'a [StepReceipt]);

impl Serialize for AppendResponse<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("AppendResponse", 2)?;
        out.serialize_field("ok", &true)?;
        let receipts: Vec<WireReceipt<'_>> = self.0.iter().map(WireReceipt).collect();
        out.serialize_field("receipts", &receipts)?;
        out.end()
    }
}

/// A response to an append as the client reads it (other fields are ignored).
#[derive(Deserialize)]
pub struct AppendReply {
    /// Whether the batch was written.
    pub ok: bool,
    /// One receipt per step, in order, when `ok`.
    #[serde(default)]
    pub receipts: Vec<ReceiptFields>,
    /// Why not, when not `ok`.
    #[serde(default)]
    pub error: Option<ErrorFields>,
}

/// A receipt's fields as the protocol carries them.
#[derive(Deserialize)]
pub struct ReceiptFields {
    run_id: String,
    step_id: String,
    step_index: u64,
    offset: u64,
    entry_hash: String,
    timestamp: String,
}

impl ReceiptFields {
    /// The receipt; `None` when the entry hash is not 64 hex digits.
    pub fn into_receipt(self) -> Option<StepReceipt> {
        Some(StepReceipt {
            entry_hash: hash_from_hex(&self.entry_hash)?,
            run_id: self.run_id,
            step_id: self.step_id,
            step_index: self.step_index,
            offset: self.offset,
            timestamp: self.timestamp,
        })
    }
}

/// An error response's fields.
#[derive(Deserialize, Default)]
pub struct ErrorFields {
    /// The error kind.
    #[serde(default)]
    pub kind: String,
    /// The message.
    #[serde(default)]
    pub message: String,
}

/// The request the client sends for an append: `steps` carries each line's text verbatim as
/// a JSON value when every line is one (no second escaping), `lines` otherwise (so the service
/// reports the malformed line exactly as it reports any other).
pub struct AppendRequest<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The step lines.
    pub lines: &'a [String],
    /// Durable before the response.
    pub sync: bool,
}

impl Serialize for AppendRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: Option<Vec<&RawValue>> = self
            .lines
            .iter()
            .map(|l| serde_json::from_str::<&RawValue>(l).ok())
            .collect();
        let mut out = s.serialize_struct("AppendRequest", 5)?;
        out.serialize_field("v", &VERSION)?;
        out.serialize_field("op", "append")?;
        out.serialize_field("tenant", self.tenant)?;
        out.serialize_field("durability", if self.sync { "sync" } else { "buffered" })?;
        match raw {
            Some(steps) => out.serialize_field("steps", &steps)?,
            None => out.serialize_field("lines", self.lines)?,
        }
        out.end()
    }
}

/// A `ping` request.
pub fn ping_request() -> Value {
    json!({"v": VERSION, "op": "ping"})
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: &str = r#"{"run_id":"r","node_id":"n","node_kind":"llm","input_task":"i","output_content":"o","verdict":"ok","blocked":false,"uncertainty":0.1,"cost_usd":0.5,"tokens_used":3,"carbon_gco2":0.0,"duration_ms":1,"metadata":{"k":[1,2]}}"#;

    #[test]
    fn frames_carry_their_length_little_endian() {
        let bytes = encode(&json!({"op": "ping"}));
        let prefix: [u8; 4] = bytes[..4].try_into().unwrap();
        assert_eq!(body_len(prefix), bytes.len() - 4);
        let back: Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(back["op"], "ping");
    }

    #[test]
    fn steps_and_lines_carry_the_same_step() {
        // Proves the client's two encodings of an append parse to the same step on the service.
        let lines = vec![STEP.to_string()];
        let as_steps = encode(&AppendRequest {
            tenant: "t",
            lines: &lines,
            sync: true,
        });
        assert!(std::str::from_utf8(&as_steps[4..])
            .unwrap()
            .contains("\"steps\":[{"));
        let as_lines = encode(&json!({"v": 1, "op": "append", "tenant": "t", "lines": lines}));
        for bytes in [&as_steps, &as_lines] {
            match parse_request(&bytes[4..]).unwrap() {
                Request::Append {
                    tenant,
                    durability,
                    steps,
                } => {
                    assert_eq!(tenant, "t");
                    assert_eq!(durability, Durability::Sync);
                    assert_eq!(steps.len(), 1);
                    assert_eq!(steps[0].run_id, "r");
                    assert_eq!(steps[0].metadata_json.as_deref(), Some(r#"{"k":[1,2]}"#));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_line_that_is_not_json_travels_as_text_and_is_named() {
        // Proves a malformed line reaches the service intact and is refused with its number.
        let lines = vec![STEP.to_string(), "{not json".to_string()];
        let bytes = encode(&AppendRequest {
            tenant: "t",
            lines: &lines,
            sync: false,
        });
        assert!(std::str::from_utf8(&bytes[4..])
            .unwrap()
            .contains("\"lines\":["));
        let refusal = parse_request(&bytes[4..]).unwrap_err();
        assert_eq!(refusal.kind, "invalid_input");
        assert!(
            refusal.message.starts_with("line 2:"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn the_version_is_checked_before_any_other_field() {
        // Proves a future request gets unsupported_version even when its fields are foreign.
        let r = parse_request(br#"{"v":2,"op":7,"steps":"x"}"#).unwrap_err();
        assert_eq!(r.kind, "unsupported_version");
        let r = parse_request(br#"{"op":"ping"}"#).unwrap_err();
        assert_eq!(r.kind, "unsupported_version");
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        // Proves each malformed shape is invalid_input with a message naming what is wrong.
        for (body, needle) in [
            (&br#"[1]"#[..], "not a JSON object"),
            (br#"{"v":1}"#, "names its op"),
            (br#"{"v":1,"op":"nope"}"#, "unknown op 'nope'"),
            (br#"{"v":1,"op":"append"}"#, "carries 'steps'"),
            (
                br#"{"v":1,"op":"append","steps":[],"lines":[]}"#,
                "not both",
            ),
            (br#"{"v":1,"op":"append","steps":{}}"#, "steps must be"),
            (br#"{"v":1,"op":"append","lines":[1]}"#, "lines must be"),
            (
                br#"{"v":1,"op":"append","tenant":3,"lines":[]}"#,
                "tenant must be",
            ),
            (
                br#"{"v":1,"op":"append","durability":"maybe","lines":[]}"#,
                "durability 'maybe'",
            ),
            (br#"{"v":1,"v":1,"op":"ping"}"#, "duplicate field"),
        ] {
            let r = parse_request(body).unwrap_err();
            assert_eq!(r.kind, "invalid_input", "{needle}");
            assert!(r.message.contains(needle), "{} lacks {needle}", r.message);
        }
    }

    #[test]
    fn receipts_round_trip_through_the_wire_form() {
        // Proves the client rebuilds exactly the receipt the service sent.
        let receipt = StepReceipt {
            run_id: "r".into(),
            step_id: "s".into(),
            step_index: 4,
            offset: 99,
            entry_hash: [0xab; 32],
            timestamp: "2026-01-01T00:00:00+00:00".into(),
        };
        let bytes = encode(&AppendResponse(std::slice::from_ref(&receipt)));
        let reply: AppendReply = serde_json::from_slice(&bytes[4..]).unwrap();
        assert!(reply.ok);
        let back = reply
            .receipts
            .into_iter()
            .next()
            .unwrap()
            .into_receipt()
            .unwrap();
        assert_eq!(back, receipt);
    }
}
