//! Bit flips in durable records. Every bit of the last record's frame and of a record in the
//! middle of the log is flipped in turn; the log is reopened and verified. Each flip must be
//! reported (reopen or verify fails with a corruption or verification error); none may be
//! silently truncated away or pass.

use std::sync::Arc;

use meshflow_engine::format::segment_header::segment_file_name;
use meshflow_engine::log::{Durability, Log, LogOptions};
use meshflow_engine::storage::faulty::FaultyStorage;
use meshflow_engine::Error;
use meshflow_suite::test_record;

fn build() -> (FaultyStorage, Vec<(u64, u64)>) {
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    for n in 0..10 {
        log.append(test_record(n), Durability::Sync).unwrap();
    }
    let reader = log.reader();
    let ranges = [4u64, 9]
        .iter()
        .map(|o| {
            let r = reader.get(*o).unwrap().unwrap();
            (r.position(), r.view().frame_len())
        })
        .collect();
    log.close().unwrap();
    (storage, ranges)
}

/// Reopens and verifies; returns the error that caught the flip, or None if nothing did.
fn caught(storage: &FaultyStorage) -> Option<Error> {
    let (log, _) = match Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()) {
        Ok(x) => x,
        Err(e) => return Some(e),
    };
    let result = log.reader().verify();
    let _ = log.close();
    result.err()
}

#[test]
fn every_flipped_bit_of_a_durable_record_is_reported() {
    // Proves no single-bit flip anywhere in a durable frame goes unnoticed or is truncated.
    let (storage, ranges) = build();
    let name = segment_file_name(0);
    let original = storage.file_bytes(&name).unwrap();
    for (start, len) in ranges {
        for bit in 0..len * 8 {
            let mut bytes = original.clone();
            bytes[(start + bit / 8) as usize] ^= 1 << (bit % 8);
            let image =
                storage.crash_image(meshflow_engine::storage::faulty::CrashMode::AllWritten);
            image.set_file_bytes(&name, bytes);
            match caught(&image) {
                Some(Error::Corrupt(_) | Error::Verify(_)) => {}
                other => panic!("flip of bit {bit} in frame at {start}: {other:?}"),
            }
            assert_eq!(
                image.file_bytes(&name).unwrap().len(),
                original.len(),
                "bit {bit}: nothing cut"
            );
        }
    }
}
