//! The step event (version 1): the payload of a step record, and its per-run entry hash.
//!
//! `docs/audit-chain.md` is the contract; this module implements it. A step record is a log
//! record of kind [`KIND_STEP`] whose payload is the canonical encoding below and whose four
//! slots hold `input_task`, `output_content`, `block_reason` and `metadata` (the exact bytes of
//! its JSON text). Its per-run entry hash is
//!
//! ```text
//! SHA-256("meshflow/v1/step\0" ‖ prev_entry_hash[32] ‖ u64 step_index ‖ u64 offset
//!         ‖ u8 tenant_len ‖ tenant ‖ body_digest[32])
//! ```
//!
//! where `body_digest` is the log's body digest of the record (descriptors with the slot
//! commitments, then this payload): so the entry hash covers every field, slots by their
//! commitments, and costs the sequencer two SHA-256 blocks.

use sha2::{Digest, Sha256};

/// Record kind of a step event (critical: a projection must not skip it).
pub const KIND_STEP: u16 = 0x8100;
/// Version byte at the start of a step payload.
pub const STEP_EVENT_VERSION: u8 = 1;
/// Domain prefix of a per-run entry hash.
pub const DOMAIN_STEP: &[u8] = b"meshflow/v1/step\0";
/// Longest run, step and node id, node kind and verdict, in bytes.
pub const ID_BYTES_MAX: usize = 128;
/// Longest timestamp text, in bytes.
pub const TIMESTAMP_BYTES_MAX: usize = 64;

/// Slot index of each slot field.
pub mod slot {
    /// `input_task`.
    pub const INPUT_TASK: u16 = 0;
    /// `output_content`.
    pub const OUTPUT_CONTENT: u16 = 1;
    /// `block_reason`.
    pub const BLOCK_REASON: u16 = 2;
    /// `metadata` (exact JSON text).
    pub const METADATA: u16 = 3;
    /// Slots in a step record.
    pub const COUNT: usize = 4;
}

/// Where a forked run's first step came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ForkOrigin {
    /// The parent run.
    pub parent_run_id: String,
    /// The parent step the fork continues from (`u64::MAX`: the fork copied nothing).
    pub parent_step_index: u64,
    /// The parent step's entry hash (zeros when nothing was copied).
    pub parent_entry_hash: [u8; 32],
    /// The log offset the fork was taken at.
    pub parent_offset: u64,
}

/// The committed, never-erasable fields of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFields {
    /// Run id.
    pub run_id: String,
    /// Step id.
    pub step_id: String,
    /// Node id.
    pub node_id: String,
    /// Node kind (`llm`, `tool`, …).
    pub node_kind: String,
    /// Verdict (`commit`, `reject`, `escalate`, …).
    pub verdict: String,
    /// Whether the step was blocked.
    pub blocked: bool,
    /// Uncertainty.
    pub uncertainty: f64,
    /// Cost in USD (≥ 0).
    pub cost_usd: f64,
    /// Tokens used.
    pub tokens_used: u64,
    /// Carbon in gCO2 (≥ 0).
    pub carbon_gco2: f64,
    /// Duration in ms (≥ 0).
    pub duration_ms: f64,
    /// ISO 8601 UTC timestamp text, as given.
    pub timestamp: String,
    /// Set on a forked run's first step.
    pub fork_origin: Option<ForkOrigin>,
}

/// Why a step payload is refused or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// A field breaks a rule (named, with why).
    Invalid(&'static str, &'static str),
    /// The payload bytes do not decode.
    Malformed(&'static str),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Invalid(field, why) => write!(f, "{field}: {why}"),
            StepError::Malformed(why) => write!(f, "malformed step payload: {why}"),
        }
    }
}

