//! Crash images from the fault-injecting storage at every operation of a workload of batch
//! appends, buffered appends, syncs, segment rolls and slot erasures. For each operation we
//! fail it (the process "dies" there), build the image a power cut (only synced bytes), a
//! process kill (all written bytes) and a torn write-back (random unsynced sectors) would
//! leave, reopen, and check: the log is an exact prefix of the appended records, it holds every
//! acknowledged record with the acknowledged hash, no batch is split, an erasure is either
//! absent or complete, and `verify()` passes.

use std::sync::Arc;

use meshflow_engine::format::erasure::SlotRef;
use meshflow_engine::log::{Durability, Log, LogOptions, OwnedSlot, Receipt};
use meshflow_engine::storage::faulty::{CrashMode, FaultyStorage};
use meshflow_suite::{record_number, small_options, test_record};

const BATCH: u64 = 3;

/// What the workload saw acknowledged before the fault.
#[derive(Debug, Default)]
struct Acked {
    receipts: Vec<Receipt>,
    erased: Option<Receipt>,
}

/// Batches of 3 records (Sync), then buffered singles and a sync, then an erasure of slot 1 of
/// record 4, then more batches (crossing segment boundaries with small segments).
fn workload(storage: &FaultyStorage, options: LogOptions, acked: &mut Acked) {
    let Ok((log, _)) = Log::open_with_storage(Arc::new(storage.clone()), options) else {
        return;
    };
    let mut n = 0u64;
    let step = |log: &Log, acked: &mut Acked, n: &mut u64| -> bool {
        let records = (*n..*n + BATCH).map(test_record).collect();
        match log.append_batch(records, Durability::Sync) {
            Ok(r) => {
                acked.receipts.extend(r);
                *n += BATCH;
                true
            }
            Err(_) => false,
        }
    };
    for _ in 0..4 {
        if !step(&log, acked, &mut n) {
            return;
        }
    }
    let mut buffered = Vec::new();
    for _ in 0..BATCH {
        match log.append_batch(vec![test_record(n)], Durability::Buffered) {
            Ok(r) => buffered.extend(r),
            Err(_) => return,
        }
        n += 1;
    }
    if log.sync().is_err() {
        return;
    }
    acked.receipts.extend(buffered);
    match log.erase(
        "tenant-a",
        vec![SlotRef {
            offset: 4,
            slot_index: 1,
        }],
        b"gdpr".to_vec(),
    ) {
        Ok(r) => acked.erased = Some(r),
        Err(_) => return,
    }
    n += 1;
    for _ in 0..6 {
        if !step(&log, acked, &mut n) {
            return;
        }
    }
    let _ = log.close();
}

/// Recovery paths the images exercised, summed over all of them.
#[derive(Debug, Default)]
struct Seen {
    torn: u64,
    recovered: u64,
    redone: u64,
    head_missing: u64,
}

fn check_image(
    image: FaultyStorage,
    options: LogOptions,
    acked: &Acked,
    label: &str,
    seen: &mut Seen,
) {
    let (log, report) = Log::open_with_storage(Arc::new(image), options)
        .unwrap_or_else(|e| panic!("{label}: reopen failed: {e}"));
    seen.torn += u64::from(report.torn_bytes_truncated > 0);
    seen.recovered += u64::from(report.records_recovered > 0);
    seen.redone += report.erasures_redone;
    seen.head_missing += u64::from(report.head_missing);
    let reader = log.reader();
    let verified = reader
        .verify()
        .unwrap_or_else(|e| panic!("{label}: verify failed: {e} ({report:?})"));
    let mut erasure_offset = None;
    let mut expected_number = 0u64;
    for record in reader.scan(0).unwrap() {
        let record = record.unwrap();
        let view = record.view();
        if view.kind() == meshflow_engine::format::erasure::KIND_ERASE {
            erasure_offset = Some(view.offset());
            continue;
        }
        assert_eq!(
            record_number(view.payload()),
            Some(view.offset()),
            "{label}: prefix order"
        );
        assert_eq!(
            view.offset(),
            expected_number + u64::from(erasure_offset.is_some())
        );
        expected_number += 1;
    }
    for r in &acked.receipts {
        let record = reader
            .get(r.offset)
            .unwrap()
            .unwrap_or_else(|| panic!("{label}: acked {} lost", r.offset));
        assert_eq!(
            record.view().hash(),
            r.hash,
            "{label}: acked hash differs at {}",
            r.offset
        );
    }
    if acked.erased.is_some() {
        assert!(
            erasure_offset.is_some(),
            "{label}: acknowledged erasure lost"
        );
    }
    let slot = reader.get(4).unwrap().map(|r| r.slot(1).unwrap());
    match (erasure_offset, slot) {
        (Some(_), Some(OwnedSlot::Erased(_))) | (None, Some(OwnedSlot::Live(_))) | (None, None) => {
        }
        (e, s) => panic!("{label}: erasure {e:?} but slot {s:?}"),
    }
    let data_records = verified.record_count - u64::from(erasure_offset.is_some());
    // Records 0..12 are batches of 3, 12..15 are single buffered records, then batches again.
    let whole = match data_records {
        n if n <= 12 => n % BATCH == 0,
        n if n <= 15 => true,
        n => (n - 15) % BATCH == 0,
    };
    assert!(whole, "{label}: a batch was split ({data_records} records)");
    log.close().unwrap();
}

#[test]
fn every_crash_point_recovers_to_an_acknowledged_prefix() {
    // Proves crash consistency at every mutating storage operation, for three crash models.
    let options = small_options();
    let clean = FaultyStorage::new();
    let mut acked = Acked::default();
    workload(&clean, options, &mut acked);
    assert_eq!(
        acked.receipts.len(),
        33,
        "the fault-free workload completes"
    );
    let total_ops = clean.op_count();
    let mut seen = Seen::default();
    assert!(
        total_ops > 50,
        "workload exercises storage ({total_ops} ops)"
    );
    for n in 0..total_ops {
        let storage = FaultyStorage::new();
        storage.fail_after_ops(n);
        let mut acked = Acked::default();
        workload(&storage, options, &mut acked);
        assert!(storage.has_crashed(), "op {n} was reached");
        for mode in [
            CrashMode::DurableOnly,
            CrashMode::AllWritten,
            CrashMode::TornSectors(n),
        ] {
            let label = format!("op {n} {mode:?}");
            check_image(
                storage.crash_image(mode),
                options,
                &acked,
                &label,
                &mut seen,
            );
        }
    }
    // The images must reach every recovery path, or this test proves less than it claims.
    assert!(
        seen.torn > 0 && seen.recovered > 0 && seen.redone > 0 && seen.head_missing > 0,
        "{seen:?}"
    );
}
