//! `meshflow demo`: simulated agents append step records concurrently into a fresh directory,
//! one step's personal data is erased, the log is closed, reopened, verified, and summarised.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use meshflow_engine::format::erasure::SlotRef;
use meshflow_engine::log::{Durability, Log, LogOptions};
use meshflow_engine::workload::Workload;
use serde_json::json;

use crate::args::{Cli, DemoArgs};

fn fresh_dir(args: &DemoArgs) -> Result<PathBuf> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            std::env::temp_dir().join(format!("meshflow-demo-{stamp}-{}", std::process::id()))
        }
    };
    if dir.exists() {
        bail!(crate::args::UsageError(format!(
            "{} already exists; the demo needs a fresh directory",
            dir.display()
        )));
    }
    Ok(dir)
}

/// One thread per simulated agent, each appending its steps durably (group commit shares the
/// fsyncs between them).
fn run_agents(log: &Log, workload: &Workload) -> Result<()> {
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..workload.runs)
            .map(|agent| {
                scope.spawn(move || -> Result<()> {
                    for step in 0..workload.steps {
                        let record = workload.record(step * workload.runs + agent);
                        log.append(record, Durability::Sync)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("an agent thread panicked"))??;
        }
        Ok(())
    })
}

/// Runs the demo.
pub fn run(cli: &Cli, args: &DemoArgs) -> Result<u8> {
    if args.agents == 0 || args.steps == 0 {
        bail!(crate::args::UsageError(
            "--agents and --steps must be positive".to_string()
        ));
    }
    let dir = fresh_dir(args)?;
    let mut out = std::io::stdout().lock();
    if !cli.json {
        writeln!(out, "demo directory: {}", dir.display())?;
    }
    let (log, _) = Log::open(&dir, LogOptions::default())?;
    let workload = Workload {
        runs: args.agents,
        steps: args.steps,
        payload_bytes: 256,
    };
    let started = Instant::now();
    run_agents(&log, &workload)?;
    let append_secs = started.elapsed().as_secs_f64();
    let appended = workload.record_count();
    let erasure = log.erase(
        "default",
        vec![SlotRef {
            offset: 0,
            slot_index: 0,
        }],
        b"{\"reason\":\"demo erasure\"}".to_vec(),
    )?;
    log.close().context("closing the demo log")?;
    let (log, recovery) = Log::open(&dir, LogOptions::default())?;
    let report = log.reader().verify()?;
    log.close()?;
    let summary = json!({
        "dir": dir.display().to_string(),
        "agents": args.agents,
        "records_appended": appended,
        "append_secs": append_secs,
        "appends_per_sec": appended as f64 / append_secs,
        "erasure_offset": erasure.offset,
        "reopened_cleanly": recovery.clean,
        "records": report.record_count,
        "segments": report.segment_count,
        "slots_live": report.slots_live,
        "slots_erased": report.slots_erased,
        "head_hash": report.head_hash,
        "valid": true,
    });
    if cli.json {
        writeln!(out, "{summary}")?;
    } else {
        print_human(&mut out, &summary)?;
    }
    Ok(0)
}

fn print_human(out: &mut impl Write, s: &serde_json::Value) -> Result<()> {
    writeln!(
        out,
        "{} agents appended {} durable step records in {:.2}s ({:.0}/s)",
        s["agents"],
        s["records_appended"],
        s["append_secs"].as_f64().unwrap_or(0.0),
        s["appends_per_sec"].as_f64().unwrap_or(0.0)
    )?;
    writeln!(
        out,
        "erased the input of record 0 (erasure record at offset {})",
        s["erasure_offset"]
    )?;
    let clean = s["reopened_cleanly"].as_bool().unwrap_or(false);
    writeln!(
        out,
        "reopened: {}",
        if clean {
            "clean, O(1) from HEAD"
        } else {
            "recovered"
        }
    )?;
    writeln!(
        out,
        "LOG VALID: {} records, {} segments, {} live slots, {} erased",
        s["records"], s["segments"], s["slots_live"], s["slots_erased"]
    )?;
    writeln!(out, "head hash: {}", s["head_hash"].as_str().unwrap_or(""))?;
    writeln!(
        out,
        "inspect it: meshflow --db {} log stats",
        s["dir"].as_str().unwrap_or("")
    )?;
    Ok(())
}
