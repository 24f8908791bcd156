//! A flipped bit anywhere in a stored step's frame is caught by the ledger's verification and by
//! the log's, and what is reported points at that step: its offset (which `describe_offset`
//! turns into "step i of run R") or a chain error naming its index and step id. Nothing in a
//! step is outside the checks: header, tenant, descriptors, payload, padding, slot state, salt,
//! content.

use std::path::Path;

use meshflow_engine::format::segment_header::segment_file_name;
use meshflow_engine::ledger::{Ledger, LedgerError, StepRequest};
use meshflow_engine::log::{Durability, LogOptions, LogReader};
use meshflow_engine::Error;

fn request(run: &str, n: u64) -> StepRequest {
    StepRequest {
        run_id: run.to_string(),
        step_id: Some(format!("{run}-s{n}")),
        node_id: format!("node-{n}"),
        node_kind: "llm".to_string(),
        input_task: format!("task {n} for alice@example.com"),
        output_content: format!("output {n}"),
        verdict: "commit".to_string(),
        block_reason: Some("none".to_string()),
        uncertainty: 0.5,
        cost_usd: 0.01,
        tokens_used: 10 + n,
        carbon_gco2: 0.001,
        duration_ms: 3.5,
        metadata_json: Some("{\"k\": 1}".to_string()),
        ..StepRequest::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The offset an error points at, if any.
fn error_offset(e: &Error) -> Option<u64> {
    match e {
        Error::Verify(v) => Some(v.offset),
        Error::Corrupt(c) => c.offset,
        _ => None,
    }
}

/// What verifying the ledger in `dir` reports about the record at `target`: `Ok(true)` when it
/// is named, `Ok(false)` when verification passed, `Err` when it failed elsewhere.
fn ledger_names(dir: &Path, target: u64, step_id: &str) -> Result<bool, String> {
    let ledger = match Ledger::open_read_only(dir, LogOptions::default(), "default") {
        Ok(l) => l,
        Err(LedgerError::Log(e)) if error_offset(&e) == Some(target) => return Ok(true),
        Err(e) => return Err(format!("open failed elsewhere: {e}")),
    };
    match ledger.verify_all() {
        Err(LedgerError::Log(e)) if error_offset(&e) == Some(target) => Ok(true),
        Err(e) => Err(format!("verify failed elsewhere: {e}")),
        Ok((_, chains)) => {
            let named = chains
                .iter()
                .flat_map(|c| &c.errors)
                .any(|e| e.step_id == step_id);
            let other = chains
                .iter()
                .flat_map(|c| &c.errors)
                .find(|e| e.step_id != step_id);
            match other {
                Some(e) => Err(format!("an unrelated step failed: {}", e.message)),
                None => Ok(named),
            }
        }
    }
}

#[test]
fn every_flipped_bit_of_a_step_is_caught_and_points_at_the_step() {
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    {
        let ledger = Ledger::open(&clean, LogOptions::default(), "default")
            .unwrap()
            .0;
        for n in 0..3 {
            for run in ["A", "B"] {
                ledger.append(request(run, n), Durability::Sync).unwrap();
            }
        }
    }
    // The target: run A's step 1 (offset 2), in the middle of the log.
    let target = 2u64;
    let reader = LogReader::open(&clean, LogOptions::default()).unwrap();
    let record = reader.get(target).unwrap().unwrap();
    let position = usize::try_from(record.position()).unwrap();
    let frame_len = record.view().frame_len() as usize;
    let segment = segment_file_name(record.segment_base());
    drop(record);
    drop(reader);
    let original = std::fs::read(clean.join(&segment)).unwrap();

    let mut unnamed = Vec::new();
    for i in 0..frame_len {
        for bit in [0x01u8, 0x80] {
            let dir = base.path().join(format!("t-{i}-{bit}"));
            copy_dir(&clean, &dir);
            let mut bytes = original.clone();
            bytes[position + i] ^= bit;
            std::fs::write(dir.join(&segment), &bytes).unwrap();

            let log = LogReader::open(&dir, LogOptions::default())
                .unwrap()
                .verify();
            match log {
                Err(e) if error_offset(&e) == Some(target) => {}
                other => unnamed.push(format!("byte {i} bit {bit:#x}: log verify gave {other:?}")),
            }
            match ledger_names(&dir, target, "A-s1") {
                Ok(true) => {}
                Ok(false) => unnamed.push(format!("byte {i} bit {bit:#x}: ledger verify passed")),
                Err(why) => unnamed.push(format!("byte {i} bit {bit:#x}: {why}")),
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    assert!(
        unnamed.is_empty(),
        "{} flips not pinned to the step, e.g. {:?}",
        unnamed.len(),
        &unnamed[..unnamed.len().min(8)]
    );
}