/// IEEE-754 bits of a float, with -0.0 written as 0.0.
fn float_bits(value: f64) -> u64 {
    if value == 0.0 {
        0
    } else {
        value.to_bits()
    }
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), StepError> {
    if text.is_empty() || text.len() > max {
        return Err(StepError::Invalid(field, "must be 1-128 bytes"));
    }
    // ASCII text (the usual case) is checked byte by byte; other text char by char (the C1
    // controls U+0080–U+009F are two bytes in UTF-8).
    let control = if text.is_ascii() {
        text.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        text.chars().any(char::is_control)
    };
    if control {
        return Err(StepError::Invalid(field, "contains a control character"));
    }
    Ok(())
}

fn check_number(field: &'static str, value: f64, non_negative: bool) -> Result<(), StepError> {
    if !value.is_finite() {
        return Err(StepError::Invalid(field, "must be a finite number"));
    }
    if non_negative && value < 0.0 {
        return Err(StepError::Invalid(field, "must not be negative"));
    }
    Ok(())
}

impl StepFields {
    /// Checks every rule of `docs/audit-chain.md` §2.
    pub fn validate(&self) -> Result<(), StepError> {
        check_text("run_id", &self.run_id, ID_BYTES_MAX)?;
        check_text("step_id", &self.step_id, ID_BYTES_MAX)?;
        check_text("node_id", &self.node_id, ID_BYTES_MAX)?;
        check_text("node_kind", &self.node_kind, ID_BYTES_MAX)?;
        check_text("verdict", &self.verdict, ID_BYTES_MAX)?;
        check_text("timestamp", &self.timestamp, TIMESTAMP_BYTES_MAX)?;
        check_number("uncertainty", self.uncertainty, false)?;
        check_number("cost_usd", self.cost_usd, true)?;
        check_number("carbon_gco2", self.carbon_gco2, true)?;
        check_number("duration_ms", self.duration_ms, true)?;
        if let Some(origin) = &self.fork_origin {
            check_text(
                "fork_origin.parent_run_id",
                &origin.parent_run_id,
                ID_BYTES_MAX,
            )?;
        }
        Ok(())
    }

