//! Process-level crash and follower tests with real files and real processes.
//!
//! A child appends batches with `Sync` durability and prints every acknowledged offset and
//! hash; it is killed with SIGKILL at a random point, many times in a bounded loop. After each
//! kill the log is reopened: it must be a prefix holding every acknowledged record with its
//! acknowledged hash, no half batch, and verify. A second child follows the log from another
//! process while this process appends; it must see exactly the durable records, in order.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use meshflow_engine::format::hex;
use meshflow_engine::log::{Durability, Log};
use meshflow_suite::{record_number, small_options, test_record};

const CHILD: &str = env!("CARGO_BIN_EXE_log_child");
const BATCH: u64 = 4;

/// A small deterministic generator (xorshift) for kill delays.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_mid_append_never_loses_an_acknowledged_record() {
    // Proves durability of acknowledged Sync appends across SIGKILL, 40 times.
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for iteration in 0..40 {
        let mut child = Command::new(CHILD)
            .args([
                "append",
                dir.path().to_str().unwrap(),
                "100000",
                &BATCH.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + next_random(&mut rng) % 60));
        child.kill().unwrap();
        let stdout = child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let (offset, hash) = line.split_once(' ').unwrap();
            acked.push((offset.parse().unwrap(), hash.to_string()));
        }
        child.wait().unwrap();
        let (log, _report) = Log::open(dir.path(), small_options()).unwrap();
        let reader = log.reader();
        let report = reader
            .verify()
            .unwrap_or_else(|e| panic!("iteration {iteration}: {e}"));
        assert_eq!(
            report.record_count % BATCH,
            0,
            "iteration {iteration}: half batch"
        );
        let mut present = Vec::new();
        for record in reader.scan(0).unwrap() {
            let record = record.unwrap();
            assert_eq!(
                record_number(record.view().payload()),
                Some(record.offset())
            );
            present.push(hex(&record.view().hash()));
        }
        for (offset, hash) in &acked {
            let found = present
                .get(*offset as usize)
                .unwrap_or_else(|| panic!("acked {offset} lost"));
            assert_eq!(found, hash, "offset {offset}");
        }
        log.close().unwrap();
    }
    assert!(
        acked.len() > 40,
        "children acknowledged appends ({})",
        acked.len()
    );
}

#[test]
fn follower_in_another_process_sees_only_durable_records() {
    // Proves a cross-process follower receives every record, in order, with the writer's hash.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), small_options()).unwrap();
    let count = 300u64;
    let child = Command::new(CHILD)
        .args(["follow", dir.path().to_str().unwrap(), &count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut receipts = Vec::new();
    for n in 0..count {
        let durability = if n % 3 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        receipts.push(log.append(test_record(n), durability).unwrap());
        if n % 50 == 0 {
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    log.sync().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len() as u64, count);
    for (line, receipt) in lines.iter().zip(&receipts) {
        assert_eq!(line, &format!("{} {}", receipt.offset, hex(&receipt.hash)));
    }
}
