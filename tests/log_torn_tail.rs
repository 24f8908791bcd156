//! Torn tails and corruption at reopen. The tail of the last segment is truncated at every byte
//! of the last records (with HEAD from before them, as after a power cut), garbage is appended,
//! and bad frames are placed before valid ones. A zero or garbage suffix must be cut and
//! reported; a bad frame followed by a frame that proves the bad bytes were durable must be a
//! corruption error naming the segment and byte position; and a segment shorter than the end
//! HEAD published must be an error, never a silent truncation.

use std::sync::Arc;

use meshflow_engine::format::segment_header::segment_file_name;
use meshflow_engine::log::{Durability, Log, LogOptions, HEAD_FILE_NAME};
use meshflow_engine::storage::faulty::FaultyStorage;
use meshflow_engine::Error;
use meshflow_suite::test_record;

/// A log with 6 synced records (HEAD saved at that point), then 6 more records written in two
/// synced groups, then closed. Returns the storage, the saved HEAD, and where record 6 starts.
fn log_with_saved_head() -> (FaultyStorage, Vec<u8>, u64) {
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    log.append_batch((0..6).map(test_record).collect(), Durability::Sync)
        .unwrap();
    let head = storage.file_bytes(HEAD_FILE_NAME).unwrap();
    log.append_batch((6..9).map(test_record).collect(), Durability::Sync)
        .unwrap();
    log.append_batch((9..12).map(test_record).collect(), Durability::Sync)
        .unwrap();
    let position = log.reader().get(6).unwrap().unwrap().position();
    log.close().unwrap();
    (storage, head, position)
}

fn reopen(storage: &FaultyStorage) -> Result<(Log, meshflow_engine::log::RecoveryReport), Error> {
    Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default())
}

#[test]
fn truncation_at_every_byte_of_the_tail_recovers_a_whole_batch_prefix() {
    // Proves a torn tail at any byte is cut back to the last complete batch and reported.
    let (storage, old_head, start) = log_with_saved_head();
    let name = segment_file_name(0);
    let full = storage.file_bytes(&name).unwrap();
    for len in start..=full.len() as u64 {
        let image = storage.crash_image(meshflow_engine::storage::faulty::CrashMode::AllWritten);
        image.set_file_bytes(&name, full[..len as usize].to_vec());
        image.set_file_bytes(HEAD_FILE_NAME, old_head.clone());
        let (log, report) = reopen(&image).unwrap_or_else(|e| panic!("len {len}: {e}"));
        let count = log.reader().verify().unwrap().record_count;
        assert!(
            count == 6 || count == 9 || count == 12,
            "len {len}: {count} records"
        );
        let kept = image.file_bytes(&name).unwrap().len() as u64;
        assert_eq!(report.torn_bytes_truncated, len - kept, "len {len}");
        if len < full.len() as u64 {
            assert!(count < 12);
        }
        log.close().unwrap();
    }
}

#[test]
fn segment_shorter_than_published_end_is_an_error() {
    // Proves losing durable bytes is reported as corruption, not truncated away.
    let (storage, _, start) = log_with_saved_head();
    let name = segment_file_name(0);
    let mut bytes = storage.file_bytes(&name).unwrap();
    bytes.truncate(start as usize + 10);
    storage.set_file_bytes(&name, bytes);
    match reopen(&storage) {
        Err(Error::Corrupt(c)) => assert!(c.reason.contains("shorter"), "{c:?}"),
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn garbage_suffix_is_a_torn_tail() {
    // Proves zeros or random bytes after the last frame are cut and reported.
    for fill in [0u8, 0x5a] {
        let (storage, old_head, _) = log_with_saved_head();
        let name = segment_file_name(0);
        let mut bytes = storage.file_bytes(&name).unwrap();
        let before = bytes.len() as u64;
        bytes.extend(std::iter::repeat_n(fill, 777));
        storage.set_file_bytes(&name, bytes);
        storage.set_file_bytes(HEAD_FILE_NAME, old_head);
        let (log, report) = reopen(&storage).unwrap();
        assert_eq!(report.torn_bytes_truncated, 777);
        assert_eq!(report.records_recovered, 6);
        assert_eq!(storage.file_bytes(&name).unwrap().len() as u64, before);
        assert_eq!(log.reader().verify().unwrap().record_count, 12);
    }
}

#[test]
fn bad_frame_followed_by_durable_witness_is_corruption() {
    // Proves a damaged frame is not truncated away when a later frame was written after it
    // was durable: recovery fails naming the segment and the byte position.
    let (storage, old_head, start) = log_with_saved_head();
    let name = segment_file_name(0);
    let mut bytes = storage.file_bytes(&name).unwrap();
    bytes[start as usize + 20] ^= 0x01;
    storage.set_file_bytes(&name, bytes);
    storage.set_file_bytes(HEAD_FILE_NAME, old_head);
    match reopen(&storage) {
        Err(Error::Corrupt(c)) => {
            assert_eq!(c.file, name);
            assert_eq!(c.position_bytes, start);
            assert_eq!(c.offset, Some(6));
        }
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn bad_frame_in_one_unsynced_group_is_a_torn_tail() {
    // Proves frames written in the same unsynced write as the damaged one are not witnesses:
    // a torn write-back can persist a later sector before an earlier one.
    let storage = FaultyStorage::new();
    let (log, _) =
        Log::open_with_storage(Arc::new(storage.clone()), LogOptions::default()).unwrap();
    log.append_batch((0..3).map(test_record).collect(), Durability::Sync)
        .unwrap();
    let head = storage.file_bytes(HEAD_FILE_NAME).unwrap();
    let mut appender = log.appender();
    for n in 3..9 {
        appender
            .submit(test_record(n), Durability::Buffered)
            .unwrap();
    }
    for _ in 3..9 {
        appender.next_receipts().unwrap();
    }
    drop(appender);
    log.sync().unwrap();
    let start = log.reader().get(3).unwrap().unwrap().position();
    drop(log);
    let name = segment_file_name(0);
    let mut bytes = storage.file_bytes(&name).unwrap();
    bytes[start as usize + 20] ^= 0x01;
    storage.set_file_bytes(&name, bytes);
    storage.set_file_bytes(HEAD_FILE_NAME, head);
    let (log, report) = reopen(&storage).unwrap();
    assert!(report.torn_bytes_truncated > 0);
    assert_eq!(log.reader().verify().unwrap().record_count, 3);
}
