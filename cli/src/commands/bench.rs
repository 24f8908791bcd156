//! `meshflow bench`: the canonical workload of SPEC.md §9 on the log layer. Prints exactly one
//! JSON object per phase on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use meshflow_engine::log::{Durability, Log, LogOptions};
use meshflow_engine::workload::Workload;
use serde_json::json;

use crate::args::{BenchArgs, UsageError};

/// Outstanding pipelined submissions before the appender collects receipts.
const PIPELINE_DEPTH: usize = 4096;
/// Phase A makes the log durable every this many records.
const SYNC_EVERY: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    A,
    B,
    BW(u64),
    C,
    E,
}

fn parse_phases(text: &str, writers: Option<u64>) -> Result<Vec<Phase>> {
    let mut phases = Vec::new();
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let phase = match name {
            "A" => Phase::A,
            "B" => Phase::B,
            "C" => Phase::C,
            "E" => Phase::E,
            "D" => bail!(UsageError(
                "phase D needs --layer ledger, which arrives with the ledger".to_string()
            )),
            other => match other.strip_prefix('B').map(str::parse::<u64>) {
                Some(Ok(w)) if w > 0 => Phase::BW(writers.unwrap_or(w)),
                _ => bail!(UsageError(format!(
                    "unknown phase '{other}' (A, B, B<W>, C, E)"
                ))),
            },
        };
        phases.push(phase);
    }
    if phases.is_empty() {
        bail!(UsageError("no phases given".to_string()));
    }
    Ok(phases)
}

/// The peak resident set size of this process since the last reset, in MiB (Linux).
fn rss_peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn reset_rss_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn percentile_us(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).map(|d| d.as_secs_f64() * 1e6)
}

fn emit(
    phase: &str,
    records: u64,
    secs: f64,
    unit: &str,
    latencies: &mut [Duration],
) -> Result<()> {
    latencies.sort_unstable();
    let rate = if unit == "reopens/s" {
        1.0 / secs
    } else {
        records as f64 / secs
    };
    let value = json!({
        "peer": "meshflow",
        "phase": phase,
        "records": records,
        "secs": secs,
        "rate": rate,
        "unit": unit,
        "p50_us": percentile_us(latencies, 0.50),
        "p99_us": percentile_us(latencies, 0.99),
        "rss_peak_mib": rss_peak_mib(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()?;
    Ok(())
}

/// Phase A: one pipelined appender, buffered appends, a durable sync every 1,000 records.
fn phase_a(dir: &Path, workload: &Workload) -> Result<(f64, Vec<Duration>)> {
    let (log, _) = Log::open(dir, LogOptions::default())?;
    let count = workload.record_count();
    let mut sync_latencies = Vec::new();
    let started = Instant::now();
    {
        let mut appender = log.appender();
        for i in 0..count {
            appender.submit(workload.record(i), Durability::Buffered)?;
            while appender.outstanding() > PIPELINE_DEPTH {
                appender.next_receipts()?;
            }
            if (i + 1) % SYNC_EVERY == 0 || i + 1 == count {
                let t = Instant::now();
                log.sync()?;
                sync_latencies.push(t.elapsed());
            }
        }
        while appender.outstanding() > 0 {
            appender.next_receipts()?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    log.close()?;
    Ok((secs, sync_latencies))
}

/// Phases B and B<W>: `writers` threads, each append durable on return.
fn phase_b(
    dir: &Path,
    workload: &Workload,
    writers: u64,
    records: u64,
) -> Result<(f64, Vec<Duration>)> {
    let (log, _) = Log::open(dir, LogOptions::default())?;
    let per_writer = records / writers;
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| -> Result<Vec<Duration>> {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let log = &log;
                scope.spawn(move || -> Result<Vec<Duration>> {
                    let mut lat = Vec::with_capacity(per_writer as usize);
                    for i in 0..per_writer {
                        let record = workload.record(i * writers + w);
                        let t = Instant::now();
                        log.append(record, Durability::Sync)?;
                        lat.push(t.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a bench thread panicked"))??,
            );
        }
        Ok(all)
    })?;
    let secs = started.elapsed().as_secs_f64();
    log.close()?;
    Ok((secs, latencies))
}

/// Runs the requested phases.
pub fn run(args: &BenchArgs) -> Result<u8> {
    if args.layer != "log" {
        bail!(UsageError(format!(
            "--layer {} is not available yet (log)",
            args.layer
        )));
    }
    if args.runs == 0 || args.steps == 0 {
        bail!(UsageError(
            "--runs and --steps must be positive".to_string()
        ));
    }
    let phases = parse_phases(&args.phases, args.writers)?;
    let workload = Workload {
        runs: args.runs,
        steps: args.steps,
        payload_bytes: args.payload,
    };
    let temp;
    let root: PathBuf = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = TempDir::new()?;
            temp.path.clone()
        }
    };
    let a_dir = root.join("phase-a");
    let need_a_log = phases.iter().any(|p| matches!(p, Phase::C | Phase::E));
    if need_a_log && !phases.contains(&Phase::A) {
        remove_if_exists(&a_dir)?;
        phase_a(&a_dir, &workload)?;
    }
    for phase in &phases {
        reset_rss_peak();
        run_phase(phase, &root, &a_dir, &workload, args)?;
    }
    Ok(0)
}

fn run_phase(
    phase: &Phase,
    root: &Path,
    a_dir: &Path,
    workload: &Workload,
    args: &BenchArgs,
) -> Result<()> {
    let total = workload.record_count();
    match phase {
        Phase::A => {
            remove_if_exists(a_dir)?;
            let (secs, mut lat) = phase_a(a_dir, workload)?;
            emit("A", total, secs, "records/s", &mut lat)
        }
        Phase::B => {
            let dir = root.join("phase-b");
            remove_if_exists(&dir)?;
            let records = args.sync_records.unwrap_or(2000).min(total);
            let (secs, mut lat) = phase_b(&dir, workload, 1, records)?;
            emit("B", records, secs, "records/s", &mut lat)
        }
        Phase::BW(writers) => {
            let dir = root.join(format!("phase-b{writers}"));
            remove_if_exists(&dir)?;
            let records = args.sync_records.unwrap_or(64 * 200).min(total);
            let records = records - records % writers;
            let (secs, mut lat) = phase_b(&dir, workload, *writers, records)?;
            emit(&format!("B{writers}"), records, secs, "records/s", &mut lat)
        }
        Phase::C => {
            let reader = meshflow_engine::log::LogReader::open(a_dir, LogOptions::default())?;
            let started = Instant::now();
            let report = reader.verify()?;
            let secs = started.elapsed().as_secs_f64();
            emit("C", report.record_count, secs, "records/s", &mut [])
        }
        Phase::E => {
            let mut times = Vec::new();
            for _ in 0..7 {
                let started = Instant::now();
                let (log, report) = Log::open(a_dir, LogOptions::default())?;
                times.push(started.elapsed());
                if !report.clean {
                    bail!("phase E expected a cleanly closed log");
                }
                log.close()?;
            }
            times.sort_unstable();
            let median = times.get(times.len() / 2).copied().unwrap_or_default();
            emit("E", total, median.as_secs_f64(), "reopens/s", &mut times)
        }
    }
}

fn remove_if_exists(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

/// A temporary directory removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<TempDir> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("meshflow-bench-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
