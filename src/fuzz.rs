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
