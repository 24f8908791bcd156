//! Process-level crash loops through the real binary (issue 8, SPEC §10): `meshflow append
//! --ack`, `serve --http` under load, `audit anonymize`, `import meshflow-sqlite` and
//! `snapshot export` killed with SIGKILL
//! at pseudo-random points, many times, each followed by the checks a crash must pass: every
//! acknowledged step present at its offset, every chain valid, an erasure complete or absent
//! (never half done), each imported run whole or absent, and a snapshot file complete or
//! absent, with no temporary file left once the next export has run. Bounded: a fixed seed and
//! fixed iteration counts.
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use meshflow_engine::ledger::record::FieldValue;
use meshflow_engine::ledger::{Ledger, LedgerError, StepRequest};
use meshflow_engine::log::{Durability, LogOptions};
use meshflow_suite::Rng;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_meshflow");

fn meshflow(db: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--db").arg(db).args(args).env_remove("MESHFLOW_DB");
    c
}

fn step_line(run: &str, id: &str) -> String {
    json!({
        "run_id": run, "step_id": id, "node_id": "n", "node_kind": "llm",
        "input_task": format!("task {id}"), "output_content": format!("out {id}"),
        "verdict": "commit", "blocked": false, "uncertainty": 0.1, "cost_usd": 0.01,
        "tokens_used": 5, "carbon_gco2": 0.1, "duration_ms": 3.0,
    })
    .to_string()
}

fn step(run: &str, n: u64) -> StepRequest {
    StepRequest {
        run_id: run.to_string(),
        node_id: format!("n{n}"),
        node_kind: "llm".to_string(),
        input_task: format!("personal input {n} of {run}"),
        output_content: format!("personal output {n} of {run}"),
        verdict: "commit".to_string(),
        ..StepRequest::default()
    }
}

fn all_chains_valid(ledger: &Ledger) {
    let (_, chains) = ledger.verify_all().unwrap();
    assert!(chains.iter().all(|c| c.valid), "{chains:?}");
}

