//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same harnesses the
//! cargo-fuzz targets use, so every input the fuzzer kept (and every crash it found, once fixed)
//! is re-checked by plain `cargo test`, with no fuzzer installed.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        harness(&std::fs::read(&path).unwrap());
        count += 1;
    }
    count
}

#[test]
fn frame_decode_corpus_never_panics() {
    // Proves every kept frame-decoding input still decodes or fails without a panic.
    assert!(
        replay("frame_decode", meshflow_suite::fuzz::frame_decode) > 0,
        "corpus is empty"
    );
}

#[test]
fn segment_recovery_corpus_never_panics() {
    // Proves every kept recovery input still opens or fails with a typed error.
    assert!(
        replay("segment_recovery", meshflow_suite::fuzz::segment_recovery) > 0,
        "corpus is empty"
    );
}

#[test]
fn ledger_inputs_corpus_never_panics() {
    // Proves every kept step-line, export, checkpoint and note input still parses or fails
    // without a panic.
    assert!(
        replay("ledger_inputs", meshflow_suite::fuzz::ledger_inputs) > 0,
        "corpus is empty"
    );
}

#[test]
fn legacy_rows_corpus_never_panics() {
    // Proves every kept input of the legacy import's row decoding (gzip+base64 outputs) and the legacy-v1 entry hash still gives a value or an error.
    assert!(
        replay("legacy_rows", meshflow_suite::fuzz::legacy_rows) > 0,
        "corpus is empty"
    );
}

#[test]
fn policy_conditions_corpus_never_panics() {
    // Proves every kept input of policy conditions parsed, rules added and contexts evaluated from arbitrary JSON still gives a value or an error.
    assert!(
        replay("policy_conditions", meshflow_suite::fuzz::policy_conditions) > 0,
        "corpus is empty"
    );
}

#[test]
fn protocol_requests_corpus_never_panics() {
    // Proves every kept input of the writer protocol's request parser still gives a value or an error.
    assert!(
        replay("protocol_requests", meshflow_suite::fuzz::protocol_requests) > 0,
        "corpus is empty"
    );
}

#[test]
fn snapshot_zip_corpus_never_panics() {
    // Proves every kept input of snapshot ZIP reading (with limits) and verification without a log still gives a value or an error.
    assert!(
        replay("snapshot_zip", meshflow_suite::fuzz::snapshot_zip) > 0,
        "corpus is empty"
    );
}
