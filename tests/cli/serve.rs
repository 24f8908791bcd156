//! Black-box tests of `meshflow serve` (issue 4, first increment): CLI `append` processes
//! forward to a running service through `serve.json` while readers run; SIGKILL of the service
//! mid-load loses no acknowledged step; SIGTERM stops it cleanly; without a service, `append`
//! takes the writer lock itself.
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshflow");

fn at(db: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    meshflow_suite::run_binary(BIN, &all)
}

fn step_lines(run: &str, count: u64) -> String {
    (0..count)
        .map(|n| {
            serde_json::json!({
                "run_id": run, "step_id": format!("{run}-{n}"), "node_id": "n",
                "node_kind": "llm", "input_task": format!("task {n}"), "output_content": "o",
                "verdict": "commit", "blocked": false, "uncertainty": 0.1, "cost_usd": 0.001,
                "tokens_used": 3, "carbon_gco2": 0.0, "duration_ms": 1.5
            })
            .to_string()
                + "\n"
        })
        .collect()
}

fn serve(db: &Path) -> Child {
    meshflow_suite::start_serve(BIN, db)
}

fn steps_of(db: &Path, run: &str) -> Vec<Value> {
    let (code, out, err) = at(db, &["replay", run, "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(out.trim())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn appends_forward_to_serve_while_readers_run_and_sigterm_stops_it() {
    // Proves 4 concurrent `append` processes go through the service (they would fail on the
    // writer lock otherwise) while `runs`, `replay` and `audit export` run; every step lands,
    // every chain verifies, and SIGTERM exits 0 and removes serve.json.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let mut server = serve(&db);
    let files: Vec<_> = (0..4)
        .map(|i| {
            let f = dir.path().join(format!("in-{i}.jsonl"));
            std::fs::write(&f, step_lines(&format!("run-{i}"), 150)).unwrap();
            f
        })
        .collect();
    let writers: Vec<Child> = files
        .iter()
        .map(|f| {
            Command::new(BIN)
                .args([
                    "--db",
                    db.to_str().unwrap(),
                    "append",
                    f.to_str().unwrap(),
                    "--batch-lines",
                    "5",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for _ in 0..5 {
        assert_eq!(at(&db, &["runs", "--json"]).0, 0);
        let (code, _, err) = at(&db, &["audit", "export"]);
        assert_eq!(code, 0, "{err}");
    }
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..4 {
        assert_eq!(steps_of(&db, &format!("run-{i}")).len(), 150);
    }
    let (code, out, _) = at(&db, &["audit", "verify", "--all"]);
    assert_eq!(code, 0, "{out}");
    let pid = i32::try_from(server.id()).unwrap();
    assert_eq!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!db.join("serve.json").exists());
    // With no service, append takes the lock itself.
    let extra = dir.path().join("extra.jsonl");
    std::fs::write(&extra, step_lines("run-x", 3)).unwrap();
    assert_eq!(at(&db, &["append", extra.to_str().unwrap()]).0, 0);
}

#[test]
fn sigkill_of_serve_mid_load_loses_no_acknowledged_step() {
    // Proves durability through the service: clients append with --ack, the service is killed
    // with SIGKILL while they run (8 times), and every acknowledged step is in the log after a
    // new service starts over the stale serve.json and socket; resending everything then
    // completes each run exactly once.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, step_lines("run-k", 400)).unwrap();
    let mut acked: Vec<Value> = Vec::new();
    for round in 0..8 {
        let mut server = serve(&db);
        let mut client = Command::new(BIN)
            .args([
                "--db",
                db.to_str().unwrap(),
                "append",
                input.to_str().unwrap(),
                "--ack",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(client.stdout.take().unwrap());
        let mut line = String::new();
        for _ in 0..(3 + round * 4) {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            acked.push(serde_json::from_str(line.trim()).unwrap());
        }
        server.kill().unwrap();
        server.wait().unwrap();
        // The client fails (its service is gone) or finishes; either way it stops.
        let _ = client.wait();
        let steps = steps_of(&db, "run-k");
        for a in &acked {
            let i = a["step_index"].as_u64().unwrap() as usize;
            assert_eq!(steps[i]["offset"], a["offset"], "round {round}: {a}");
        }
        let (code, out, _) = at(&db, &["audit", "verify", "--all"]);
        assert_eq!(code, 0, "round {round}: {out}");
    }
    assert!(acked.len() >= 8);
    // One line per batch: a batch mixing retries and new steps is refused as a whole.
    let (code, _, err) = at(
        &db,
        &["append", input.to_str().unwrap(), "--batch-lines", "1"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(steps_of(&db, "run-k").len(), 400);
}

#[test]
fn sigkill_of_serve_under_http_load_loses_no_acknowledged_step() {
    // Proves acknowledged HTTP appends survive SIGKILL of the service: 4 client threads post
    // single steps until the service dies mid-load; every 200 they got is in the log, and every
    // chain verifies.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let mut server = Command::new(BIN)
        .args([
            "--db",
            db.to_str().unwrap(),
            "serve",
            "--http",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let base = loop {
        if let Some(base) = meshflow_engine::service::ServiceInfo::read(&db).and_then(|i| i.http) {
            break base;
        }
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(20));
    };
    let acked = std::sync::Mutex::new(Vec::<Value>::new());
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (acked, base) = (&acked, &base);
            scope.spawn(move || {
                for n in 0.. {
                    let body = step_lines(&format!("run-h{t}"), 1)
                        .replace(&format!("run-h{t}-0"), &format!("run-h{t}-{n}"));
                    let url = format!("{base}/v1/runs/run-h{t}/steps");
                    let req = ureq::post(&url).set("Content-Type", "application/json");
                    match req.send_string(body.trim()) {
                        Ok(r) => {
                            let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
                            acked.lock().unwrap().push(v["receipts"][0].clone());
                        }
                        Err(_) => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(400));
        server.kill().unwrap();
        server.wait().unwrap();
    });
    let acked = acked.into_inner().unwrap();
    assert!(
        acked.len() > 10,
        "the clients were acknowledged before the kill"
    );
    let (code, out, _) = at(&db, &["audit", "verify", "--all"]);
    assert_eq!(code, 0, "{out}");
    let mut runs = std::collections::HashMap::new();
    for a in &acked {
        let run = a["run_id"].as_str().unwrap().to_string();
        let steps = runs
            .entry(run.clone())
            .or_insert_with(|| steps_of(&db, &run));
        let i = a["step_index"].as_u64().unwrap() as usize;
        assert_eq!(steps[i]["step_id"], a["step_id"], "{a}");
        assert_eq!(steps[i]["entry_hash"], a["entry_hash"], "{a}");
    }
}
