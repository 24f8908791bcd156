//! Regressions for findings of the code review of issue 2 (see the closing note): recovered
//! frames are fsynced before a HEAD that covers them is made durable; a segment whose header is
//! damaged but which holds frames is corruption, never removed; a smaller `record_bytes_max`
//! does not turn durable frames into a torn tail.

use std::sync::Arc;

use meshflow_engine::format::segment_header::segment_file_name;
use meshflow_engine::log::{Durability, Log, LogOptions, HEAD_FILE_NAME};
use meshflow_engine::storage::faulty::{CrashMode, FaultyStorage};
use meshflow_engine::Error;
use meshflow_suite::test_record;

#[test]
fn recovered_frames_survive_a_power_cut_after_recovery() {
    // Proves recovery fsyncs frames it keeps past the recovery point before it fsyncs HEAD.
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    log.append(test_record(0), Durability::Sync).unwrap();
    for n in 1..6 {
        log.append(test_record(n), Durability::Buffered).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(20)); // the idle flush writes them
    let killed = storage.crash_image(CrashMode::AllWritten); // process killed: page cache kept
    drop(log);
    let (log, report) =
        Log::open_with_storage(Arc::new(killed.clone()), LogOptions::default()).unwrap();
    assert_eq!(report.records_recovered, 5, "{report:?}");
    drop(log);
    let power_cut = killed.crash_image(CrashMode::DurableOnly);
    let (log, _) = Log::open_with_storage(Arc::new(power_cut), LogOptions::default())
        .expect("HEAD must not cover bytes that were never fsynced");
    assert_eq!(log.reader().verify().unwrap().record_count, 6);
}

#[test]
fn damaged_header_in_front_of_frames_is_corruption_not_removal() {
    // Proves a bit flip in a segment header never deletes the records behind it.
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    for n in 0..3 {
        log.append(test_record(n), Durability::Sync).unwrap();
    }
    log.close().unwrap();
    let name = segment_file_name(0);
    let mut bytes = storage.file_bytes(&name).unwrap();
    let len = bytes.len();
    bytes[20] ^= 0x01;
    storage.set_file_bytes(&name, bytes);
    storage.set_file_bytes(HEAD_FILE_NAME, Vec::new());
    match Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()) {
        Err(Error::Corrupt(_)) => {}
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
    }
    assert_eq!(
        storage.file_bytes(&name).map(|b| b.len()),
        Some(len),
        "segment kept whole"
    );
}

#[test]
fn smaller_record_limit_does_not_truncate_durable_frames() {
    // Proves recovery decodes against the format's maximum, not today's configured limit.
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    let head_before = {
        log.append(test_record(0), Durability::Sync).unwrap();
        storage.file_bytes(HEAD_FILE_NAME).unwrap()
    };
    let big = meshflow_engine::log::RecordInput::new(0x0200, "t", vec![7u8; 64 * 1024]);
    log.append(big, Durability::Sync).unwrap();
    log.close().unwrap();
    storage.set_file_bytes(HEAD_FILE_NAME, head_before); // stale HEAD, as after a power cut
    let mut small = LogOptions::default();
    small.limits.record_bytes_max = 16 * 1024;
    small.limits.payload_bytes_max = 8 * 1024;
    let (log, report) = Log::open_with_storage(Arc::new(storage), small).unwrap();
    assert_eq!(report.torn_bytes_truncated, 0, "{report:?}");
    assert_eq!(log.reader().verify().unwrap().record_count, 2);
}

use meshflow_engine::format::head::{Head, HEAD_COPY_BYTES, HEAD_FILE_BYTES};

/// Rewrites HEAD (both copies) so that it names `next_offset`, the hash of record
/// `next_offset - 1`, and `durable_len` — the way someone hiding records would.
fn rewrite_head(storage: &FaultyStorage, next_offset: u64, durable_len: u64) {
    let reader = meshflow_engine::log::LogReader::with_storage(
        Arc::new(storage.clone()),
        LogOptions::default(),
    );
    let old = reader.snapshot().unwrap().head;
    let last = reader.get(next_offset - 1).unwrap().unwrap();
    let head = Head {
        next_offset,
        head_hash: last.view().hash(),
        durable_len,
        last_frame_pos: last.position(),
        last_timestamp_ns: last.view().timestamp_ns(),
        generation: old.generation + 1,
        ..old
    };
    let mut file = vec![0u8; HEAD_FILE_BYTES];
    for g in [head.generation, head.generation + 1] {
        let copy = Head {
            generation: g,
            ..head
        };
        let at = copy.copy_position() as usize;
        file[at..at + HEAD_COPY_BYTES].copy_from_slice(&copy.encode());
    }
    storage.set_file_bytes(HEAD_FILE_NAME, file);
}

fn verify(storage: &FaultyStorage) -> Result<meshflow_engine::log::VerifyReport, Error> {
    meshflow_engine::log::LogReader::with_storage(Arc::new(storage.clone()), LogOptions::default())
        .verify()
}

#[test]
fn verify_refuses_a_head_that_hides_records() {
    // Proves records past HEAD's next offset but below its durable length are not ignored.
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    for n in 0..5 {
        log.append(test_record(n), Durability::Sync).unwrap();
    }
    log.close().unwrap();
    let durable = storage.file_bytes(&segment_file_name(0)).unwrap().len() as u64;
    rewrite_head(&storage, 3, durable);
    assert!(
        matches!(verify(&storage), Err(Error::Verify(_))),
        "{:?}",
        verify(&storage)
    );
}

#[test]
fn verify_refuses_a_head_that_splits_a_batch() {
    // Proves a durable end in the middle of a batch is reported.
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    log.append_batch((0..3).map(test_record).collect(), Durability::Sync)
        .unwrap();
    let third = log.reader().get(2).unwrap().unwrap().position();
    log.close().unwrap();
    rewrite_head(&storage, 2, third);
    match verify(&storage) {
        Err(Error::Verify(v)) => assert!(v.reason.contains("incomplete"), "{v:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn verify_refuses_an_erasure_that_was_undone() {
    // Proves an erasure record naming a slot that still holds data fails verification.
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    log.append(test_record(0), Durability::Sync).unwrap();
    let before = storage.file_bytes(&segment_file_name(0)).unwrap();
    let target = meshflow_engine::format::erasure::SlotRef {
        offset: 0,
        slot_index: 0,
    };
    log.erase("tenant-a", vec![target], Vec::new()).unwrap();
    log.close().unwrap();
    let mut after = storage.file_bytes(&segment_file_name(0)).unwrap();
    after[..before.len()].copy_from_slice(&before);
    storage.set_file_bytes(&segment_file_name(0), after);
    match verify(&storage) {
        Err(Error::Verify(v)) => assert!(v.reason.contains("not erased"), "{v:?}"),
        other => panic!("{other:?}"),
    }
}
