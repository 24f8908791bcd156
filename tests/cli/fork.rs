//! Black-box tests of `meshflow replay RUN --fork-at N | --fork-at-offset O` (reference cases
//! A11–A16 with SPEC §11): both spellings of −1, step counts, empty forks listed, refusals with
//! exit 1 writing nothing, forwarding to a running `serve`, and forked runs verifying online
//! and offline.
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

const BIN: &str = env!("CARGO_BIN_EXE_meshflow");

fn at(db: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    meshflow_suite::run_binary(BIN, &all)
}

fn json(db: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = at(db, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Appends run A's three steps.
fn run_a(db: &Path) {
    let lines: String = (0..3)
        .map(|n| {
            serde_json::json!({
                "run_id": "A", "step_id": format!("s{n}"), "node_id": format!("node-{n}"),
                "node_kind": "llm", "input_task": format!("task {n}"), "output_content": "o",
                "verdict": "commit", "blocked": false, "uncertainty": 0.1, "cost_usd": 0.01,
                "tokens_used": 3, "carbon_gco2": 0.0, "duration_ms": 1.0
            })
            .to_string()
                + "\n"
        })
        .collect();
    let mut child = Command::new(BIN)
        .args(["--db", db.to_str().unwrap(), "append", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn records(db: &Path) -> u64 {
    json(db, &["log", "stats"])["records"].as_u64().unwrap()
}

#[test]
fn a11_a16_forks_through_the_cli() {
    // Proves A11 (−1, as `--fork-at -1` and `--fork-at=-1`), A12, A13 (an empty fork, listed),
    // A14, A15 (unknown run: exit 1) and A16 (a reused id: exit 1, nothing written), and that
    // every chain verifies online and an export of the forks verifies offline.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let r = json(
        &db,
        &["replay", "A", "--fork-at", "-1", "--new-run-id", "f-all"],
    );
    assert_eq!(r["steps_copied"], 3);
    let r = json(
        &db,
        &["replay", "A", "--fork-at=-1", "--new-run-id", "f-all-2"],
    );
    assert_eq!(r["steps_copied"], 3);
    let steps = json(&db, &["replay", "f-all"]);
    let ids: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["f-all-s0", "f-all-s1", "f-all-s2"]);
    assert_eq!(
        json(
            &db,
            &["replay", "A", "--fork-at", "2", "--new-run-id", "f-2"]
        )["steps_copied"],
        2
    );
    let empty = json(
        &db,
        &[
            "replay",
            "A",
            "--fork-at",
            "0",
            "--model",
            "gpt-4o",
            "--inject",
            "t=0",
        ],
    );
    assert_eq!(empty["steps_copied"], 0);
    let runs = json(&db, &["runs"]);
    let listed: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&empty["run_id"].as_str().unwrap()),
        "{listed:?}"
    );
    assert_eq!(
        json(
            &db,
            &["replay", "A", "--fork-at", "10", "--new-run-id", "f-10"]
        )["steps_copied"],
        3
    );
    let size = records(&db);
    let (code, _, err) = at(&db, &["replay", "unknown", "--fork-at", "2"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = at(
        &db,
        &["replay", "A", "--fork-at", "1", "--new-run-id", "f-2"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exists"), "{err}");
    assert_eq!(records(&db), size, "refused forks write nothing");
    let (code, _, _) = at(&db, &["audit", "verify", "--all"]);
    assert_eq!(code, 0);
    let export = dir.path().join("export.json");
    let (code, _, err) = at(&db, &["audit", "export", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = at(
        &db,
        &["audit", "verify", "--file", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn forks_forward_to_a_running_serve() {
    // Proves `replay --fork-at` goes through the service that holds the lock.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let mut server = meshflow_suite::start_serve(BIN, &db);
    let r = json(
        &db,
        &["replay", "A", "--fork-at", "2", "--new-run-id", "via-serve"],
    );
    assert_eq!(r["steps_copied"], 2);
    let (code, _, _) = at(
        &db,
        &["replay", "A", "--fork-at", "2", "--new-run-id", "via-serve"],
    );
    assert_eq!(code, 1);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(
        json(&db, &["replay", "via-serve"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a27_archives_are_written_once_read_only_and_verifiable() {
    // Proves A27 (an unsupported URI and an unknown run are errors; archiving again is
    // "already exists"), the receipt's size and SHA-256, the read-only file, a run id with
    // path separators kept inside the destination, and the archive verifying offline.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    json(
        &db,
        &[
            "replay",
            "A",
            "--fork-at",
            "-1",
            "--new-run-id",
            "../escape/run",
        ],
    );
    let dest = dir.path().join("archive");
    let uri = format!("file://{}", dest.display());
    let r = json(&db, &["replay", "A", "--archive", &uri]);
    let file = dest.join("A.json");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(r["bytes_written"].as_u64(), Some(bytes.len() as u64));
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(r["sha256"].as_str().unwrap(), digest);
    assert!(std::fs::metadata(&file).unwrap().permissions().readonly());
    let (code, _, err) = at(&db, &["replay", "A", "--archive", dest.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = at(&db, &["replay", "A", "--archive", "ftp://host/prefix"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Unsupported archive URI"), "{err}");
    let (code, _, err) = at(
        &db,
        &["replay", "nope", "--archive", dest.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not found"), "{err}");
    json(
        &db,
        &[
            "replay",
            "../escape/run",
            "--archive",
            dest.to_str().unwrap(),
        ],
    );
    assert!(dest.join("%2E%2E%2Fescape%2Frun.json").is_file());
    assert!(
        !dir.path().join("escape").exists(),
        "nothing outside the destination"
    );
    let (code, _, err) = at(&db, &["audit", "verify", "--file", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn rewind_branch_compare_and_branches() {
    // Proves --rewind N (prints step N, forks with the N steps before it), --branch-compare
    // (one labelled fork per variant at --compare-step, a second time a conflict) and
    // --branches (the parent beside each branch: steps, cost, tokens, verdicts).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let r = json(
        &db,
        &["replay", "A", "--rewind", "1", "--new-run-id", "back"],
    );
    assert_eq!(r["state"]["node_id"], "node-1");
    assert_eq!(r["steps_copied"], 1);
    let (code, _, _) = at(&db, &["replay", "A", "--rewind", "9"]);
    assert_eq!(code, 1, "no step 9");
    let spec = "gpt4:model=gpt-4o,claude:model=claude-sonnet-4-6;temperature=0";
    let made = json(
        &db,
        &[
            "replay",
            "A",
            "--branch-compare",
            "--forks",
            spec,
            "--compare-step",
            "2",
        ],
    );
    let ids: Vec<&str> = made["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A--gpt4", "A--claude"]);
    let (code, _, _) = at(
        &db,
        &["replay", "A", "--branch-compare", "--forks", "gpt4:model=x"],
    );
    assert_eq!(code, 1, "a branch that exists");
    let rows = json(&db, &["replay", "A", "--branches"]);
    let rows = rows.as_array().unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        ["parent", "gpt4", "claude"],
        "unlabelled forks are not branches"
    );
    assert_eq!(
        (rows[0]["steps"].as_u64(), rows[1]["steps"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(rows[1]["verdicts"]["commit"], 2);
    let (code, _, _) = at(
        &db,
        &["replay", "A", "--branch-compare", "--forks", "nolabel=x"],
    );
    assert_eq!(code, 0, "a variant without settings is just a label");
}

#[test]
fn anonymize_delete_and_erasures_through_the_cli_and_serve() {
    // Proves `audit anonymize --with-forks` (fields read [REDACTED], chains verify),
    // `audit delete-run` (not found afterwards, exit 1), `audit erasures` listing both with
    // who and why, and the same commands forwarded to a running `serve`.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    json(
        &db,
        &["replay", "A", "--fork-at", "-1", "--new-run-id", "A2"],
    );
    let r = json(
        &db,
        &[
            "audit",
            "anonymize",
            "A",
            "--with-forks",
            "--by",
            "dpo",
            "--reason",
            "art. 17",
        ],
    );
    assert_eq!(r["runs"], serde_json::json!(["A", "A2"]));
    let steps = json(&db, &["replay", "A2"]);
    assert!(
        steps[0]["redacted"].as_array().unwrap().len() >= 2,
        "{steps}"
    );
    let mut server = meshflow_suite::start_serve(BIN, &db);
    let d = json(&db, &["audit", "delete-run", "A2", "--reason", "duplicate"]);
    assert_eq!(d["deleted"], true);
    server.kill().unwrap();
    server.wait().unwrap();
    let (code, _, err) = at(&db, &["replay", "A2"]);
    assert_eq!(code, 1, "{err}");
    let list = json(&db, &["audit", "erasures"]);
    let ops: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["note"]["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["anonymize", "delete-run"]);
    assert_eq!(list[0]["note"]["by"], "dpo");
    let (code, _, err) = at(&db, &["audit", "verify", "--all"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a26_tenant_delete_purge_through_the_cli() {
    // Proves `tenant delete ID --purge`: the tenant's runs are gone (list empty, replay exit 1),
    // another tenant's run is untouched, and every chain still verifies.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    run_a(&db);
    let line = serde_json::json!({
        "run_id": "acme-1", "node_id": "n", "node_kind": "llm", "input_task": "t",
        "output_content": "o", "verdict": "commit", "blocked": false, "uncertainty": 0.1,
        "cost_usd": 0.01, "tokens_used": 3, "carbon_gco2": 0.0, "duration_ms": 1.0
    })
    .to_string();
    let mut child = Command::new(BIN)
        .args([
            "--db",
            db.to_str().unwrap(),
            "--tenant",
            "acme",
            "append",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{line}\n{}\n", line.replace("acme-1", "acme-2")).as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let r = json(
        &db,
        &[
            "tenant",
            "delete",
            "acme",
            "--purge",
            "--reason",
            "offboarded",
        ],
    );
    assert_eq!(r["runs_deleted"].as_array().unwrap().len(), 2);
    assert_eq!(
        json(&db, &["--tenant", "acme", "runs"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (code, _, _) = at(&db, &["--tenant", "acme", "replay", "acme-1"]);
    assert_eq!(code, 1);
    assert_eq!(
        json(&db, &["runs"]).as_array().unwrap().len(),
        1,
        "default's run A stays"
    );
    let (code, _, err) = at(&db, &["audit", "verify", "--all"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn sigkill_mid_anonymize_leaves_the_run_whole_or_erased() {
    // Proves crash safety of a run erasure at process level: `audit anonymize` killed with
    // SIGKILL at several points; after the next writable open (which redoes an interrupted
    // erasure) the run is either untouched or fully erased, never half, and every chain
    // verifies.
    let dir = tempfile::tempdir().unwrap();
    for (i, delay_ms) in [0u64, 2, 5, 10, 20, 40].into_iter().enumerate() {
        let db = dir.path().join(format!("db{i}"));
        let lines: String = (0..1500)
            .map(|n| {
                serde_json::json!({
                    "run_id": "big", "node_id": format!("n{n}"), "node_kind": "llm",
                    "input_task": format!("private input {n}"), "output_content": "o",
                    "verdict": "commit", "blocked": false, "uncertainty": 0.1,
                    "cost_usd": 0.01, "tokens_used": 3, "carbon_gco2": 0.0, "duration_ms": 1.0
                })
                .to_string()
                    + "\n"
            })
            .collect();
        let input = dir.path().join(format!("steps{i}.jsonl"));
        std::fs::write(&input, lines).unwrap();
        let (code, _, err) = at(&db, &["append", input.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let mut child = Command::new(BIN)
            .args(["--db", db.to_str().unwrap(), "audit", "anonymize", "big"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // A writable open finishes (or redoes) an erasure whose record is durable.
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        let (code, _, err) = at(&db, &["append", empty.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let steps = json(&db, &["replay", "big"]);
        let redacted: Vec<usize> = steps
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["redacted"].as_array().map_or(0, Vec::len))
            .collect();
        let erased = redacted.iter().filter(|n| **n > 0).count();
        assert!(
            erased == 0 || erased == redacted.len(),
            "delay {delay_ms} ms: {erased} of {} steps erased",
            redacted.len()
        );
        let (code, _, err) = at(&db, &["audit", "verify", "--all"]);
        assert_eq!(code, 0, "delay {delay_ms} ms: {err}");
    }
}
