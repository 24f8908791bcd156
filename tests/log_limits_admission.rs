//! Limits and admission: every limit violation and invalid input is a typed error before
//! anything is written, and a batch refused by the admission step uses no offset.

use meshflow_engine::log::{
    Admission, AdmitDecision, Candidate, Durability, Log, LogOptions, RecordInput,
};
use meshflow_engine::Error;
use meshflow_suite::{small_options, test_record};

#[derive(Debug)]
struct RefuseOddPayloads;

impl Admission for RefuseOddPayloads {
    fn admit(&mut self, _first_offset: u64, batch: &[Candidate<'_>]) -> AdmitDecision {
        if batch.iter().any(|c| c.frame.payload().len() % 2 == 1) {
            AdmitDecision::Reject("odd payload".to_string())
        } else {
            AdmitDecision::Accept(Vec::new())
        }
    }
}

#[test]
fn limit_violations_write_nothing() {
    // Proves oversized records, bad tenants, reserved kinds and big batches are typed errors.
    let dir = tempfile::tempdir().unwrap();
    let options = small_options();
    let (log, _) = Log::open(dir.path(), options).unwrap();
    let big = vec![0u8; options.limits.slot_bytes_max as usize + 1];
    let cases = vec![
        RecordInput::new(
            0x0200,
            "t",
            vec![0u8; options.limits.payload_bytes_max as usize + 1],
        ),
        RecordInput::new(0x0200, "t", Vec::new()).with_slot(big),
        RecordInput::new(0x0200, "", Vec::new()),
        RecordInput::new(0x0200, "x".repeat(65), Vec::new()),
        RecordInput::new(0x0200, "bad\ntenant", Vec::new()),
        RecordInput::new(0x0001, "t", Vec::new()),
    ];
    for record in cases {
        match log.append(record.clone(), Durability::Sync) {
            Err(Error::LimitExceeded { .. } | Error::InvalidInput { .. }) => {}
            other => panic!("{record:?}: {other:?}"),
        }
    }
    let too_many = (0..options.limits.batch_records_max + 1)
        .map(|_| RecordInput::new(0x0200, "t", Vec::new()))
        .collect();
    assert!(matches!(
        log.append_batch(too_many, Durability::Sync),
        Err(Error::LimitExceeded { .. })
    ));
    let too_big = (0..20)
        .map(|_| RecordInput::new(0x0200, "t", vec![0u8; 4000]))
        .collect();
    assert!(matches!(
        log.append_batch(too_big, Durability::Sync),
        Err(Error::LimitExceeded {
            what: "batch bytes",
            ..
        })
    ));
    assert_eq!(
        log.append(test_record(0), Durability::Sync).unwrap().offset,
        0
    );
}

#[test]
fn rejected_batches_use_no_offset() {
    // Proves the admission step runs before sequencing: refused batches leave no gap.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.set_admission(Box::new(RefuseOddPayloads)).unwrap();
    let odd = RecordInput::new(0x0200, "t", b"abc".to_vec());
    let even = RecordInput::new(0x0200, "t", b"ab".to_vec());
    assert!(matches!(
        log.append(odd.clone(), Durability::Sync),
        Err(Error::Rejected { .. })
    ));
    assert_eq!(
        log.append(even.clone(), Durability::Sync).unwrap().offset,
        0
    );
    assert!(matches!(
        log.append_batch(vec![even.clone(), odd], Durability::Sync),
        Err(Error::Rejected { .. })
    ));
    assert_eq!(log.append(even, Durability::Sync).unwrap().offset, 1);
    assert_eq!(log.reader().verify().unwrap().record_count, 2);
}