    /// The canonical payload (validated first).
    pub fn encode(&self) -> Result<Vec<u8>, StepError> {
        self.validate()?;
        let mut out = Vec::with_capacity(160);
        out.push(STEP_EVENT_VERSION);
        for text in [
            &self.run_id,
            &self.step_id,
            &self.node_id,
            &self.node_kind,
            &self.verdict,
        ] {
            put_text(&mut out, text);
        }
        out.push(u8::from(self.blocked));
        out.extend_from_slice(&float_bits(self.uncertainty).to_le_bytes());
        out.extend_from_slice(&float_bits(self.cost_usd).to_le_bytes());
        out.extend_from_slice(&self.tokens_used.to_le_bytes());
        out.extend_from_slice(&float_bits(self.carbon_gco2).to_le_bytes());
        out.extend_from_slice(&float_bits(self.duration_ms).to_le_bytes());
        put_text(&mut out, &self.timestamp);
        match &self.fork_origin {
            None => out.push(0),
            Some(origin) => {
                out.push(1);
                put_text(&mut out, &origin.parent_run_id);
                out.extend_from_slice(&origin.parent_step_index.to_le_bytes());
                out.extend_from_slice(&origin.parent_entry_hash);
                out.extend_from_slice(&origin.parent_offset.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Decodes a canonical payload; the whole input must be consumed.
    pub fn decode(bytes: &[u8]) -> Result<StepFields, StepError> {
        let mut r = Cursor { bytes, pos: 0 };
        if r.u8()? != STEP_EVENT_VERSION {
            return Err(StepError::Malformed("unknown step event version"));
        }
        let run_id = r.text()?;
        let step_id = r.text()?;
        let node_id = r.text()?;
        let node_kind = r.text()?;
        let verdict = r.text()?;
        let blocked = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(StepError::Malformed("blocked is not 0 or 1")),
        };
        let uncertainty = f64::from_bits(r.u64()?);
        let cost_usd = f64::from_bits(r.u64()?);
        let tokens_used = r.u64()?;
        let carbon_gco2 = f64::from_bits(r.u64()?);
        let duration_ms = f64::from_bits(r.u64()?);
        let timestamp = r.text()?;
        let fork_origin = match r.u8()? {
            0 => None,
            1 => Some(ForkOrigin {
                parent_run_id: r.text()?,
                parent_step_index: r.u64()?,
                parent_entry_hash: r.hash()?,
                parent_offset: r.u64()?,
            }),
            _ => return Err(StepError::Malformed("fork origin flag is not 0 or 1")),
        };
        if r.pos != bytes.len() {
            return Err(StepError::Malformed("trailing bytes"));
        }
        let fields = StepFields {
            run_id,
            step_id,
            node_id,
            node_kind,
            verdict,
            blocked,
            uncertainty,
            cost_usd,
            tokens_used,
            carbon_gco2,
            duration_ms,
            timestamp,
            fork_origin,
        };
        fields
            .validate()
            .map_err(|_| StepError::Malformed("a field breaks the step rules"))?;
        Ok(fields)
    }
}

/// The run id and step id at the start of a step payload, without decoding the rest (the
/// admission step and the runs view need only these). `None` when the payload is malformed.
pub fn peek_ids(payload: &[u8]) -> Option<(&str, &str)> {
    if *payload.first()? != STEP_EVENT_VERSION {
        return None;
    }
    let text_at = |pos: usize| -> Option<(&str, usize)> {
        let len = usize::try_from(crate::format::u32_at(payload, pos)?).ok()?;
        let bytes = payload.get(pos + 4..pos + 4 + len)?;
        Some((std::str::from_utf8(bytes).ok()?, pos + 4 + len))
    };
    let (run_id, next) = text_at(1)?;
    let (step_id, _) = text_at(next)?;
    Some((run_id, step_id))
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], StepError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(StepError::Malformed("length overflow"))?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(StepError::Malformed("truncated"))?;
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, StepError> {
        Ok(*self
            .take(1)?
            .first()
            .ok_or(StepError::Malformed("truncated"))?)
    }
    fn u64(&mut self) -> Result<u64, StepError> {
        let b: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| StepError::Malformed("truncated"))?;
        Ok(u64::from_le_bytes(b))
    }
    fn hash(&mut self) -> Result<[u8; 32], StepError> {
        self.take(32)?
            .try_into()
            .map_err(|_| StepError::Malformed("truncated"))
    }
    fn text(&mut self) -> Result<String, StepError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| StepError::Malformed("truncated"))?;
        let len =
            usize::try_from(u32::from_le_bytes(b)).map_err(|_| StepError::Malformed("length"))?;
        if len > ID_BYTES_MAX {
            return Err(StepError::Malformed("text longer than 128 bytes"));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| StepError::Malformed("text is not UTF-8"))
    }
}

