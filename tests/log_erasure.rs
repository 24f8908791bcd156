//! In-place slot erasure on real files: after `erase`, every hash still verifies, the erased
//! bytes exist in no file of the directory, the slot reads as erased with its length, bad
//! targets are refused without writing anything, and an erased slot that no erasure record
//! covers fails verification.

use meshflow_engine::format::erasure::SlotRef;
use meshflow_engine::format::segment_header::segment_file_name;
use meshflow_engine::format::slot;
use meshflow_engine::log::{Durability, Log, LogOptions, LogReader, OwnedSlot, RecordInput};
use meshflow_engine::Error;

const SECRET: &[u8] = b"patient: Jane Q. Example, DOB 1970-01-01";

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

fn record_with_secret() -> RecordInput {
    RecordInput::new(0x0200, "clinic", b"step".to_vec())
        .with_slot(b"keep me".to_vec())
        .with_slot(SECRET.to_vec())
}

#[test]
fn erased_slot_is_gone_from_disk_and_chain_still_verifies() {
    // Proves erasure removes the bytes everywhere while every hash and commitment still holds.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(record_with_secret(), Durability::Sync).unwrap();
    let before = log.reader().get(0).unwrap().unwrap().view().hash();
    assert!(files_contain(dir.path(), SECRET));
    let receipt = log
        .erase(
            "clinic",
            vec![SlotRef {
                offset: 0,
                slot_index: 1,
            }],
            b"{\"why\":\"gdpr\"}".to_vec(),
        )
        .unwrap();
    assert_eq!(receipt.offset, 1);
    assert!(
        !files_contain(dir.path(), SECRET),
        "secret bytes still on disk"
    );
    let reader = log.reader();
    let record = reader.get(0).unwrap().unwrap();
    assert_eq!(record.view().hash(), before, "hash unchanged");
    assert_eq!(
        record.slot(1).unwrap(),
        OwnedSlot::Erased(SECRET.len() as u64)
    );
    assert_eq!(
        record.slot(0).unwrap(),
        OwnedSlot::Live(b"keep me".to_vec())
    );
    let report = reader.verify().unwrap();
    assert_eq!((report.slots_erased, report.erasure_records), (1, 1));
    log.close().unwrap();
    let report = LogReader::open(dir.path(), LogOptions::default())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(report.slots_erased, 1);
}

#[test]
fn bad_targets_are_refused_and_write_nothing() {
    // Proves an erasure naming a missing record or slot is an input error and uses no offset.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(record_with_secret(), Durability::Sync).unwrap();
    for target in [
        SlotRef {
            offset: 5,
            slot_index: 0,
        },
        SlotRef {
            offset: 0,
            slot_index: 2,
        },
    ] {
        match log.erase("clinic", vec![target], Vec::new()) {
            Err(Error::InvalidInput { .. }) => {}
            other => panic!("{target:?}: {other:?}"),
        }
    }
    assert_eq!(
        log.append(record_with_secret(), Durability::Sync)
            .unwrap()
            .offset,
        1
    );
    assert_eq!(log.reader().verify().unwrap().erasure_records, 0);
}

#[test]
fn erased_slot_without_erasure_record_fails_verify() {
    // Proves an erasure forged by rewriting a slot (with a correct slot CRC) is detected.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(record_with_secret(), Durability::Sync).unwrap();
    let record = log.reader().get(0).unwrap().unwrap();
    let range = record.view().slot_range(1).unwrap();
    let at = record.position() as usize + range.start;
    log.close().unwrap();
    let path = dir.path().join(segment_file_name(0));
    let mut bytes = std::fs::read(&path).unwrap();
    slot::encode_erased(&mut bytes[at..at + range.len()], SECRET.len() as u64).unwrap();
    std::fs::write(&path, bytes).unwrap();
    match LogReader::open(dir.path(), LogOptions::default())
        .unwrap()
        .verify()
    {
        Err(Error::Verify(v)) => assert!(v.reason.contains("no erasure record"), "{v:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_erasure_naming_no_slot_is_a_note_that_verifies() {
    // Proves a zero-target erasure record (the ledger deletes an empty run with one) takes an
    // offset, changes no slot, and the log verifies before and after a reopen.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(record_with_secret(), Durability::Sync).unwrap();
    let r = log.erase("clinic", Vec::new(), b"note".to_vec()).unwrap();
    assert_eq!(r.offset, 1);
    let report = log.reader().verify().unwrap();
    assert_eq!((report.slots_erased, report.erasure_records), (0, 1));
    log.close().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.reader().verify().unwrap().record_count, 2);
    assert!(files_contain(dir.path(), SECRET), "no slot was touched");
    log.close().unwrap();
}
