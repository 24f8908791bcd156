//! The audit-chain test vectors of `docs/audit-chain.md` §5 (a Unicode run, an empty run, a
//! redacted step, a forked run) are built from fixed salts with the engine's own encoding and
//! must equal the committed envelopes in `tests/fixtures/audit_vectors/` byte for byte; each
//! must pass the engine's offline verifier. (`tools/test_verify_export.py` checks the same files
//! with the independent Python verifier.) Set `MESHFLOW_WRITE_VECTORS=1` to rewrite them after a
//! deliberate, versioned change of the contract.

use meshflow_engine::format::chain;
use meshflow_engine::ledger::export::{chain_hex, envelope_step_json, ENVELOPE_FORMAT};
use meshflow_engine::ledger::offline::verify_export;
use meshflow_engine::ledger::record::{FieldValue, StoredStep};
use meshflow_engine::ledger::step::{self, ForkOrigin, StepFields, KIND_STEP};
use meshflow_engine::ledger::Step;
use serde_json::{json, Value};

const DIR: &str = "tests/fixtures/audit_vectors";

struct Spec {
    node: &'static str,
    input: &'static str,
    output: &'static str,
    redact_input: bool,
}

/// Builds the steps of a run with salts `[k; 32]` for slot k of step i (k = 4·i + slot + 1).
fn run(
    tenant: &str,
    run_id: &str,
    first_offset: u64,
    specs: &[Spec],
    fork: Option<ForkOrigin>,
) -> Vec<Step> {
    let mut prev = [0u8; 32];
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let i64_ = i as u64;
        let fields = StepFields {
            run_id: run_id.to_string(),
            step_id: format!("{run_id}-s{i}"),
            node_id: spec.node.to_string(),
            node_kind: "llm".to_string(),
            verdict: "commit".to_string(),
            blocked: false,
            uncertainty: 0.125,
            cost_usd: 0.0015 * (i64_ + 1) as f64,
            tokens_used: 100 * (i64_ + 1),
            carbon_gco2: 0.01,
            duration_ms: 42.5,
            timestamp: format!("2026-06-01T12:00:0{i}.000000+00:00"),
            fork_origin: if i == 0 { fork.clone() } else { None },
        };
        let payload = fields.encode().unwrap();
        let contents = [spec.input, spec.output, "", "{\"k\": [1, 2]}"];
        let mut descriptors = Vec::new();
        let mut slots: [FieldValue; 4] = std::array::from_fn(|_| FieldValue::Text(String::new()));
        let mut salts = [None; 4];
        for (k, content) in contents.iter().enumerate() {
            let salt = [(4 * i + k + 1) as u8; 32];
            let commitment = chain::slot_commitment(KIND_STEP, k as u16, &salt, content.as_bytes());
            descriptors.extend_from_slice(&(content.len() as u32).to_le_bytes());
            descriptors.extend_from_slice(&commitment);
            if k == 0 && spec.redact_input {
                slots[k] = FieldValue::Redacted {
                    len: content.len() as u64,
                    commitment,
                };
            } else {
                slots[k] = FieldValue::Text((*content).to_string());
                salts[k] = Some(salt);
            }
        }
        let body_digest = chain::body_digest(4, &descriptors, &payload);
        let offset = first_offset + 2 * i64_;
        let entry_hash = step::entry_hash(&prev, i64_, offset, tenant.as_bytes(), &body_digest);
        out.push(Step {
            stored: StoredStep {
                fields,
                tenant: tenant.to_string(),
                offset,
                slots,
                salts,
            },
            step_index: i64_,
            prev_hash: prev,
            entry_hash,
        });
        prev = entry_hash;
    }
    out
}

fn envelope(tenant: &str, run_id: &str, steps: &[Step], as_of: u64) -> Value {
    let head = steps.last().map_or([0; 32], |s| s.entry_hash);
    json!({
        "format": ENVELOPE_FORMAT,
        "tenant": tenant,
        "run_id": run_id,
        "step_count": steps.len(),
        "head_entry_hash": chain_hex(&head),
        "as_of_offset": as_of,
        "global_hash_at": "ab".repeat(32),
        "checkpoint": Value::Null,
        "steps": steps.iter().map(envelope_step_json).collect::<Vec<_>>(),
    })
}

fn vectors() -> Vec<(&'static str, Value)> {
    let unicode = run(
        "tenant-ü",
        "run-ünïcode-🚀",
        10,
        &[
            Spec {
                node: "plan",
                input: "naïve café — 東京 🚀",
                output: "ok ✓",
                redact_input: false,
            },
            Spec {
                node: "act",
                input: "second",
                output: "\u{0}nul and \"quotes\"",
                redact_input: false,
            },
        ],
        None,
    );
    let redacted = run(
        "default",
        "run-redacted",
        20,
        &[
            Spec {
                node: "plan",
                input: "alice@example.com",
                output: "done",
                redact_input: true,
            },
            Spec {
                node: "report",
                input: "public",
                output: "report",
                redact_input: false,
            },
        ],
        None,
    );
    let forked = run(
        "default",
        "run-fork",
        40,
        &[Spec {
            node: "retry",
            input: "again",
            output: "better",
            redact_input: false,
        }],
        Some(ForkOrigin {
            parent_run_id: "run-redacted".to_string(),
            parent_step_index: 0,
            parent_entry_hash: redacted[0].entry_hash,
            parent_offset: 20,
        }),
    );
    vec![
        (
            "unicode_run.json",
            envelope("tenant-ü", "run-ünïcode-🚀", &unicode, 30),
        ),
        ("empty_run.json", envelope("default", "run-empty", &[], 30)),
        (
            "redacted_step.json",
            envelope("default", "run-redacted", &redacted, 30),
        ),
        (
            "forked_run.json",
            envelope("default", "run-fork", &forked, 50),
        ),
    ]
}

#[test]
fn committed_vectors_match_the_engine_and_verify_offline() {
    // Proves the documented vectors are what the engine computes and that they verify.
    let write = std::env::var_os("MESHFLOW_WRITE_VECTORS").is_some();
    for (name, value) in vectors() {
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let path = std::path::Path::new(DIR).join(name);
        if write {
            std::fs::create_dir_all(DIR).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap();
        assert_eq!(committed, text, "{name} differs from the engine's encoding");
        let reports = verify_export(&value).unwrap();
        assert!(reports[0].valid(), "{name}: {:?}", reports[0].errors);
    }
}

#[test]
fn the_redacted_vector_still_verifies_and_a_forged_redaction_does_not() {
    // Proves a redacted field keeps its commitment in the chain: changing it breaks the step.
    let (_, mut value) = vectors().remove(2);
    let reports = verify_export(&value).unwrap();
    assert_eq!(reports[0].steps_redacted, 1);
    value["steps"][0]["input_task"]["commitment"] = Value::String("00".repeat(32));
    let reports = verify_export(&value).unwrap();
    assert!(!reports[0].valid());
    assert!(reports[0].errors[0].starts_with("step 0 (run-redacted-s0): entry_hash mismatch"));
}
