//! `meshflow bench`: the canonical workload of SPEC.md §9 through the ledger (default) or on the
//! bare log. Prints exactly one JSON object per phase on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use meshflow_engine::bench::{self, PhaseResult};
use meshflow_engine::workload::Workload;

use crate::args::{BenchArgs, UsageError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    A,
    B,
    BW(u64),
    C,
    D,
    E,
    SW(u64),
    /// Policy evaluation over 1,000 rules.
    P,
    /// Rebuilding every governance view from scratch.
    G,
    /// Reopening with checkpoints: the canonical log (R) and 10× it (R10).
    R(u64),
    /// Forking a 10,000-step run at −1.
    F,
    /// Anonymizing one run of phase A's log.
    X,
    /// Exporting a compliance snapshot of 100,000 governance records, against serde_json and
    /// the zip crate directly.
    Z,
}

fn parse_phases(text: &str, writers: Option<u64>) -> Result<Vec<Phase>> {
    let mut phases = Vec::new();
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let phase = match name {
            "A" => Phase::A,
            "B" => Phase::B,
            "C" => Phase::C,
            "E" => Phase::E,
            "D" => Phase::D,
            "P" => Phase::P,
            "G" => Phase::G,
            "R" => Phase::R(1),
            "R10" => Phase::R(10),
            "F" => Phase::F,
            "X" => Phase::X,
            "Z" => Phase::Z,
            other if other.starts_with('S') => match other[1..].parse::<u64>() {
                Ok(w) if w > 0 => Phase::SW(writers.unwrap_or(w)),
                _ => bail!(UsageError(format!(
                    "unknown phase '{other}' (A, B, B<W>, C, D, E, S<W>, P, G, R, R10, F, X)"
                ))),
            },
            other => match other.strip_prefix('B').map(str::parse::<u64>) {
                Some(Ok(w)) if w > 0 => Phase::BW(writers.unwrap_or(w)),
                _ => bail!(UsageError(format!(
                    "unknown phase '{other}' (A, B, B<W>, C, D, E, S<W>, P, G, R, R10, F, X)"
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

fn emit(result: &PhaseResult) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", result.json_line("meshflow"))?;
    out.flush()?;
    Ok(())
}

/// Runs the requested phases.
pub fn run(args: &BenchArgs) -> Result<u8> {
    let ledger = match args.layer.as_str() {
        "ledger" => true,
        "log" => false,
        other => bail!(UsageError(format!("unknown --layer {other} (ledger, log)"))),
    };
    if args.runs == 0 || args.steps == 0 {
        bail!(UsageError(
            "--runs and --steps must be positive".to_string()
        ));
    }
    let default_phases = if ledger {
        "A,B,B64,C,D,E"
    } else {
        "A,B,B64,C,E"
    };
    let phases = parse_phases(
        args.phases.as_deref().unwrap_or(default_phases),
        args.writers,
    )?;
    if !ledger
        && phases.iter().any(|p| {
            matches!(
                p,
                Phase::D | Phase::SW(_) | Phase::P | Phase::G | Phase::R(_)
            )
        })
    {
        bail!(UsageError(
            "phases D, S<W>, P, G, R, R10, F and X need --layer ledger".to_string()
        ));
    }
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
    let need_a_log = phases
        .iter()
        .any(|p| matches!(p, Phase::C | Phase::D | Phase::E | Phase::X));
    // With --dir, a phase-A log left by an earlier run (same layer and workload) is reused, so
    // C, D and E can be measured (or profiled) on their own.
    let reuse = args.dir.is_some() && a_dir.join("HEAD").exists();
    if need_a_log && !phases.contains(&Phase::A) && !reuse {
        remove_if_exists(&a_dir)?;
        if ledger {
            bench::ledger::phase_a(&a_dir, &workload)?;
        } else {
            bench::phase_a(&a_dir, &workload)?;
        }
    }
    for phase in &phases {
        bench::reset_rss_peak();
        run_phase(phase, &root, &a_dir, &workload, args, ledger)?;
    }
    Ok(0)
}

fn run_phase(
    phase: &Phase,
    root: &Path,
    a_dir: &Path,
    workload: &Workload,
    args: &BenchArgs,
    ledger: bool,
) -> Result<()> {
    use bench::ledger as lg;
    let total = workload.record_count();
    let result = match phase {
        Phase::A => {
            remove_if_exists(a_dir)?;
            if ledger {
                lg::phase_a(a_dir, workload)?
            } else {
                bench::phase_a(a_dir, workload)?
            }
        }
        Phase::B | Phase::BW(_) => {
            let (writers, name, default) = match phase {
                Phase::BW(w) => (*w, format!("phase-b{w}"), 64 * 200),
                _ => (1, "phase-b".to_string(), 2000),
            };
            let dir = root.join(name);
            remove_if_exists(&dir)?;
            let records = args.sync_records.unwrap_or(default).min(total);
            if ledger {
                lg::phase_b(&dir, workload, writers, records)?
            } else {
                bench::phase_b(&dir, workload, writers, records)?
            }
        }
        Phase::C if ledger => lg::phase_c(a_dir)?,
        Phase::C => bench::phase_c(a_dir)?,
        Phase::D if ledger => lg::phase_d(a_dir, workload)?,
        Phase::D => bail!(UsageError("phase D needs --layer ledger".to_string())),
        Phase::E if ledger => lg::phase_e(a_dir, 7)?,
        Phase::E => bench::phase_e(a_dir, 7)?,
        Phase::F => {
            let dir = root.join("phase-f");
            remove_if_exists(&dir)?;
            let r = bench::operators::phase_f(&dir, 10_000)?;
            remove_if_exists(&dir)?;
            r
        }
        Phase::X => {
            let (r, log_bytes) = bench::operators::phase_x(a_dir, workload)?;
            emit(&r)?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}",
                serde_json::json!({"peer": "meshflow", "phase": "X-log", "log_bytes": log_bytes,
                                   "erased_bytes": r.records,
                                   "erased_fraction": r.records as f64 / log_bytes.max(1) as f64})
            )?;
            return Ok(());
        }
        Phase::Z => {
            let dir = root.join("phase-z");
            remove_if_exists(&dir)?;
            let m = bench::snapshot::phase_z(&dir, 100_000)?;
            // The bar's memory is that of `meshflow snapshot export` on this log, alone in
            // its process (this one holds the setup's memory).
            let out = std::process::Command::new(std::env::current_exe()?)
                .arg("--json")
                .arg("--db")
                .arg(&dir)
                .args(["snapshot", "export", "--no-record", "--force", "--output"])
                .arg(dir.join("cli.zip"))
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "snapshot export failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let started_cli: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            remove_if_exists(&dir)?;
            emit(&m.export)?;
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "peer": "meshflow", "phase": "Z-baseline",
                    "records": m.export.records,
                    "export_secs": m.export.secs,
                    "baseline_secs": m.baseline_secs,
                    "ratio": m.export.secs / m.baseline_secs.max(f64::MIN_POSITIVE),
                    "peak_rss_mib_in_bench_process": mib(m.export_peak_rss),
                    "rss_mib_before_in_bench_process": mib(m.before_rss),
                    "peak_rss_mib_of_cli_export_process":
                        mib(started_cli["peak_rss_bytes"].as_u64().unwrap_or(0)),
                    "zip_bytes": m.zip_bytes,
                })
            )?;
            return Ok(());
        }
        Phase::P => bench::governance::phase_p(200_000),
        Phase::G => {
            let dir = root.join("phase-g");
            remove_if_exists(&dir)?;
            bench::governance::phase_g(&dir, total.min(200_000))?
        }
        Phase::R(scale) => {
            let dir = root.join(format!("phase-r{scale}"));
            remove_if_exists(&dir)?;
            let results = bench::governance::phase_r(&dir, workload, *scale, 7)?;
            remove_if_exists(&dir)?;
            for r in &results {
                emit(r)?;
            }
            return Ok(());
        }
        Phase::SW(writers) => {
            let dir = root.join(format!("phase-s{writers}"));
            remove_if_exists(&dir)?;
            let records = args.sync_records.unwrap_or(64 * 200).min(total);
            bench::service::phase_s(&dir, workload, *writers, records)?
        }
    };
    emit(&result)
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
