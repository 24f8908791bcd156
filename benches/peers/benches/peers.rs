//! The peer comparison: meshflow and five other stores on the canonical workload, in one run.
//! Prints one JSON object per (peer, phase) on stdout with the fields of `meshflow bench`'s
//! lines (`peer`, `phase`, `records`, `secs`, `rate`, `unit`, `p50_us`, `p99_us`,
//! `rss_peak_mib`), in that order; progress and errors go to stderr.
//!
//! ```sh
//! cargo bench -p meshflow-peers --bench peers -- \
//!     --peers meshflow,ledger,handwritten,sqlite,sled,redb,fjall --phases A,B,B64,C,D,E \
//!     --runs 1000 --steps 200 --payload 256 [--sync-records N] [--dir DIR]
//! ```
//!
//! `--sync-records N` sets the records of B and B<W> (default 2,000 for B and 64 × 200 for
//! B<W>, at most R × S). Without `--dir` the data goes to a fresh temporary directory removed
//! afterwards; with it, each peer's data is left in `DIR/<peer>/`. Unknown flags (such as the
//! `--bench` cargo adds) are ignored. Each peer runs in a child process of its own (this program
//! again) unless `--in-process` is given.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use meshflow_peers::{peer, Peer, PhaseResult, Workload, PEER_NAMES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    A,
    B,
    BW(u64),
    C,
    D,
    E,
}

#[derive(Debug)]
struct Args {
    peers: Vec<String>,
    phases: Vec<Phase>,
    workload: Workload,
    sync_records: Option<u64>,
    dir: Option<PathBuf>,
    in_process: bool,
}

fn parse_phases(text: &str) -> Result<Vec<Phase>> {
    let mut phases = Vec::new();
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        phases.push(match name {
            "A" => Phase::A,
            "B" => Phase::B,
            "C" => Phase::C,
            "D" => Phase::D,
            "E" => Phase::E,
            other => match other.strip_prefix('B').map(str::parse::<u64>) {
                Some(Ok(w)) if w > 0 => Phase::BW(w),
                _ => bail!("unknown phase '{other}' (A, B, B<W>, C, D, E)"),
            },
        });
    }
    if phases.is_empty() {
        bail!("no phases given");
    }
    Ok(phases)
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args> {
    let mut parsed = Args {
        peers: PEER_NAMES.iter().map(|s| (*s).to_string()).collect(),
        phases: vec![Phase::A, Phase::B, Phase::BW(64), Phase::C, Phase::E],
        workload: Workload::default(),
        sync_records: None,
        dir: None,
        in_process: false,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg.clone(), None),
        };
        if flag == "--in-process" {
            parsed.in_process = true;
            continue;
        }
        let known = [
            "--peers",
            "--phases",
            "--runs",
            "--steps",
            "--payload",
            "--sync-records",
            "--dir",
        ];
        if !known.contains(&flag.as_str()) {
            // Unknown flags, such as the `--bench` cargo passes, are ignored.
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| anyhow!("{flag} needs a value"))?,
        };
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("{flag}: '{value}' is not a number"))
        };
        match flag.as_str() {
            "--peers" => {
                parsed.peers = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "--phases" => parsed.phases = parse_phases(&value)?,
            "--runs" => parsed.workload.runs = number()?,
            "--steps" => parsed.workload.steps = number()?,
            "--payload" => parsed.workload.payload_bytes = number()?,
            "--sync-records" => parsed.sync_records = Some(number()?),
            "--dir" => parsed.dir = Some(PathBuf::from(&value)),
            _ => {}
        }
    }
    if parsed.workload.runs == 0 || parsed.workload.steps == 0 {
        bail!("--runs and --steps must be positive");
    }
    if parsed.peers.is_empty() {
        bail!("no peers given");
    }
    Ok(parsed)
}

fn emit(peer: &str, result: &PhaseResult) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", result.json_line(peer))?;
    out.flush()?;
    Ok(())
}

