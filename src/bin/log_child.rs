//! A child process for the process-level crash and follower tests.
//!
//! `log_child append DIR COUNT BATCH` appends COUNT test records with `Sync` durability in
//! batches of BATCH and prints `offset hash` for every acknowledged record, flushing each line.
//! `log_child follow DIR COUNT` follows the log from offset 0 and prints `offset hash` for each
//! record it sees until it has seen COUNT.
//! `log_child fixture DIR` writes the committed format fixture `tests/fixtures/v1_log/`: several
//! segments, multi-record batches, records with and without slots, padding everywhere, odd
//! tenants (Unicode, path separators), and one erasure.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use meshflow_engine::format::hex;
use meshflow_engine::log::{Durability, Log, LogReader};
use meshflow_suite::{small_options, test_record};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("append") => append(&args),
        Some("follow") => follow(&args),
        Some("fixture") => fixture(&args),
        _ => Err("usage: log_child append DIR COUNT BATCH | follow DIR COUNT".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("log_child: {e}");
            ExitCode::from(2)
        }
    }
}

fn arg(args: &[String], i: usize) -> Result<&str, String> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {i}"))
}

fn number(args: &[String], i: usize) -> Result<u64, String> {
    arg(args, i)?
        .parse()
        .map_err(|e| format!("argument {i}: {e}"))
}

fn append(args: &[String]) -> Result<(), String> {
    let dir = Path::new(arg(args, 2)?);
    let count = number(args, 3)?;
    let batch = number(args, 4)?.max(1);
    let (log, report) = Log::open(dir, small_options()).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let mut n = report.next_offset;
    let end = n + count;
    while n < end {
        let records: Vec<_> = (n..(n + batch).min(end)).map(test_record).collect();
        let receipts = log
            .append_batch(records, Durability::Sync)
            .map_err(|e| e.to_string())?;
        for r in &receipts {
            writeln!(out, "{} {}", r.offset, hex(&r.hash)).map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
        n += receipts.len() as u64;
    }
    log.close().map_err(|e| e.to_string())
}

fn follow(args: &[String]) -> Result<(), String> {
    let dir = Path::new(arg(args, 2)?);
    let count = number(args, 3)?;
    let reader = loop {
        match LogReader::open(dir, small_options()) {
            Ok(r) if r.snapshot().is_ok() => break r,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let mut follower = reader.follow(0);
    let mut out = std::io::stdout().lock();
    let mut seen = 0;
    while seen < count {
        let Some(record) = follower
            .next_timeout(Duration::from_secs(30))
            .map_err(|e| e.to_string())?
        else {
            return Err("timed out waiting for records".to_string());
        };
        writeln!(out, "{} {}", record.offset(), hex(&record.view().hash()))
            .map_err(|e| e.to_string())?;
        seen += 1;
    }
    out.flush().map_err(|e| e.to_string())
}

fn fixture(args: &[String]) -> Result<(), String> {
    use meshflow_engine::format::erasure::SlotRef;
    use meshflow_engine::log::RecordInput;
    let dir = Path::new(arg(args, 2)?);
    if dir.exists() {
        return Err(format!("{} exists", dir.display()));
    }
    let mut options = small_options();
    options.segment_bytes_max = 8 * 1024;
    options.limits.batch_bytes_max = 4 * 1024;
    options.limits.record_bytes_max = 4 * 1024;
    options.index_interval_bytes = 512;
    let (log, _) = Log::open(dir, options).map_err(|e| e.to_string())?;
    let tenants = ["default", "t\u{e9}nant/../x", "a"];
    let mut n = 0u64;
    for round in 0..40u64 {
        let tenant = tenants[(round % 3) as usize];
        let batch: Vec<RecordInput> = (0..(round % 4) + 1)
            .map(|i| {
                n += 1;
                let payload = format!("{{\"n\":{n},\"round\":{round},\"i\":{i}}}").into_bytes();
                let mut r = RecordInput::new(0x0200 + (n % 3) as u16, tenant, payload);
                for s in 0..(n % 3) {
                    r = r.with_slot(
                        format!("slot-{n}-{s}-{}", "z".repeat((n * 7 % 11) as usize)).into_bytes(),
                    );
                }
                r
            })
            .collect();
        log.append_batch(batch, Durability::Sync)
            .map_err(|e| e.to_string())?;
    }
    log.erase(
        "default",
        vec![SlotRef {
            offset: 1,
            slot_index: 0,
        }],
        b"{\"why\":\"fixture\"}".to_vec(),
    )
    .map_err(|e| e.to_string())?;
    log.close().map_err(|e| e.to_string())?;
    Ok(())
}
