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

/// Unmounts (lazily) on drop.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_real_full_tmpfs_fails_appends_with_no_space_and_recovers_when_space_returns() {
    // Proves, on a 4 MiB tmpfs (mounted by the test when it runs as root; skipped with a
    // message otherwise): ledger appends fail with a "no space" error, every acknowledged step
    // is there after a reopen and every chain verifies, at most the failed batch beyond them,
    // and once a file is removed appends work again.
    use meshflow_engine::ledger::{Ledger, StepRequest};
    use meshflow_engine::log::LogOptions;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a tmpfs needs root (the FaultyStorage test above still runs)");
        return;
    }
    let _guard = Mounted(mnt.clone());
    // A filler file to remove later, so space can return.
    std::fs::write(mnt.join("filler"), vec![7u8; 512 << 10]).unwrap();
    let db = mnt.join("db");
    let step = |n: u64| StepRequest {
        run_id: "r".to_string(),
        node_id: format!("n{n}"),
        node_kind: "llm".to_string(),
        input_task: "x".repeat(2000),
        output_content: "y".repeat(2000),
        verdict: "commit".to_string(),
        ..StepRequest::default()
    };
    const BATCH: u64 = 10;
    let mut acked = 0u64;
    let error = {
        let (ledger, _) = Ledger::open(&db, LogOptions::default(), "default").unwrap();
        loop {
            let batch: Vec<StepRequest> = (acked..acked + BATCH).map(step).collect();
            match ledger.append_batch(batch, Durability::Sync) {
                Ok(r) => acked += r.len() as u64,
                Err(e) => break e,
            }
            assert!(acked < 10_000, "the tmpfs never filled");
        }
    };
    assert!(error.to_string().contains("no space"), "{error}");
    assert!(acked > 0);
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let (ledger, _) = Ledger::open(&db, LogOptions::default(), "default").unwrap();
    let present = ledger.get_run("r").unwrap().len() as u64;
    assert!(
        present == acked || present == acked + BATCH,
        "{present} steps present, {acked} acknowledged"
    );
    let (log_report, chains) = ledger.verify_all().unwrap();
    assert!(chains.iter().all(|c| c.valid));
    assert!(log_report.record_count >= present);
    let r = ledger.append(step(present), Durability::Sync).unwrap();
    assert_eq!(r.step_index, present);
}
