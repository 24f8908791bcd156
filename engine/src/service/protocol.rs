//! Framing and messages of the writer-service protocol (`docs/protocol.md`): a message is a
//! little-endian `u32` length and that many bytes of one JSON object. Pure: bytes in, values out.

use serde_json::{json, Value};

use crate::ledger::export::hex;
use crate::ledger::{LedgerError, StepReceipt};

/// Protocol version carried in every request (`"v"`).
pub const VERSION: u64 = 1;
/// The default largest message, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// The length prefix and body of `value`.
pub fn encode(value: &Value) -> Vec<u8> {
    let body = value.to_string();
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body.as_bytes());
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

/// The error response for a ledger error.
pub fn ledger_error(e: &LedgerError) -> Value {
    let kind = match e {
        LedgerError::Invalid { .. } => "invalid_input",
        LedgerError::NotFound { .. } => "not_found",
        LedgerError::Conflict { .. } => "conflict",
        LedgerError::Log(inner) => inner.kind_name(),
        _ => "error",
    };
    error(kind, &e.to_string())
}

/// A receipt as the protocol carries it.
pub fn receipt_json(r: &StepReceipt) -> Value {
    json!({
        "run_id": r.run_id,
        "step_id": r.step_id,
        "step_index": r.step_index,
        "offset": r.offset,
        "entry_hash": hex(&r.entry_hash),
        "timestamp": r.timestamp,
    })
}

/// An `append` request.
pub fn append_request(tenant: &str, lines: &[String], sync: bool) -> Value {
    json!({
        "v": VERSION,
        "op": "append",
        "tenant": tenant,
        "durability": if sync { "sync" } else { "buffered" },
        "lines": lines,
    })
}

/// A `ping` request.
pub fn ping_request() -> Value {
    json!({"v": VERSION, "op": "ping"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length_little_endian() {
        let bytes = encode(&json!({"op": "ping"}));
        let prefix: [u8; 4] = bytes[..4].try_into().unwrap();
        assert_eq!(body_len(prefix), bytes.len() - 4);
        let back: Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(back["op"], "ping");
    }
}