fn remove_if_exists(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Runs every requested phase of one peer under `root/<peer>/`.
fn run_peer(peer: &dyn Peer, root: &Path, args: &Args) -> Result<()> {
    let peer_root = root.join(peer.name());
    remove_if_exists(&peer_root)?;
    std::fs::create_dir_all(&peer_root)?;
    let a_dir = peer_root.join("phase-a");
    let total = args.workload.record_count();
    let needs_a = args
        .phases
        .iter()
        .any(|p| matches!(p, Phase::C | Phase::D | Phase::E));
    if needs_a && !args.phases.contains(&Phase::A) {
        eprintln!(
            "{}: writing phase A's data for C/E (not reported)",
            peer.name()
        );
        peer.phase_a(&a_dir, &args.workload)?;
    }
    for phase in &args.phases {
        meshflow_engine::bench::reset_rss_peak();
        let started = Instant::now();
        let result = match phase {
            Phase::A => {
                remove_if_exists(&a_dir)?;
                peer.phase_a(&a_dir, &args.workload)?
            }
            Phase::B => {
                let dir = peer_root.join("phase-b");
                remove_if_exists(&dir)?;
                let records = args.sync_records.unwrap_or(2000).min(total);
                peer.phase_b(&dir, &args.workload, 1, records)?
            }
            Phase::BW(writers) => {
                let dir = peer_root.join(format!("phase-b{writers}"));
                remove_if_exists(&dir)?;
                let records = args.sync_records.unwrap_or(64 * 200).min(total);
                peer.phase_b(&dir, &args.workload, *writers, records)?
            }
            Phase::C => peer.phase_c(&a_dir)?,
            Phase::E => peer.phase_e(&a_dir)?,
            Phase::D => match peer.phase_d(&a_dir, &args.workload)? {
                Some(result) => result,
                None => {
                    eprintln!("{}: no phase D (no notion of runs)", peer.name());
                    continue;
                }
            },
        };
        eprintln!(
            "{}: phase {} done in {:.1}s",
            peer.name(),
            result.phase,
            started.elapsed().as_secs_f64()
        );
        emit(peer.name(), &result)?;
    }
    Ok(())
}

/// Runs one peer in a child process (this program again, with `--peers NAME --dir ROOT` added:
/// later flags win), so that each peer starts from a fresh heap and its `rss_peak_mib` is its
/// own, not the memory an earlier peer's allocator kept.
fn run_peer_process(name: &str, root: &Path, raw_args: &[String]) -> Result<()> {
    let exe = std::env::current_exe().context("finding this program to run a peer")?;
    let status = std::process::Command::new(exe)
        .args(raw_args)
        .arg("--peers")
        .arg(name)
        .arg("--dir")
        .arg(root)
        .arg("--in-process")
        .status()
        .with_context(|| format!("running peer {name}"))?;
    if !status.success() {
        bail!("peer {name} failed ({status})");
    }
    Ok(())
}

fn run() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let peers = args
        .peers
        .iter()
        .map(|name| peer(name))
        .collect::<Result<Vec<_>>>()?;
    let temp;
    let root = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("meshflow-peers-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    eprintln!(
        "workload: R={} S={} P={} ({} records); data under {}",
        args.workload.runs,
        args.workload.steps,
        args.workload.payload_bytes,
        args.workload.record_count(),
        root.display()
    );
    let raw_args: Vec<String> = std::env::args().skip(1).collect();
    for peer in &peers {
        if args.in_process || peers.len() == 1 {
            run_peer(peer.as_ref(), &root, &args)
                .with_context(|| format!("peer {}", peer.name()))?;
        } else {
            run_peer_process(peer.name(), &root, &raw_args)?;
        }
        if args.dir.is_none() {
            // Free the disk space before the next peer runs.
            remove_if_exists(&root.join(peer.name()))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