#[test]
fn sigkill_of_append_ack_200_times_never_loses_an_acknowledged_step() {
    // Proves: over 200 SIGKILLs of `append --ack` at pseudo-random points, every acknowledged
    // step is present at its acknowledged offset and index, and every chain verifies.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut acked: Vec<Value> = Vec::new();
    for iteration in 0..200 {
        let input: String = (0..300)
            .map(|i| step_line(&format!("run-{}", i % 3), &format!("it{iteration}-s{i}")) + "\n")
            .collect();
        let mut child = meshflow(&db, &["append", "-", "--ack", "--wait-lock", "30"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let kill_after = rng.next(30);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        for _ in 0..kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            acked.push(serde_json::from_str(line.trim()).unwrap());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = feeder.join();
        if iteration % 20 != 19 {
            continue;
        }
        let ledger = Ledger::open_read_only(&db, LogOptions::default(), "default").unwrap();
        for run in ["run-0", "run-1", "run-2"] {
            let steps = match ledger.get_run(run) {
                Ok(s) => s,
                Err(LedgerError::NotFound { .. }) => Vec::new(),
                Err(e) => panic!("{e}"),
            };
            for a in acked.iter().filter(|a| a["run_id"] == run) {
                let i = a["step_index"].as_u64().unwrap() as usize;
                let s = steps
                    .get(i)
                    .unwrap_or_else(|| panic!("iteration {iteration}: acknowledged {a} lost"));
                assert_eq!(Some(s.stored.offset), a["offset"].as_u64(), "{a}");
            }
        }
        all_chains_valid(&ledger);
    }
    assert!(
        acked.len() > 200,
        "the loop acknowledged steps: {}",
        acked.len()
    );
}

#[test]
fn sigkill_of_anonymize_leaves_each_erasure_complete_or_absent() {
    // Proves: 30 anonymizations of 500-step runs, each SIGKILLed after a pseudo-random delay,
    // leave each run, after a writable reopen, either wholly erased with its erasure record or
    // wholly live with none, with its chain valid (and every chain at the end).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let (ledger, _) = Ledger::open(&db, LogOptions::default(), "default").unwrap();
        for r in 0..30 {
            let run = format!("run-{r}");
            ledger
                .append_batch((0..500).map(|n| step(&run, n)).collect(), Durability::Sync)
                .unwrap();
        }
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut complete = 0;
    for r in 0..30 {
        let run = format!("run-{r}");
        let mut child = meshflow(&db, &["audit", "anonymize", &run, "--by", "test"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next(250)));
        let _ = child.kill();
        child.wait().unwrap();
        let (ledger, _) = Ledger::open(&db, LogOptions::default(), "default").unwrap();
        let named = ledger
            .erasures()
            .unwrap()
            .iter()
            .any(|e| e.note["runs"][0] == run.as_str());
        let steps = ledger.get_run(&run).unwrap();
        let slots = || steps.iter().flat_map(|s| s.stored.slots.iter());
        let live = slots().filter(|v| matches!(v, FieldValue::Text(_))).count();
        let erased = slots().count() - live;
        if named {
            assert_eq!(live, 0, "{run}: a recorded erasure left {live} live slots");
            complete += 1;
        } else {
            assert_eq!(
                erased, 0,
                "{run}: no erasure record, yet {erased} slots erased"
            );
        }
        assert!(ledger.verify_chain(&run).unwrap().valid, "{run}");
    }
    let (ledger, _) = Ledger::open(&db, LogOptions::default(), "default").unwrap();
    all_chains_valid(&ledger);
    assert!(
        complete > 0 && complete < 30,
        "kills landed before and after erasures completed ({complete} of 30 complete)"
    );
}

/// A reference MeshFlow SQLite ledger of `runs` runs × `steps` steps (per-run legacy chains).
fn reference_db(path: &Path, runs: usize, steps: usize) {
    use meshflow_engine::ledger::legacy_v1::{entry_hash, LegacyFields};
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE step_records (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step_id TEXT NOT NULL
            UNIQUE, node_id TEXT, node_kind TEXT NOT NULL, input_task TEXT, output_content TEXT,
            output_compressed INTEGER NOT NULL DEFAULT 0, verdict TEXT,
            blocked INTEGER NOT NULL DEFAULT 0, block_reason TEXT DEFAULT '',
            uncertainty REAL DEFAULT 0, cost_usd REAL DEFAULT 0, carbon_gco2 REAL DEFAULT 0,
            duration_ms REAL DEFAULT 0, tokens_used INTEGER DEFAULT 0, timestamp TEXT,
            prev_hash TEXT DEFAULT '', entry_hash TEXT DEFAULT '',
            tenant_id TEXT NOT NULL DEFAULT 'default', metadata TEXT DEFAULT '{}');
         BEGIN;",
    )
    .unwrap();
    for r in 0..runs {
        let run = format!("legacy-{r}");
        let mut prev = String::new();
        for s in 0..steps {
            let id = format!("{run}-s{s}");
            let entry = entry_hash(&LegacyFields {
                run_id: &run,
                step_id: &id,
                node_id: "node",
                input_task: "task",
                output_content: "out",
                verdict: "commit",
                blocked: false,
                timestamp: "2026-05-21T00:00:00+00:00",
                prev_hash: &prev,
            });
            conn.execute(
                "INSERT INTO step_records (run_id, step_id, node_id, node_kind, input_task,
                 output_content, verdict, timestamp, prev_hash, entry_hash)
                 VALUES (?1, ?2, 'node', 'llm', 'task', 'out', 'commit',
                         '2026-05-21T00:00:00+00:00', ?3, ?4)",
                rusqlite::params![run, id, prev, entry],
            )
            .unwrap();
            prev = entry;
        }
    }
    conn.execute_batch("COMMIT;").unwrap();
}