/// The per-run entry hash (see the module docs). `prev_entry_hash` is 32 zero bytes for a run's
/// first step (exported as `""`).
pub fn entry_hash(
    prev_entry_hash: &[u8; 32],
    step_index: u64,
    offset: u64,
    tenant: &[u8],
    body_digest: &[u8; 32],
) -> [u8; 32] {
    let tenant_len = u8::try_from(tenant.len()).unwrap_or(u8::MAX);
    let mut h = Sha256::new();
    h.update(DOMAIN_STEP);
    h.update(prev_entry_hash);
    h.update(step_index.to_le_bytes());
    h.update(offset.to_le_bytes());
    h.update([tenant_len]);
    h.update(tenant);
    h.update(body_digest);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{chain, frame, hex};

    pub(crate) fn vector_step() -> StepFields {
        StepFields {
            run_id: "run-ü".to_string(),
            step_id: "s-1".to_string(),
            node_id: "node".to_string(),
            node_kind: "llm".to_string(),
            verdict: "commit".to_string(),
            blocked: false,
            uncertainty: 0.25,
            cost_usd: 0.0021,
            tokens_used: 1234,
            carbon_gco2: -0.0,
            duration_ms: 120.5,
            timestamp: "2026-06-01T12:00:00.123456+00:00".to_string(),
            fork_origin: None,
        }
    }

    #[test]
    fn payload_round_trips_and_normalises_negative_zero() {
        // Proves encode/decode are inverse and -0.0 is stored as +0.0.
        let step = vector_step();
        let bytes = step.encode().unwrap();
        let back = StepFields::decode(&bytes).unwrap();
        assert_eq!(back.carbon_gco2.to_bits(), 0);
        assert_eq!(
            StepFields {
                carbon_gco2: 0.0,
                ..step.clone()
            },
            back
        );
        let mut forked = step;
        forked.fork_origin = Some(ForkOrigin {
            parent_run_id: "parent".to_string(),
            parent_step_index: 3,
            parent_entry_hash: [7u8; 32],
            parent_offset: 99,
        });
        let bytes = forked.encode().unwrap();
        assert_eq!(
            StepFields::decode(&bytes).unwrap().fork_origin,
            forked.fork_origin
        );
        assert!(StepFields::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn bad_fields_are_refused() {
        // Proves NaN, infinities, negative costs and control characters never encode.
        let cases = [
            StepFields {
                cost_usd: -1.0,
                ..vector_step()
            },
            StepFields {
                uncertainty: f64::NAN,
                ..vector_step()
            },
            StepFields {
                duration_ms: f64::INFINITY,
                ..vector_step()
            },
            StepFields {
                run_id: "bad\nid".to_string(),
                ..vector_step()
            },
            StepFields {
                step_id: String::new(),
                ..vector_step()
            },
            StepFields {
                node_id: "n".repeat(129),
                ..vector_step()
            },
        ];
        for case in cases {
            assert!(case.encode().is_err(), "{case:?}");
        }
    }

    #[test]
    fn entry_hash_matches_documented_vector() {
        // Proves the vector published in docs/audit-chain.md (computed there with Python).
        let payload = vector_step().encode().unwrap();
        let salts = [[1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]];
        let slots = [
            b"task".to_vec(),
            b"output".to_vec(),
            Vec::new(),
            b"{}".to_vec(),
        ];
        let prepared = frame::prepare(KIND_STEP, b"default", &payload, &slots, &salts).unwrap();
        let commitment = chain::slot_commitment(KIND_STEP, slot::INPUT_TASK, &salts[0], b"task");
        let h = entry_hash(&[0u8; 32], 0, 42, b"default", &prepared.body_digest);
        assert_eq!(hex(&payload), STEP_VECTOR_PAYLOAD_HEX);
        assert_eq!(hex(&commitment), STEP_VECTOR_INPUT_COMMITMENT);
        assert_eq!(hex(&prepared.body_digest), STEP_VECTOR_BODY_DIGEST);
        assert_eq!(hex(&h), STEP_VECTOR_ENTRY_HASH);
    }

    const STEP_VECTOR_PAYLOAD_HEX: &str = "010600000072756e2dc3bc03000000732d31040000006e6f6465030000006c6c6d06000000636f6d6d697400000000000000d03f158c4aea0434613fd20400000000000000000000000000000000000000205e4020000000323032362d30362d30315431323a30303a30302e3132333435362b30303a303000";
    const STEP_VECTOR_INPUT_COMMITMENT: &str =
        "56ef0df941f9390c579446ddbd6ffb36910e4ef44b1b635173f248aba28df5d5";
    const STEP_VECTOR_BODY_DIGEST: &str =
        "5efc01c6dc280e2266f0ae820c7cba72a9b9026043f3605b27e31c1e693e3bb4";
    const STEP_VECTOR_ENTRY_HASH: &str =
        "898623f79d0b61a93a902ad10d28c6f8a165589cf5c468629209fcde99799577";
}
