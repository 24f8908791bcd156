//! Appends through every API (single, batch, pipelined, buffered + sync), reopens, and checks
//! that every record reads back with its content, that offsets are dense, that segments roll,
//! that lookups by offset and time work through the sparse index, and that verify passes.

use meshflow_engine::log::{Durability, Log, LogOptions, LogReader, OwnedSlot, RecordInput};
use meshflow_engine::Error;
use meshflow_suite::{record_number, small_options, test_record};

fn check_all(reader: &LogReader, count: u64) {
    let mut n = 0;
    for record in reader.scan(0).unwrap() {
        let record = record.unwrap();
        assert_eq!(record.offset(), n);
        assert_eq!(record_number(record.view().payload()), Some(n));
        assert_eq!(
            record.slot(0).unwrap(),
            OwnedSlot::Live(format!("input-{n}").into_bytes())
        );
        n += 1;
    }
    assert_eq!(n, count);
    let report = reader.verify().unwrap();
    assert_eq!(report.record_count, count);
    assert_eq!(report.slots_live, 2 * count);
}

#[test]
fn every_append_api_reads_back_after_reopen() {
    // Proves records appended by each API survive a clean close and reopen, in order.
    let dir = tempfile::tempdir().unwrap();
    let (log, report) = Log::open(dir.path(), small_options()).unwrap();
    assert!(report.created);
    assert_eq!(
        log.append(test_record(0), Durability::Sync).unwrap().offset,
        0
    );
    let batch = log
        .append_batch((1..4).map(test_record).collect(), Durability::Sync)
        .unwrap();
    assert_eq!(
        batch.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let mut appender = log.appender();
    for n in 4..500 {
        appender
            .submit(test_record(n), Durability::Buffered)
            .unwrap();
    }
    for n in 4..500 {
        assert_eq!(appender.next_receipts().unwrap()[0].offset, n);
    }
    assert!(appender.try_next_receipts().is_none());
    drop(appender);
    log.sync().unwrap();
    check_all(&log.reader(), 500);
    log.close().unwrap();

    let (log, report) = Log::open(dir.path(), small_options()).unwrap();
    assert!(report.clean, "{report:?}");
    assert_eq!(report.next_offset, 500);
    assert_eq!(report.torn_bytes_truncated, 0);
    assert_eq!(
        log.append(test_record(500), Durability::Sync)
            .unwrap()
            .offset,
        500
    );
    drop(log);
    let reader = LogReader::open(dir.path(), small_options()).unwrap();
    check_all(&reader, 501);
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    assert!(segments >= 3, "small segments must roll, got {segments}");
}

#[test]
fn get_and_time_lookup_use_the_index() {
    // Proves random access by offset and by timestamp finds the right records in every segment.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), small_options()).unwrap();
    let mut receipts = Vec::new();
    for n in 0..400 {
        receipts.push(log.append(test_record(n), Durability::Buffered).unwrap());
    }
    log.sync().unwrap();
    let reader = log.reader();
    for n in [0u64, 1, 57, 199, 200, 398, 399] {
        let record = reader.get(n).unwrap().unwrap();
        assert_eq!(record_number(record.view().payload()), Some(n));
    }
    assert!(reader.get(400).unwrap().is_none());
    for n in [0usize, 10, 250, 399] {
        let ts = receipts[n].timestamp_ns;
        let found = reader.offset_at_time(ts).unwrap().unwrap();
        assert!(found <= n as u64 && receipts[found as usize].timestamp_ns == ts);
    }
    assert_eq!(reader.offset_at_time(u64::MAX).unwrap(), None);
}

#[test]
fn read_commands_never_create_a_log() {
    // Proves opening a reader on a missing directory is NotFound and creates nothing.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    match LogReader::open(&missing, LogOptions::default()) {
        Err(Error::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!missing.exists());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        LogReader::open(&empty, LogOptions::default()),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn concurrent_appenders_share_group_commits() {
    // Proves many threads appending with Sync all get dense, distinct offsets and verify.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let log = &log;
            s.spawn(move || {
                for i in 0..50 {
                    log.append(test_record(t * 1000 + i), Durability::Sync)
                        .unwrap();
                }
            });
        }
    });
    let report = log.reader().verify().unwrap();
    assert_eq!(report.record_count, 400);
    let mut numbers: Vec<u64> = log
        .reader()
        .scan(0)
        .unwrap()
        .map(|r| record_number(r.unwrap().view().payload()).unwrap())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 400);
}

#[test]
fn records_without_slots_and_large_records_round_trip() {
    // Proves the default limits admit a 16 MiB record with a 4 MiB field, and empty slots work.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    let big = vec![7u8; 4 * 1024 * 1024];
    let record = RecordInput::new(0x0300, "t", vec![1u8; 4 * 1024 * 1024])
        .with_slot(big.clone())
        .with_slot(big.clone())
        .with_slot(big.clone())
        .with_slot(Vec::new());
    log.append(record, Durability::Sync).unwrap();
    log.append(RecordInput::new(0x0300, "t", Vec::new()), Durability::Sync)
        .unwrap();
    let reader = log.reader();
    let r = reader.get(0).unwrap().unwrap();
    assert_eq!(r.slot(2).unwrap(), OwnedSlot::Live(big));
    assert_eq!(r.slot(3).unwrap(), OwnedSlot::Live(Vec::new()));
    assert_eq!(reader.verify().unwrap().record_count, 2);
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt_and_lookups_still_work() {
    // Proves index files are hints: lookups work without them, and reopening rebuilds them.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), small_options()).unwrap();
    for n in 0..800 {
        log.append(test_record(n), Durability::Buffered).unwrap();
    }
    log.close().unwrap();
    let mut removed = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "idx") {
            if removed % 2 == 0 {
                std::fs::remove_file(&path).unwrap();
            } else {
                std::fs::write(&path, b"not an index").unwrap();
            }
            removed += 1;
        }
    }
    assert!(removed >= 3);
    let reader = LogReader::open(dir.path(), small_options()).unwrap();
    assert_eq!(
        record_number(reader.get(321).unwrap().unwrap().view().payload()),
        Some(321)
    );
    for n in [0u64, 321, 799] {
        let ts = reader.get(n).unwrap().unwrap().view().timestamp_ns();
        let found = reader.offset_at_time(ts).unwrap().unwrap();
        assert!(found <= n, "time lookup for {n} found {found}");
        assert_eq!(
            reader.get(found).unwrap().unwrap().view().timestamp_ns(),
            ts
        );
        if found > 0 {
            assert!(
                reader
                    .get(found - 1)
                    .unwrap()
                    .unwrap()
                    .view()
                    .timestamp_ns()
                    < ts
            );
        }
    }
    let (log, report) = Log::open(dir.path(), small_options()).unwrap();
    assert_eq!(report.indexes_rebuilt, removed, "{report:?}");
    let reader = log.reader();
    for n in [0u64, 150, 399, 799] {
        assert_eq!(
            record_number(reader.get(n).unwrap().unwrap().view().payload()),
            Some(n)
        );
    }
    let idx_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "idx")
        })
        .count();
    assert_eq!(idx_files as u64, removed);
}
