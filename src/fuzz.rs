//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by `tests/fuzz_corpora.rs`,
//! which replays the committed corpora under `cargo test`. A harness must never panic, whatever
//! the bytes; it panics only when the engine breaks a promise (for example a frame that decodes
//! but whose accessors disagree with its length).

use std::sync::Arc;

use meshflow_engine::format::frame;
use meshflow_engine::format::head::Head;
use meshflow_engine::format::segment_header::{
    segment_file_name, SegmentHeader, SEGMENT_HEADER_BYTES,
};
use meshflow_engine::format::{erasure, index};
use meshflow_engine::log::{Durability, Log, LogOptions};
use meshflow_engine::storage::faulty::FaultyStorage;

use crate::{small_options, test_record};

/// Every pure decoder on arbitrary bytes: frames (and everything a frame view offers), HEAD,
/// segment headers, index files and erasure payloads.
pub fn frame_decode(data: &[u8]) {
    if let Ok(view) = frame::decode(data, 1 << 20) {
        assert!(view.frame_len() as usize <= data.len());
        assert_eq!(view.frame_len() % 8, 0);
        let _ = (
            view.offset(),
            view.timestamp_ns(),
            view.kind(),
            view.tenant(),
            view.payload(),
        );
        let _ = view.compute_hash();
        for i in 0..view.slot_count() {
            let range = view
                .slot_range(i)
                .expect("a decoded frame has every slot range");
            assert!(range.end <= view.frame_len() as usize);
            let _ = view.slot(i);
            let _ = view.slot_matches_commitment(i);
        }
    }
    let _ = frame::decode_unchecked(data).map(|v| (v.payload().len(), v.descriptors().len()));
    let _ = Head::decode_file(data);
    let _ = SegmentHeader::decode(data);
    let _ = index::decode_file(data);
    let _ = erasure::decode(data);
}

/// Recovery of a log whose last segment's frames were replaced by arbitrary bytes: opening must
/// return a log or a typed error, and a log that opens must verify or fail with a typed error.
pub fn segment_recovery(data: &[u8]) {
    let storage = FaultyStorage::new();
    let options: LogOptions = small_options();
    {
        let Ok((log, _)) = Log::open_with_storage(Arc::new(storage.clone()), options) else {
            return;
        };
        for n in 0..3 {
            if log.append(test_record(n), Durability::Sync).is_err() {
                return;
            }
        }
        let _ = log.close();
    }
    let name = segment_file_name(0);
    let Some(original) = storage.file_bytes(&name) else {
        return;
    };
    // The first byte chooses where the fuzz bytes land: after the header, or over the tail.
    let (choice, rest) = data.split_first().unwrap_or((&0, &[]));
    let at = if choice % 2 == 0 {
        SEGMENT_HEADER_BYTES
    } else {
        original.len().saturating_sub(64)
    };
    let mut bytes = original.get(..at).unwrap_or(&original).to_vec();
    bytes.extend_from_slice(rest);
    storage.set_file_bytes(&name, bytes);
    if choice % 4 == 3 {
        storage.set_file_bytes(meshflow_engine::log::HEAD_FILE_NAME, Vec::new());
    }
    if let Ok((log, _)) = Log::open_with_storage(Arc::new(storage.clone()), options) {
        let _ = log.reader().verify();
        let _ = log.append(test_record(99), Durability::Sync);
        let _ = log.close();
    }
}

