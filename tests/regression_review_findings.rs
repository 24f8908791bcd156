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
