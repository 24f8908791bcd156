//! Erasure while readers read: a reader thread scans every record and reads every slot again
//! and again while the writer erases slots one record at a time. A slot rewritten under the
//! reader's map must read as live (before) or erased (after), never as a corruption error, and
//! `verify()` must pass at the end.

use std::sync::atomic::{AtomicBool, Ordering};

use meshflow_engine::format::erasure::SlotRef;
use meshflow_engine::log::{Durability, Log, LogOptions, OwnedSlot};
use meshflow_suite::test_record;

#[test]
fn readers_never_see_a_half_erased_slot_as_corruption() {
    // Proves concurrent erasure is invisible to readers except as live-then-erased.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    let batch: Vec<_> = (0..500).map(test_record).collect();
    log.append_batch(batch, Durability::Sync).unwrap();
    let reader = log.reader();
    let stop = AtomicBool::new(false);
    let (passes, erased_seen) = std::thread::scope(|s| {
        let scanning = s.spawn(|| {
            let (mut passes, mut erased_seen) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                for record in reader.scan(0).unwrap() {
                    let record = record.unwrap();
                    for i in 0..record.view().slot_count() {
                        match record.slot(i) {
                            Ok(OwnedSlot::Live(_)) => {}
                            Ok(OwnedSlot::Erased(_)) => erased_seen += 1,
                            Err(e) => panic!("offset {}: {e}", record.offset()),
                        }
                    }
                }
                passes += 1;
            }
            (passes, erased_seen)
        });
        for offset in (0..500).step_by(5) {
            let targets = vec![
                SlotRef {
                    offset,
                    slot_index: 0,
                },
                SlotRef {
                    offset,
                    slot_index: 1,
                },
            ];
            log.erase("tenant-a", targets, b"concurrent".to_vec())
                .unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        scanning.join().unwrap()
    });
    assert!(
        passes > 0 && erased_seen > 0,
        "passes {passes}, erased seen {erased_seen}"
    );
    let report = log.reader().verify().unwrap();
    assert_eq!(report.slots_erased, 200);
    assert_eq!(report.erasure_records, 100);
}
