//! Step records on the log (issue 3, first increments): a step goes in as a record with a
//! canonical payload and four slots and comes back field for field; its entry hash chains per
//! run and does not change when a slot is erased, which reads back as redacted with its
//! commitment; invalid steps and metadata are refused before anything is written.

use meshflow_engine::format::erasure::SlotRef;
use meshflow_engine::ledger::record::{read_step, step_entry_hash, FieldValue, StepInput};
use meshflow_engine::ledger::step::StepFields;
use meshflow_engine::log::{Durability, Log, LogOptions};
use meshflow_engine::Error;

fn step(run: &str, n: u64) -> StepInput {
    StepInput {
        fields: StepFields {
            run_id: run.to_string(),
            step_id: format!("{run}-s{n}"),
            node_id: format!("node-{n}"),
            node_kind: "llm".to_string(),
            verdict: "commit".to_string(),
            blocked: false,
            uncertainty: 0.1,
            cost_usd: 0.002,
            tokens_used: 100 + n,
            carbon_gco2: 0.01,
            duration_ms: 12.5,
            timestamp: "2026-06-01T12:00:00+00:00".to_string(),
            fork_origin: None,
        },
        input_task: format!("task {n} for alice@example.com"),
        output_content: format!("output {n}"),
        block_reason: String::new(),
        metadata_json: "{\"tool_calls\": 2}".to_string(),
    }
}

#[test]
fn steps_round_trip_and_chain_per_run() {
    // Proves a step's fields and slots come back intact and entry hashes link per run.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    for n in 0..3 {
        for run in ["run-a", "run-b"] {
            log.append(step(run, n).to_record("acme").unwrap(), Durability::Sync)
                .unwrap();
        }
    }
    let reader = log.reader();
    let mut heads = std::collections::HashMap::new();
    let mut hashes = Vec::new();
    for record in reader.scan(0).unwrap() {
        let record = record.unwrap();
        let stored = read_step(&record).unwrap().unwrap();
        let run = stored.fields.run_id.clone();
        let (prev, index) = heads.get(&run).copied().unwrap_or(([0u8; 32], 0u64));
        let hash = step_entry_hash(&record, &prev, index);
        assert_eq!(stored.fields, step(&run, index).fields);
        assert_eq!(
            stored.slots[0],
            FieldValue::Text(step(&run, index).input_task)
        );
        assert_eq!(
            stored.slots[3],
            FieldValue::Text("{\"tool_calls\": 2}".to_string())
        );
        heads.insert(run, (hash, index + 1));
        hashes.push(hash);
    }
    assert_eq!(hashes.len(), 6);
    let distinct: std::collections::HashSet<_> = hashes.iter().collect();
    assert_eq!(distinct.len(), 6);
}

#[test]
fn erasing_a_step_field_keeps_its_entry_hash_and_shows_it_redacted() {
    // Proves GDPR erasure leaves the per-run chain intact and marks the field as redacted.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(
        step("run-a", 0).to_record("acme").unwrap(),
        Durability::Sync,
    )
    .unwrap();
    let before_record = log.reader().get(0).unwrap().unwrap();
    let before = read_step(&before_record).unwrap().unwrap();
    let before_hash = step_entry_hash(&before_record, &[0; 32], 0);
    log.erase(
        "acme",
        vec![SlotRef {
            offset: 0,
            slot_index: 0,
        }],
        b"gdpr".to_vec(),
    )
    .unwrap();
    let after_record = log.reader().get(0).unwrap().unwrap();
    let after = read_step(&after_record).unwrap().unwrap();
    assert_eq!(before_hash, step_entry_hash(&after_record, &[0; 32], 0));
    match &after.slots[0] {
        FieldValue::Redacted { len, .. } => {
            assert_eq!(*len, step("run-a", 0).input_task.len() as u64)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(after.slots[1], before.slots[1]);
    assert!(
        read_step(&log.reader().get(1).unwrap().unwrap())
            .unwrap()
            .is_none(),
        "erasure record"
    );
}

#[test]
fn invalid_steps_are_refused_before_anything_is_written() {
    // Proves NaN, negative cost, non-object metadata and bad JSON are typed input errors.
    let mut nan = step("r", 0);
    nan.fields.uncertainty = f64::NAN;
    let mut negative = step("r", 0);
    negative.fields.cost_usd = -0.5;
    let mut array = step("r", 0);
    array.metadata_json = "[1, 2]".to_string();
    let mut broken = step("r", 0);
    broken.metadata_json = "{\"a\": ".to_string();
    for bad in [nan, negative, array, broken] {
        assert!(
            matches!(bad.to_record("acme"), Err(Error::InvalidInput { .. })),
            "{bad:?}"
        );
    }
}
