//! A full disk: with the fault-injecting storage limited to a few kilobytes more than the log
//! holds, appends fail with a clear "no space" error, nothing acknowledged is lost, the log
//! still verifies, and after space returns a reopened log appends again.

use std::sync::Arc;

use meshflow_engine::log::{Durability, Log};
use meshflow_engine::storage::faulty::FaultyStorage;
use meshflow_engine::Error;
use meshflow_suite::{small_options, test_record};

#[test]
fn no_space_is_a_clear_error_and_the_log_recovers_when_space_returns() {
    // Proves ENOSPC surfaces as a typed "no space" error and costs no acknowledged record.
    let storage = FaultyStorage::new();
    let (log, _) = Log::open_with_storage(Arc::new(storage.clone()), small_options()).unwrap();
    for n in 0..20 {
        log.append(test_record(n), Durability::Sync).unwrap();
    }
    let used: u64 = [
        "00000000000000000000.seg",
        "00000000000000000000.idx",
        "HEAD",
    ]
    .iter()
    .map(|f| storage.file_bytes(f).map_or(0, |b| b.len() as u64))
    .sum();
    storage.set_capacity_bytes(Some(used + 2048));
    let mut acked = 20;
    let error = loop {
        match log.append(test_record(acked), Durability::Sync) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 100, "the capacity limit never triggered");
    };
    assert!(error.to_string().contains("no space"), "{error}");
    assert!(matches!(
        log.append(test_record(999), Durability::Sync),
        Err(Error::Poisoned { .. })
    ));
    drop(log);
    storage.set_capacity_bytes(None);
    let (log, _) = Log::open_with_storage(Arc::new(storage.clone()), small_options()).unwrap();
    let report = log.reader().verify().unwrap();
    assert!(
        report.record_count >= acked,
        "{} < {acked}",
        report.record_count
    );
    let receipt = log
        .append(test_record(report.record_count), Durability::Sync)
        .unwrap();
    assert_eq!(receipt.offset, report.record_count);
    assert_eq!(
        log.reader().verify().unwrap().record_count,
        report.record_count + 1
    );
}
