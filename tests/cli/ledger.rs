//! Black-box tests of the `meshflow` ledger commands (`append`, `runs`, `replay`, `trace`,
//! `audit export|verify|verify-chain`): the reference's acceptance cases A4–A10, A17–A22 and
//! A40 through the CLI, with SPEC.md §11's departures, and offline verification of exports.
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

use std::path::Path;

use serde_json::Value;

fn meshflow(args: &[&str]) -> (i32, String, String) {
    meshflow_suite::run_binary(env!("CARGO_BIN_EXE_meshflow"), args)
}

fn at(db: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    meshflow(&all)
}

fn step_line(run: &str, n: u64, node: &str, cost: f64, output: &str) -> String {
    serde_json::json!({
        "run_id": run, "step_id": format!("{run}-s{n}"), "node_id": node, "node_kind": "llm",
        "input_task": format!("task {n}"), "output_content": output, "verdict": "commit",
        "blocked": false, "uncertainty": 0.1, "cost_usd": cost, "tokens_used": 100,
        "carbon_gco2": 0.001, "duration_ms": 12.5,
        "timestamp": format!("2026-06-01T12:00:0{n}+00:00"),
        "metadata": {"tool_calls": n}
    })
    .to_string()
}

/// Appends lines from a file through `meshflow append`; returns (code, stdout, stderr).
fn append(db: &Path, lines: &[String], extra: &[&str]) -> (i32, String, String) {
    let file = db.with_extension(format!("{}.jsonl", lines.len()));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut args = vec!["append", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    at(db, &args)
}

/// Run A: plan, analyze, report at 0.01 each.
fn run_a(db: &Path) {
    let lines: Vec<String> = ["plan", "analyze", "report"]
        .iter()
        .enumerate()
        .map(|(n, node)| step_line("A", n as u64, node, 0.01, &format!("output of {node}")))
        .collect();
    let (code, out, err) = append(db, &lines, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["appended"], 3);
    assert_eq!(v["runs"], serde_json::json!(["A"]));
}

#[test]
fn a4_a40_verify_chain_valid_unknown_and_missing_db() {
    // Proves A4/A40 and A5 (SPEC §11): valid chain line and exit 0; unknown run exit 1;
    // a missing db is "No ledger found" with exit 1 and is not created.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (code, _, err) = at(&db, &["audit", "verify-chain", "--run-id", "A"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("No ledger found at '{}'.", db.display())),
        "{err}"
    );
    assert!(!db.exists(), "read commands never create a log");
    run_a(&db);
    let (code, out, _) = at(&db, &["audit", "verify-chain", "--run-id", "A"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "CHAIN VALID — 3 step(s) verified for run 'A'.");
    let (code, out, _) = at(&db, &["audit", "verify-chain", "--run-id", "A", "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["steps_verified"], 3);
    assert_eq!(v["steps_redacted"], 0);
    assert_eq!(v["errors"], serde_json::json!([]));
    let (code, _, err) = at(&db, &["audit", "verify-chain", "--run-id", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("run 'nope' not found"), "{err}");
    let (code, _, err) = at(
        &db,
        &["audit", "verify-chain", "--run-id", "nope", "--json"],
    );
    assert_eq!(code, 1);
    let e: Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(e["error"]["kind"], "not_found");
}

#[test]
fn a9_a10_duplicates_and_wrong_prev_hash_are_conflicts_that_write_nothing() {
    // Proves A9 and A10 through `append`: an identical retry returns the original receipt,
    // different content under the same step_id and a wrong prev_hash exit 1 and write nothing.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let records = |db: &Path| -> Value {
        let (_, out, _) = at(db, &["log", "stats", "--json"]);
        serde_json::from_str::<Value>(out.trim()).unwrap()["records"].clone()
    };
    // 3 steps and the checkpoint-digest event written when `append` closed.
    assert_eq!(records(&db), 4);
    let retry = step_line("A", 1, "analyze", 0.01, "output of analyze");
    let (code, out, err) = append(&db, &[retry], &["--ack"]);
    assert_eq!(code, 0, "{err}");
    let ack: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ack["offset"], 1);
    assert_eq!(ack["step_index"], 1);
    let changed = step_line("A", 1, "analyze", 0.01, "rewritten history");
    let (code, _, err) = append(&db, &[changed], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("already exists with a different output_content"),
        "{err}"
    );
    let mut wrong: Value = serde_json::from_str(&step_line("A", 3, "x", 0.0, "o")).unwrap();
    wrong["prev_hash"] = Value::String("ab".repeat(32));
    let (code, _, err) = append(&db, &[wrong.to_string()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("conflict"), "{err}");
    assert_eq!(records(&db), 4, "nothing written");
}

#[test]
fn a_bad_line_names_its_line_and_writes_nothing_of_its_batch() {
    // Proves `append` reports a bad line by number (exit 2) and its batch is not written, while
    // earlier batches are.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut lines: Vec<String> = (0..4).map(|n| step_line("B", n, "n", 0.01, "o")).collect();
    lines[3] = lines[3].replace("\"cost_usd\":0.01", "\"cost_usd\":-1");
    let (code, _, err) = append(&db, &lines, &["--batch-lines", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("cost_usd: must not be negative"), "{err}");
    let (_, out, _) = at(&db, &["replay", "B", "--json"]);
    let steps: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(steps.as_array().unwrap().len(), 2, "the first batch only");
}

#[test]
fn a17_to_a20_and_a22_replay_runs_and_diff_shapes() {
    // Proves replay --json is the array of steps (A22, blocked boolean, outputs shown: W16),
    // runs --json gives reference summaries (A20), diff as A18, unknown runs exit 1 (A19).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let mut b: Vec<String> = ["plan", "analyze", "report", "extra_node"]
        .iter()
        .enumerate()
        .map(|(n, node)| step_line("B", n as u64, node, 0.02, &format!("output of {node}")))
        .collect();
    b[1] = b[1].replace("output of analyze", "changed analysis");
    assert_eq!(append(&db, &b, &[]).0, 0);

    let (code, out, _) = at(&db, &["replay", "A", "--json"]);
    assert_eq!(code, 0);
    let steps: Value = serde_json::from_str(out.trim()).unwrap();
    let steps = steps.as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for key in [
        "run_id",
        "step_id",
        "node_id",
        "node_kind",
        "input_task",
        "output_content",
        "verdict",
        "blocked",
        "block_reason",
        "uncertainty",
        "cost_usd",
        "tokens_used",
        "carbon_gco2",
        "duration_ms",
        "timestamp",
        "prev_hash",
        "entry_hash",
        "tenant_id",
        "metadata",
    ] {
        assert!(steps[0].get(key).is_some(), "missing {key}");
    }
    assert_eq!(steps[0]["blocked"], false);
    assert_eq!(steps[0]["prev_hash"], "");
    assert_eq!(steps[1]["prev_hash"], steps[0]["entry_hash"]);
    assert_eq!(steps[2]["metadata"]["tool_calls"], 2);
    let (_, human, _) = at(&db, &["replay", "A"]);
    assert!(human.contains("output: output of report"), "{human}");

    let (_, out, _) = at(&db, &["runs", "--json"]);
    let runs: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(runs[0]["run_id"], "B", "newest first");
    let a = &runs[1];
    assert_eq!(a["steps"], 3);
    assert_eq!(a["nodes"], serde_json::json!(["plan", "analyze", "report"]));
    assert_eq!(a["total_cost_usd"], 0.03);
    assert_eq!(a["total_tokens"], 300);
    assert_eq!(a["total_carbon_gco2"], 0.003);
    assert_eq!(a["blocked_steps"], 0);
    assert_eq!(a["timestamps"]["start"], "2026-06-01T12:00:00+00:00");
    assert_eq!(a["timestamps"]["end"], "2026-06-01T12:00:02+00:00");

    let (code, out, _) = at(&db, &["replay", "A", "--diff", "B", "--json"]);
    assert_eq!(code, 0);
    let d: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(d["only_in_b"], serde_json::json!(["extra_node"]));
    assert_eq!(
        d["common"],
        serde_json::json!(["analyze", "plan", "report"])
    );
    assert_eq!(d["changed"][0]["node_id"], "analyze");
    assert!(d["cost_delta_usd"].as_f64().unwrap() > 0.0);
    assert!(d["token_delta"].as_i64().unwrap() > 0);
    let (_, out, _) = at(&db, &["replay", "A", "--diff", "B"]);
    assert!(out.contains("Only in B : extra_node"), "{out}");
    assert!(out.contains("Cost Δ    : +0.050000 USD"), "{out}");

    for args in [
        &["replay", "nope"][..],
        &["replay", "A", "--diff", "nope"],
        &["trace", "nope"],
        &["audit", "export", "--run-id", "nope"],
        &["audit", "export", "--run-id", "nope", "--format", "csv"],
    ] {
        let (code, out, err) = at(&db, args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        assert!(err.contains("run 'nope' not found"), "{err}");
    }
}

#[test]
fn a21_csv_export_has_the_reference_header_and_crlf() {
    // Proves A21 and W16: 15-column header, CRLF rows, also for all runs.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let (code, out, _) = at(
        &db,
        &["audit", "export", "--run-id", "A", "--format", "csv"],
    );
    assert_eq!(code, 0);
    let rows: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(
        rows[0],
        "run_id,step_id,node_id,node_kind,verdict,blocked,block_reason,uncertainty,cost_usd,\
         tokens_used,carbon_gco2,duration_ms,timestamp,entry_hash,prev_hash"
    );
    assert_eq!(rows.len(), 5);
    assert!(rows[1].starts_with("A,A-s0,plan,llm,commit,0,,0.1,0.01,100,0.001,12.5,"));
    let (code, all, _) = at(&db, &["audit", "export", "--format", "csv"]);
    assert_eq!(code, 0);
    assert_eq!(all, out, "one run: the all-runs CSV is the same");
}

#[test]
fn trace_reports_chain_status_and_exports() {
    // Proves trace prints CHAIN VALID (exit 0), and --json/--export carry chain_valid (W16).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let (code, out, _) = at(&db, &["trace", "A"]);
    assert_eq!(code, 0);
    assert!(out.contains("Chain: VALID"), "{out}");
    assert!(out.trim_end().ends_with("CHAIN VALID"), "{out}");
    let file = dir.path().join("trace.json");
    let (code, _, _) = at(&db, &["trace", "A", "--export", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(v["chain_valid"], true);
    assert_eq!(v["summary"]["steps"], 3);
    assert_eq!(v["steps"].as_array().unwrap().len(), 3);
}

/// Exports run A to a file and returns the parsed envelope.
fn export_a(db: &Path, file: &Path) -> Value {
    let (code, _, err) = at(
        db,
        &[
            "audit",
            "export",
            "--run-id",
            "A",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn verify_file(db: &Path, envelope: &Value, dir: &Path, name: &str) -> (i32, String) {
    let file = dir.join(name);
    std::fs::write(&file, envelope.to_string()).unwrap();
    let (code, out, err) = at(db, &["audit", "verify", "--file", file.to_str().unwrap()]);
    (code, out + &err)
}

#[test]
fn exports_verify_offline_and_edits_removals_and_reorders_fail() {
    // Proves an export envelope verifies with no log, and that an edited field, a removed
    // step and swapped steps each fail, naming the step; `--out` never overwrites.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let file = dir.path().join("a.json");
    let env = export_a(&db, &file);
    assert_eq!(env["format"], "meshflow-run-export/1");
    assert_eq!(env["step_count"], 3);
    assert_eq!(env["head_entry_hash"], env["steps"][2]["entry_hash"]);
    let (code, out, err) = at(
        &db,
        &[
            "audit",
            "export",
            "--run-id",
            "A",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("already exists"), "{err}");

    let elsewhere = dir.path().join("no-log-here");
    let (code, out) = verify_file(&elsewhere, &env, dir.path(), "ok.json");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("OK run 'A' (tenant 'default'): 3 step(s) verified"),
        "{out}"
    );
    assert!(out.contains("undetectable without an anchor"), "{out}");

    let mut edited = env.clone();
    edited["steps"][1]["output_content"] = Value::String("forged".to_string());
    let (code, out) = verify_file(&elsewhere, &edited, dir.path(), "edited.json");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("step 1 (A-s1): entry_hash mismatch"), "{out}");

    let mut cost = env.clone();
    cost["steps"][2]["cost_usd"] = serde_json::json!(0.0);
    let (code, out) = verify_file(&elsewhere, &cost, dir.path(), "cost.json");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("step 2 (A-s2)"), "{out}");

    let mut removed = env.clone();
    removed["steps"].as_array_mut().unwrap().remove(1);
    removed["step_count"] = serde_json::json!(2);
    let (code, out) = verify_file(&elsewhere, &removed, dir.path(), "removed.json");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("step 1 (A-s2)"), "{out}");

    let mut swapped = env.clone();
    swapped["steps"].as_array_mut().unwrap().swap(0, 1);
    let (code, out) = verify_file(&elsewhere, &swapped, dir.path(), "swapped.json");
    assert_eq!(code, 1, "{out}");

    let (code, out) = verify_file(&elsewhere, &serde_json::json!([1]), dir.path(), "junk.json");
    assert_eq!(code, 2, "{out}");

    // A duplicate key makes a document that is not an envelope (parsers disagree on it).
    let text = std::fs::read_to_string(&file).unwrap().replacen(
        "\"run_id\": \"A\",",
        "\"run_id\": \"A\", \"run_id\": \"B\",",
        1,
    );
    let dup = dir.path().join("dup.json");
    std::fs::write(&dup, text).unwrap();
    let (code, out, err) = at(
        &elsewhere,
        &["audit", "verify", "--file", dup.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("duplicate key 'run_id'"), "{err}");
}

#[test]
fn bench_ledger_layer_prints_one_json_object_per_phase() {
    // Proves `meshflow bench` (ledger layer, the default) runs A, B, B4, C, D, E on a tiny
    // workload and prints one JSON object per phase; D on the log layer is a usage error.
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = meshflow(&[
        "bench",
        "--runs",
        "6",
        "--steps",
        "5",
        "--payload",
        "16",
        "--phases",
        "A,B,B4,S4,C,D,E",
        "--sync-records",
        "8",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let phases: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B", "B4", "S4", "C", "D", "E"]);
    assert_eq!(phases[0]["records"], 30);
    assert_eq!(
        phases[3]["records"], 8,
        "S4: B4's records through the socket"
    );
    assert_eq!(
        phases[4]["records"], 31,
        "C scans phase A's 30 steps and its checkpoint-digest event"
    );
    assert_eq!(phases[5]["unit"], "runs/s");
    assert_eq!(phases[5]["records"], 1000, "D reads 1,000 random runs");
    assert!(phases.iter().all(|p| p["rate"].as_f64().unwrap() > 0.0));
    let (code, _, err) = meshflow(&["bench", "--layer", "log", "--phases", "D"]);
    assert_eq!(code, 2, "{err}");
}

/// A copy of the log in `from` holding only its first record (as if everything after it had
/// been cut away), placed at `to`: HEAD and checkpoints are dropped, so the next writer
/// recovers from the segment alone.
fn copy_first_record(from: &Path, to: &Path) {
    use meshflow_engine::format::segment_header::segment_file_name;
    let reader =
        meshflow_engine::log::LogReader::open(from, meshflow_engine::log::LogOptions::default())
            .unwrap();
    let second = reader.get(1).unwrap().unwrap();
    assert_eq!(second.segment_base(), 0);
    let segment = std::fs::read(from.join(segment_file_name(0))).unwrap();
    std::fs::create_dir_all(to).unwrap();
    let cut = usize::try_from(second.position()).unwrap();
    std::fs::write(to.join(segment_file_name(0)), &segment[..cut]).unwrap();
}

#[test]
fn signed_checkpoints_anchor_verification_against_rewrites_and_truncation() {
    // Proves SPEC §4.3: `log checkpoint --key` writes an Ed25519-signed note that exports embed;
    // `audit verify --trusted-checkpoint --pubkey` accepts a log that extends it and detects a
    // consistent rewrite (same record 0, every hash valid) and a truncation made after it.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let key = dir.path().join("auditor.key");
    let (code, _, err) = at(
        &db,
        &[
            "log",
            "keygen",
            "--name",
            "auditor",
            "--out",
            db.join("k").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "a key inside the log directory is refused: {err}");
    let (code, out, err) = at(
        &db,
        &[
            "log",
            "keygen",
            "--name",
            "auditor",
            "--out",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("auditor+"), "{out}");
    let pubkey = format!("{}.pub", key.display());
    let (code, note, err) = at(&db, &["log", "checkpoint", "--key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(note.contains("\n\n\u{2014} auditor "), "{note}");
    let trusted = dir.path().join("trusted.note");
    std::fs::write(&trusted, &note).unwrap();
    let anchor = [
        "--trusted-checkpoint",
        trusted.to_str().unwrap(),
        "--pubkey",
        &pubkey,
    ];

    // The export embeds the note and, taken at the same size, is anchored offline.
    let export = dir.path().join("a.json");
    let env = export_a(&db, &export);
    assert_eq!(env["checkpoint"], Value::String(note.clone()));
    let mut args = vec!["audit", "verify", "--file", export.to_str().unwrap()];
    args.extend_from_slice(&anchor);
    let (code, out, err) = meshflow(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("anchored"), "{out}");

    let verify_all = |db: &Path| {
        let mut args = vec!["audit", "verify", "--all"];
        args.extend_from_slice(&anchor);
        at(db, &args)
    };
    assert_eq!(
        append(&db, &[step_line("A", 3, "extra", 0.01, "o")], &[]).0,
        0
    );
    let (code, out, err) = verify_all(&db);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ANCHOR OK"), "{out}");

    // A wrong key fails the anchor itself.
    let other = dir.path().join("other.key");
    assert_eq!(
        at(
            &db,
            &[
                "log",
                "keygen",
                "--name",
                "auditor",
                "--out",
                other.to_str().unwrap()
            ]
        )
        .0,
        0
    );
    let other_pub = format!("{}.pub", other.display());
    let (code, _, err) = at(
        &db,
        &[
            "audit",
            "verify",
            "--all",
            "--trusted-checkpoint",
            trusted.to_str().unwrap(),
            "--pubkey",
            &other_pub,
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not verify"), "{err}");

    // A consistent rewrite after record 0: every chain in it is valid, only the anchor sees it.
    let rewritten = dir.path().join("rewritten");
    copy_first_record(&db, &rewritten);
    let forged: Vec<String> = (1..6)
        .map(|n| step_line("A", n, "forged", 0.0, "forged"))
        .collect();
    assert_eq!(append(&rewritten, &forged, &[]).0, 0);
    let (code, out, _) = at(&rewritten, &["audit", "verify", "--all"]);
    assert_eq!(code, 0, "without an anchor the rewrite verifies: {out}");
    let (code, out, err) = verify_all(&rewritten);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ANCHOR FAILED") && out.contains("rewritten"),
        "{out}"
    );

    // A truncation after the checkpoint.
    let truncated = dir.path().join("truncated");
    copy_first_record(&db, &truncated);
    assert_eq!(
        at(&truncated, &["append", "/dev/null"]).0,
        0,
        "recovers the cut log"
    );
    let (code, out, err) = verify_all(&truncated);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("truncated"), "{out}");
}

/// The segment file and frame position of the record at `offset`.
fn locate(db: &Path, offset: u64) -> (std::path::PathBuf, usize) {
    let reader =
        meshflow_engine::log::LogReader::open(db, meshflow_engine::log::LogOptions::default())
            .unwrap();
    let record = reader.get(offset).unwrap().unwrap();
    let file = db.join(meshflow_engine::format::segment_header::segment_file_name(
        record.segment_base(),
    ));
    (file, usize::try_from(record.position()).unwrap())
}

fn u32_at(b: &[u8], p: usize) -> usize {
    u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) as usize
}

#[test]
fn a6_a7_edited_output_and_cost_fail_verify_chain_naming_the_step() {
    // Proves A6 (an edited output, slot CRC recomputed: step 1 named, "entry_hash mismatch")
    // and A7 (an edited cost, frame CRC recomputed) through `audit verify-chain` and `trace`.
    for field in ["output", "cost"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        run_a(&db);
        let (file, pos) = locate(&db, 1);
        let mut b = std::fs::read(&file).unwrap();
        let tenant_len = b[pos + 35] as usize;
        let payload_len = u32_at(&b, pos + 40);
        let payload = pos + 112 + tenant_len + 36 * 4;
        if field == "output" {
            let slot0 = pos + (112 + tenant_len + 36 * 4 + payload_len).div_ceil(8) * 8;
            let slot1 = slot0 + (40 + u32_at(&b, pos + 112 + tenant_len)).div_ceil(8) * 8;
            let len1 = u32_at(&b, pos + 112 + tenant_len + 36);
            b[slot1 + 40] ^= 0x20;
            let crc = crc32c::crc32c_append(
                crc32c::crc32c(&b[slot1..slot1 + 4]),
                &b[slot1 + 8..slot1 + 40 + len1],
            );
            b[slot1 + 4..slot1 + 8].copy_from_slice(&crc.to_le_bytes());
        } else {
            let mut p = payload + 1;
            for _ in 0..5 {
                p += 4 + u32_at(&b, p);
            }
            b[p + 1 + 8 + 6] ^= 0x01; // cost_usd's bits
            let committed = &b[pos + 112..payload + payload_len];
            let crc = crc32c::crc32c_append(crc32c::crc32c(committed), &b[pos + 8..pos + 112]);
            b[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        }
        std::fs::write(&file, b).unwrap();
        let (code, out, err) = at(&db, &["audit", "verify-chain", "--run-id", "A"]);
        assert_eq!(code, 1, "{field}: {out}{err}");
        assert!(
            out.starts_with("CHAIN INVALID — 1 error(s) in run 'A':"),
            "{field}: {out}"
        );
        assert!(
            out.contains("step 1 (A-s1): entry_hash mismatch"),
            "{field}: {out}"
        );
        let (code, out, _) = at(&db, &["trace", "A"]);
        assert_eq!(code, 1, "{field}");
        assert!(out.contains("CHAIN INVALID"), "{field}: {out}");
        let (code, _, err) = at(&db, &["audit", "verify", "--all"]);
        assert_eq!(code, 1, "{field}: {err}");
        assert!(err.contains("step 1 of run 'A'"), "{field}: {err}");
    }
}

#[test]
fn sigkill_of_append_ack_never_loses_an_acknowledged_step() {
    // Proves that every step `meshflow append --ack` acknowledged survives a SIGKILL at a
    // random point (25 times), with every chain valid afterwards, and that re-sending the whole
    // input (identical retries plus what was lost) completes each run exactly once.
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let lines: Vec<String> = (0..600)
        .map(|i| {
            step_line(
                &format!("run-{}", i % 3),
                i / 3,
                "n",
                0.001,
                &format!("out {i}"),
            )
        })
        .collect();
    let input = lines.join("\n") + "\n";
    let mut acked: Vec<Value> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for iteration in 0..25 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshflow"))
            .args(["--db", db.to_str().unwrap(), "append", "-", "--ack"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let text = input.clone();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let kill_after = 1 + rng % 40;
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut seen = 0;
        while seen < kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            acked.push(serde_json::from_str(line.trim()).unwrap());
            seen += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = feeder.join();
        // Everything acknowledged so far is there, at its offset and index.
        let (code, out, err) = at(&db, &["audit", "verify", "--all", "--json"]);
        assert_eq!(code, 0, "iteration {iteration}: {out}{err}");
        for run in ["run-0", "run-1", "run-2"] {
            let (code, steps, _) = at(&db, &["replay", run, "--json"]);
            if code != 0 {
                assert!(acked.iter().all(|a| a["run_id"] != run), "{run} lost");
                continue;
            }
            let steps: Value = serde_json::from_str(steps.trim()).unwrap();
            for a in acked.iter().filter(|a| a["run_id"] == run) {
                let i = a["step_index"].as_u64().unwrap() as usize;
                assert_eq!(
                    steps[i]["offset"], a["offset"],
                    "iteration {iteration}: {a}"
                );
            }
        }
    }
    assert!(acked.len() > 25, "the loop acknowledged steps");
    // Re-sending everything: acknowledged lines are identical retries, the rest is new.
    let (code, _, err) = append(&db, &lines, &["--batch-lines", "1"]);
    assert_eq!(code, 0, "{err}");
    for run in ["run-0", "run-1", "run-2"] {
        let (_, steps, _) = at(&db, &["replay", run, "--json"]);
        let steps: Value = serde_json::from_str(steps.trim()).unwrap();
        assert_eq!(steps.as_array().unwrap().len(), 200, "{run}");
    }
    let (code, out, _) = at(&db, &["audit", "verify", "--all"]);
    assert_eq!(code, 0, "{out}");
}