#[test]
fn sigkill_of_import_leaves_each_run_whole_or_absent_and_a_rerun_completes() {
    // Proves: 20 imports of a 40-run reference ledger into fresh logs, each SIGKILLed after a
    // pseudo-random delay, leave every run either with all its steps or absent; a second,
    // uninterrupted import then completes every run exactly once.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("reference.db");
    reference_db(&sqlite, 40, 50);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut partial = 0;
    for iteration in 0..20 {
        let db = dir.path().join(format!("db{iteration}"));
        let mut child = meshflow(
            &db,
            &["import", "meshflow-sqlite", sqlite.to_str().unwrap()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.next(200)));
        let _ = child.kill();
        child.wait().unwrap();
        if !db.join("HEAD").exists() {
            continue;
        }
        {
            let ledger = Ledger::open_read_only(&db, LogOptions::default(), "default").unwrap();
            let runs = ledger.list_runs().unwrap();
            if runs.len() < 40 {
                partial += 1;
            }
            for run in &runs {
                assert_eq!(
                    ledger.get_run(run).unwrap().len(),
                    50,
                    "{run} half imported"
                );
            }
            all_chains_valid(&ledger);
        }
        let status = meshflow(
            &db,
            &["import", "meshflow-sqlite", sqlite.to_str().unwrap()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
        assert!(status.success(), "iteration {iteration}: the rerun failed");
        let ledger = Ledger::open_read_only(&db, LogOptions::default(), "default").unwrap();
        assert_eq!(ledger.list_runs().unwrap().len(), 40);
        for run in ledger.list_runs().unwrap() {
            assert_eq!(ledger.get_run(&run).unwrap().len(), 50);
        }
    }
    assert!(partial > 0, "some import was interrupted midway");
}

#[test]
fn sigkill_of_snapshot_export_never_leaves_a_partial_file() {
    // Proves: 40 snapshot exports of 10,000 alerts, each SIGKILLed after a pseudo-random delay,
    // leave the output either absent or a complete snapshot that verifies against the log;
    // the next completed export into the directory removes the killed writers' temporary files.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let (ledger, _) = Ledger::open(&db, LogOptions::default(), "default").unwrap();
        let log = ledger.log().unwrap();
        let mut appender = log.appender();
        for i in 0..10_000u32 {
            let e = meshflow_engine::governance::alert::events::fire(
                &format!("a{i}"),
                "latency",
                "planner",
                "p95",
                "gt",
                100.0,
                150.0,
                "",
                f64::from(i),
            )
            .unwrap();
            appender
                .submit(
                    meshflow_engine::log::RecordInput::new(e.family.kind(), "default", e.encode()),
                    Durability::Buffered,
                )
                .unwrap();
        }
        appender.sync().unwrap();
    }
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut rng = Rng(0x0bad_cafe_f00d_d00d);
    let mut written = 0;
    let ledger = Ledger::open_read_only(&db, LogOptions::default(), "default").unwrap();
    for iteration in 0..40 {
        let file = out.join(format!("s{iteration}.zip"));
        let mut child = meshflow(
            &db,
            &[
                "snapshot",
                "export",
                "--no-record",
                "--output",
                file.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next(400)));
        let _ = child.kill();
        child.wait().unwrap();
        if file.exists() {
            let snapshot = meshflow_engine::snapshot::read_zip(
                std::fs::File::open(&file).unwrap(),
                meshflow_engine::snapshot::ReadLimits::default(),
            )
            .unwrap();
            let report = meshflow_engine::snapshot::verify(&snapshot, Some(&ledger)).unwrap();
            assert!(
                report.valid(),
                "iteration {iteration}: {:?}",
                report.problems
            );
            assert_eq!(report.records, 10_000);
            written += 1;
        }
    }
    assert!(written < 40, "some export was killed before it finished");
    // One more export, uninterrupted: the temporaries of killed writers go.
    let file = out.join("s0.zip");
    let status = meshflow(
        &db,
        &[
            "snapshot",
            "export",
            "--no-record",
            "--force",
            "--output",
            file.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status()
    .unwrap();
    assert!(status.success());
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sigkill_of_serve_under_http_load_200_times_never_loses_an_acknowledged_step() {
    // Proves: 200 times, `serve --http` takes single-step posts from two client threads and is
    // SIGKILLed after a pseudo-random delay; every 200 a client got is in the log at its
    // acknowledged offset and index, and every chain verifies (checked every tenth time and
    // at the end).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let acked = std::sync::Mutex::new(Vec::<Value>::new());
    for iteration in 0..200u64 {
        let mut server = meshflow(&db, &["serve", "--http", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let base = loop {
            let info = meshflow_engine::service::ServiceInfo::read(&db)
                .filter(|i| i.pid == server.id())
                .and_then(|i| i.http);
            if let Some(base) = info {
                break base;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not come up"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let kill_after = Duration::from_millis(10 + rng.next(90));
        std::thread::scope(|scope| {
            for t in 0..2 {
                let (acked, base) = (&acked, &base);
                scope.spawn(move || {
                    for n in 0.. {
                        let run = format!("h{t}");
                        let body = step_line(&run, &format!("h{t}-{iteration}-{n}"));
                        let url = format!("{base}/v1/runs/{run}/steps");
                        let req = ureq::post(&url).set("Content-Type", "application/json");
                        match req.send_string(&body) {
                            Ok(r) => {
                                let v: Value =
                                    serde_json::from_str(&r.into_string().unwrap()).unwrap();
                                acked.lock().unwrap().push(v["receipts"][0].clone());
                            }
                            Err(_) => return,
                        }
                    }
                });
            }
            std::thread::sleep(kill_after);
            server.kill().unwrap();
            server.wait().unwrap();
        });
        if iteration % 10 != 9 {
            continue;
        }
        let ledger = Ledger::open_read_only(&db, LogOptions::default(), "default").unwrap();
        for a in acked.lock().unwrap().iter() {
            let run = a["run_id"].as_str().unwrap();
            let index = a["step_index"].as_i64().unwrap();
            let step = ledger
                .load_state(run, index)
                .unwrap()
                .unwrap_or_else(|| panic!("iteration {iteration}: acknowledged {a} lost"));
            assert_eq!(Some(step.stored.offset), a["offset"].as_u64(), "{a}");
        }
        all_chains_valid(&ledger);
    }
    assert!(
        acked.lock().unwrap().len() > 100,
        "the clients were acknowledged before the kills"
    );
}