/// Ledger input and audit decoders on arbitrary bytes: a JSON step line (accepted lines encode
/// to a payload that decodes to the same fields), an export (verified offline or refused as not
/// an export), a runs-view checkpoint file and a checkpoint note.
pub fn ledger_inputs(data: &[u8]) {
    use meshflow_engine::ledger::checkpoint;
    use meshflow_engine::ledger::offline::verify_export;
    use meshflow_engine::ledger::step::StepFields;
    use meshflow_engine::ledger::StepRequest;

    let _ = checkpoint::decode(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = meshflow_engine::format::note::parse_text(text);
    if let Ok(request) = StepRequest::from_json(text) {
        let fields = StepFields {
            run_id: request.run_id,
            step_id: request.step_id.unwrap_or_else(|| "s".to_string()),
            node_id: request.node_id,
            node_kind: request.node_kind,
            verdict: request.verdict,
            blocked: request.blocked,
            uncertainty: request.uncertainty,
            cost_usd: request.cost_usd,
            tokens_used: request.tokens_used,
            carbon_gco2: request.carbon_gco2,
            duration_ms: request.duration_ms,
            timestamp: request
                .timestamp
                .unwrap_or_else(|| "2026-01-01T00:00:00+00:00".to_string()),
            fork_origin: None,
        };
        if let Ok(payload) = fields.encode() {
            let back = StepFields::decode(&payload);
            assert!(back.is_ok(), "an encoded step decodes: {back:?}");
            let Ok(back) = back else { return };
            assert_eq!(back.run_id, fields.run_id);
            assert_eq!(back.tokens_used, fields.tokens_used);
            assert_eq!(back.cost_usd.to_bits(), (fields.cost_usd + 0.0).to_bits());
        }
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(reports) = verify_export(&value) {
            for r in reports {
                let _ = (r.valid(), r.steps_verified, r.head.len());
            }
        }
    }
}

/// The legacy import's row decoding on arbitrary bytes: fields split on NUL, the reference's
/// gzip+base64 output decoding (never a panic, whatever the text) and the legacy-v1 entry
/// hash (64 lower-case hex digits for any fields).
pub fn legacy_rows(data: &[u8]) {
    use meshflow_engine::ledger::import::decompress;
    use meshflow_engine::ledger::legacy_v1::{entry_hash, LegacyFields};
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let mut next = || parts.next().unwrap_or("");
    let (run, step, node, input, output, verdict, ts, prev) = (
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    );
    let output = decompress(output);
    let hash = entry_hash(&LegacyFields {
        run_id: run,
        step_id: step,
        node_id: node,
        input_task: input,
        output_content: &output,
        verdict,
        blocked: data.first().is_some_and(|b| b & 1 == 1),
        timestamp: ts,
        prev_hash: prev,
    });
    assert_eq!(hash.len(), 64, "a legacy entry hash is 64 hex digits");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
}

/// Policy conditions and evaluation on arbitrary JSON: `{"rules": [[conditions...], ...],
/// "context": {...}}`; conditions parse or are refused, rules that parse are added, and the
/// evaluation of any context gives a verdict (deny-overrides) without a panic.
pub fn policy_conditions(data: &[u8]) {
    use meshflow_engine::governance::policy::{self, Condition, PolicyState};
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut state = PolicyState::default();
    let rules = value
        .get("rules")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate().take(64) {
        let conditions: Vec<Condition> = rule
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| Condition::from_json(c).ok())
                    .collect()
            })
            .unwrap_or_default();
        let action = ["deny", "allow", "log"][i % 3];
        if let Ok(event) = policy::events::add(
            &format!("r{i}"),
            &format!("rule-{i}"),
            action,
            &conditions,
            (i % 7) as i64,
            "",
            "",
            true,
            i as f64,
        ) {
            let _ = state.apply(&event, i as u64);
        }
    }
    let context = value
        .get("context")
        .and_then(|c| c.as_object())
        .cloned()
        .unwrap_or_default();
    let verdict = state.evaluate(&context, "");
    let _ = verdict.to_json();
    for c in rules
        .iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
    {
        if let Ok(c) = Condition::from_json(&c) {
            let _ = c.matches(&context);
        }
    }
}

/// The writer protocol's request parser on arbitrary bytes: a request or a refusal, never a
/// panic.
pub fn protocol_requests(data: &[u8]) {
    let _ = meshflow_engine::service::protocol::parse_request(data);
}

/// Snapshot ZIP reading and verification (without a log) on arbitrary bytes, with small
/// limits: a snapshot or one error, and a report for any snapshot that reads.
pub fn snapshot_zip(data: &[u8]) {
    use meshflow_engine::snapshot::{read_zip, verify, ReadLimits};
    let limits = ReadLimits {
        max_entries: 32,
        max_entry_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    if let Ok(file) = read_zip(std::io::Cursor::new(data), limits) {
        if let Ok(report) = verify(&file, None) {
            let _ = report.valid();
        }
    }
}
