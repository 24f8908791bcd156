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
