//! Soak (issue 8, SPEC §10): `meshflow serve` takes appends at full speed from two writer
//! threads for a bounded time while other processes read in loops (`log tail --follow`,
//! `replay`, `audit export` + `audit verify --file`, `audit verify --all`). Then the service is
//! killed with SIGKILL. Every record a reader saw is in the recovered log with the same hash
//! (no reader ever saw a record that was not durable), every export a reader took verifies,
//! every acknowledged step is there, and the service's memory grew by less than 1 KiB per
//! step appended in the second half (the runs index; nothing else piles up).
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshflow_engine::ledger::Ledger;
use meshflow_engine::log::LogOptions;
use meshflow_engine::service::client::Client;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshflow");
const SOAK: Duration = Duration::from_secs(8);

fn meshflow(db: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--db").arg(db).args(args).env_remove("MESHFLOW_DB");
    c
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn line(run: &str, n: u64) -> String {
    serde_json::json!({
        "run_id": run, "node_id": "n", "node_kind": "llm", "input_task": format!("in {n}"),
        "output_content": format!("out {n}"), "verdict": "commit", "blocked": false,
        "uncertainty": 0.1, "cost_usd": 0.01, "tokens_used": 5, "carbon_gco2": 0.1,
        "duration_ms": 3.0,
    })
    .to_string()
}

#[test]
fn readers_in_other_processes_see_only_durable_verified_records_under_full_load() {
    // Proves the soak's claims (see the file's comment) for an 8-second run.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut serve = meshflow_suite::start_serve(BIN, &db);
    let pid = serve.id();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();

    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (db, stop, acked) = (db.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut client = Client::discover(&db).expect("serve is up");
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let run = format!("run-{w}-{}", n / 500);
                    let lines: Vec<String> = (n..n + 50).map(|i| line(&run, i)).collect();
                    let receipts = client.append("default", &lines, true).expect("append");
                    let mut a = acked.lock().unwrap();
                    for r in receipts {
                        a.push((r.run_id, r.step_index, r.offset));
                    }
                    n += 50;
                }
            })
        })
        .collect();

    let mut tail = meshflow(&db, &["--json", "log", "tail", "--from", "0", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tail_out = tail.stdout.take().unwrap();
    let tailed = std::thread::spawn(move || {
        let mut seen: Vec<Value> = Vec::new();
        for l in BufReader::new(tail_out).lines() {
            let Ok(l) = l else { break };
            seen.push(serde_json::from_str(&l).expect("tail prints JSON lines"));
        }
        seen
    });

    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (db, stop, dir) = (db.clone(), stop.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let export = dir.join(format!("export-{r}-{rounds}.json"));
                    let checks: Vec<Vec<String>> = if r == 0 {
                        vec![
                            vec!["replay".into(), "run-0-0".into(), "--json".into()],
                            vec!["audit".into(), "verify".into(), "--all".into()],
                        ]
                    } else {
                        vec![
                            vec![
                                "audit".into(),
                                "export".into(),
                                "--out".into(),
                                export.to_string_lossy().into_owned(),
                            ],
                            vec![
                                "audit".into(),
                                "verify".into(),
                                "--file".into(),
                                export.to_string_lossy().into_owned(),
                            ],
                        ]
                    };
                    for args in checks {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let out = meshflow(&db, &args).output().unwrap();
                        let missing_run =
                            String::from_utf8_lossy(&out.stderr).contains("not found");
                        assert!(
                            out.status.success() || missing_run,
                            "{args:?}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                    let _ = std::fs::remove_file(&export);
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();

    let started = Instant::now();
    std::thread::sleep(SOAK / 4);
    let rss_quarter = rss_bytes(pid);
    let steps_quarter = acked.lock().unwrap().len() as u64;
    std::thread::sleep(SOAK - started.elapsed());
    let rss_end = rss_bytes(pid);
    let steps_end = acked.lock().unwrap().len() as u64;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let rounds: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    // The crash: nothing a reader saw may be lost.
    serve.kill().unwrap();
    serve.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    tail.kill().unwrap();
    tail.wait().unwrap();
    let seen = tailed.join().unwrap();

    let (ledger, _) = Ledger::open(&db, LogOptions::default(), "default").unwrap();
    let reader = ledger.reader();
    for (i, record) in seen.iter().enumerate() {
        let offset = record["offset"].as_u64().unwrap();
        assert_eq!(offset, i as u64, "tail prints every record in order");
        let stored = reader
            .get(offset)
            .unwrap()
            .unwrap_or_else(|| panic!("tailed record {offset} lost in the crash"));
        assert_eq!(
            record["hash"].as_str().unwrap(),
            meshflow_engine::format::hex(&stored.view().hash()),
            "record {offset}"
        );
    }
    for (run, index, offset) in acked.lock().unwrap().iter() {
        let step = ledger
            .load_state(run, *index as i64)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {run}#{index} lost"));
        assert_eq!(step.stored.offset, *offset);
    }
    let (_, chains) = ledger.verify_all().unwrap();
    assert!(chains.iter().all(|c| c.valid));
    let grown = rss_end.saturating_sub(rss_quarter);
    let steps = (steps_end - steps_quarter).max(1);
    eprintln!(
        "soak: {steps_end} steps acknowledged, {} records tailed, {rounds} reader rounds, \
         serve RSS {} MiB at a quarter, {} MiB at the end ({} bytes/step)",
        seen.len(),
        rss_quarter >> 20,
        rss_end >> 20,
        grown / steps
    );
    assert!(steps_end > 1000, "the writers kept appending");
    assert!(seen.len() as u64 >= steps_quarter, "the tail kept up");
    assert!(rounds >= 4, "the readers kept reading");
    assert!(grown / steps < 1024, "{grown} bytes over {steps} steps");
}
