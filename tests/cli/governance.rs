//! Black-box tests of `meshflow policy` and `meshflow tenant` (issue 5): reference cases A28
//! and A29 through the CLI, every write visible to the next invocation with and without a
//! running `serve` (the reference loses them: W1), conflicts and bad input writing nothing,
//! and views shown as of a past offset.
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

use std::path::Path;
use std::process::Child;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshflow");

fn at(db: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    meshflow_suite::run_binary(BIN, &all)
}

fn ok(db: &Path, args: &[&str]) -> String {
    let (code, out, err) = at(db, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn json(db: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(db, &all);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn serve(db: &Path) -> Child {
    meshflow_suite::start_serve(BIN, db)
}

fn log_size(db: &Path) -> u64 {
    let out = ok(db, &["--json", "log", "stats"]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    v["records"].as_u64().unwrap()
}

/// The policy steps of A28 and A29, run against `db`.
fn a28_a29(db: &Path) {
    let t = ["--tenant", "acme"];
    let with =
        |args: &[&str]| -> Vec<String> { t.iter().chain(args).map(|s| s.to_string()).collect() };
    let run = |args: &[&str]| {
        let a = with(args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(db, &a)
    };
    let eval = |context: &str| -> Value {
        let a = with(&["policy", "evaluate", "--context", context]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        json(db, &a)
    };
    // A28: deny (priority 10) and allow (priority 0) both match: deny.
    run(&[
        "policy",
        "add",
        "deny-big",
        "--action",
        "deny",
        "--priority",
        "10",
        "--condition",
        "amount gt 100",
    ]);
    run(&[
        "policy",
        "add",
        "allow-all",
        "--action",
        "allow",
        "--priority",
        "0",
    ]);
    let v = eval(r#"{"amount": 150}"#);
    assert_eq!(
        (v["action"].as_str(), v["rule_name"].as_str()),
        (Some("deny"), Some("deny-big"))
    );
    assert_eq!(eval(r#"{"amount": 5}"#)["action"], "allow");
    // A29: `in` "a, b" vs "b"; `gt` with "abc"; `exists` on a null value; empty conditions.
    run(&[
        "policy",
        "add",
        "in-list",
        "--action",
        "alert",
        "--priority",
        "50",
        "--condition",
        "k in a, b",
    ]);
    assert_eq!(eval(r#"{"k": "b"}"#)["rule_name"], "in-list");
    run(&["policy", "disable", "in-list"]);
    run(&[
        "policy",
        "add",
        "gt-text",
        "--action",
        "log",
        "--priority",
        "60",
        "--condition",
        "n gt 1",
    ]);
    assert_eq!(
        eval(r#"{"n": "abc"}"#)["rule_name"],
        "allow-all",
        "gt on text is false"
    );
    run(&[
        "policy",
        "add",
        "exists-null",
        "--action",
        "log",
        "--priority",
        "70",
        "--condition",
        "z exists",
    ]);
    assert_eq!(eval(r#"{"z": null}"#)["rule_name"], "exists-null");
    let rules = {
        let a = with(&["policy", "list"]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        json(db, &a)
    };
    let names: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["exists-null", "gt-text", "in-list", "deny-big", "allow-all"]
    );
    assert_eq!(rules[2]["enabled"], false);
    // A28's no-match case: another tenant has no rules.
    let none = json(
        db,
        &[
            "--tenant",
            "nobody",
            "policy",
            "evaluate",
            "--context",
            "{}",
        ],
    );
    assert_eq!(none["action"], "allow");
    assert_eq!(none["reason"], "no rules matched — default allow");
}

#[test]
fn a28_a29_and_every_write_is_seen_by_the_next_invocation() {
    // Proves A28, A29 and W1 fixed without a service: each command is its own process.
    let dir = tempfile::tempdir().unwrap();
    a28_a29(dir.path());
}

#[test]
fn writes_forward_to_a_running_serve_and_persist_after_it_stops() {
    // Proves the governance write commands forward to `serve` (which holds the lock) and
    // that what they wrote is there after the service stops.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut server = serve(&db);
    a28_a29(&db);
    ok(
        &db,
        &[
            "tenant",
            "create",
            "Acme Corp",
            "--slug",
            "acme",
            "--plan",
            "pro",
        ],
    );
    let (code, _, err) = at(
        &db,
        &[
            "tenant", "create", "Other", "--slug", "acme", "--id", "other",
        ],
    );
    assert_eq!(code, 1, "a taken slug is a conflict: {err}");
    assert!(err.contains("slug 'acme'"), "{err}");
    server.kill().unwrap();
    server.wait().unwrap();
    let t = json(&db, &["tenant", "get", "acme"]);
    assert_eq!(
        (t["plan"].as_str(), t["status"].as_str()),
        (Some("pro"), Some("active"))
    );
    assert_eq!(
        json(&db, &["--tenant", "acme", "policy", "list"])
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn refusals_write_nothing_and_past_offsets_show_past_state() {
    // Proves conflicts (exit 1) and bad input (exit 2) leave the log as it was, and that
    // `--at-offset` shows a view before later events.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path();
    let first = json(db, &["policy", "add", "r1", "--action", "deny"]);
    let offset = first["offset"].as_u64().unwrap();
    ok(db, &["policy", "add", "r2", "--action", "allow"]);
    let size = log_size(db);
    for (args, code) in [
        (&["policy", "add", "r1", "--action", "allow"][..], 1),
        (&["policy", "enable", "nope"][..], 1),
        (&["policy", "add", "r3", "--action", "maybe"][..], 2),
        (
            &[
                "policy",
                "add",
                "r3",
                "--action",
                "deny",
                "--condition",
                "x between 1",
            ][..],
            2,
        ),
        (&["policy", "default", "log"][..], 2),
        (
            &["tenant", "create", "T", "--slug", "t", "--plan", "gold"][..],
            2,
        ),
        (&["tenant", "suspend", "nobody"][..], 1),
    ] {
        let (got, _, err) = at(db, args);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    assert_eq!(log_size(db), size, "no refused command wrote a record");
    let past = json(
        db,
        &["policy", "list", "--at-offset", &(offset + 1).to_string()],
    );
    assert_eq!(past.as_array().unwrap().len(), 1);
    let before = json(db, &["policy", "list", "--at-time", "1970-01-01T00:00:01Z"]);
    assert_eq!(
        before.as_array().unwrap().len(),
        0,
        "before the first record"
    );
    let later = json(db, &["policy", "list", "--at-time", "4000000000"]);
    assert_eq!(later.as_array().unwrap().len(), 2, "after the last record");
    assert_eq!(at(db, &["policy", "list", "--at-time", "soon"]).0, 2);
    let (code, _, _) = at(db, &["tenant", "get", "nobody"]);
    assert_eq!(code, 1);
}

#[test]
fn a30_a31_sla_contracts_and_breaches_through_the_cli() {
    // Proves A30 (ordered thresholds; a redefinition replaces) and A31 (no breach below 10
    // observations in the window; then p50/p95/p99 breaches with observed > threshold, each
    // derived once: W14).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path();
    let (code, _, err) = at(
        db,
        &[
            "sla", "define", "a", "--p50", "3", "--p95", "2", "--p99", "5",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("p50 ≤ p95 ≤ p99"), "{err}");
    ok(
        db,
        &[
            "sla", "define", "a", "--p50", "100", "--p95", "200", "--p99", "300",
        ],
    );
    ok(
        db,
        &[
            "sla", "define", "a", "--p50", "10", "--p95", "20", "--p99", "30",
        ],
    );
    let contracts = json(db, &["sla", "list"]);
    assert_eq!(contracts.as_array().unwrap().len(), 1);
    assert_eq!(contracts[0]["p99_ms"], 30.0);
    for _ in 0..9 {
        let r = json(db, &["sla", "record", "a", "--latency", "500"]);
        assert_eq!(r["breaches"].as_array().unwrap().len(), 0);
    }
    let r = json(db, &["sla", "record", "a", "--latency", "500"]);
    let kinds: Vec<&str> = r["breaches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["breach_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["p50", "p95", "p99"]);
    for b in r["breaches"].as_array().unwrap() {
        assert!(b["observed"].as_f64().unwrap() > b["threshold"].as_f64().unwrap());
    }
    ok(db, &["sla", "record", "a", "--latency", "500"]);
    assert_eq!(json(db, &["sla", "breaches"]).as_array().unwrap().len(), 3);
    let stats = json(db, &["sla", "stats", "a"]);
    assert_eq!(
        (stats["total"].as_u64(), stats["p50_ms"].as_f64()),
        (Some(11), Some(500.0))
    );
}

/// Runs a vault command with `--vault-passphrase PASS` (an argument of the subcommand).
fn with_pass(db: &Path, pass: &str, args: &[&str]) -> (i32, String, String) {
    let mut words: Vec<&str> = args.to_vec();
    words.extend_from_slice(&["--vault-passphrase", pass]);
    at(db, &words)
}

#[test]
fn a32_a33_the_vault_persists_audits_and_detects_a_wrong_passphrase() {
    // Proves A32 (a stored secret reads back after the process ends; the audit trail, newest
    // first, shows read then write) and A33 (a wrong passphrase is an error, and the failed
    // attempt is audited: the only record it writes).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path();
    let (code, _, err) = at(db, &["vault", "init"]);
    assert_eq!(code, 2, "no default passphrase: {err}");
    assert_eq!(with_pass(db, "pw", &["vault", "init"]).0, 0);
    assert_eq!(
        with_pass(db, "pw", &["vault", "put", "k", "--value", "val"]).0,
        0
    );
    let (code, out, err) = with_pass(db, "pw", &["vault", "get", "k"]);
    assert_eq!((code, out.trim()), (0, "val"), "{err}");
    let audit = json(db, &["vault", "audit"]);
    let ops: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["read", "write", "init"]);
    let size = log_size(db);
    let (code, out, err) = with_pass(db, "wrong", &["vault", "get", "k"]);
    assert_eq!(code, 1);
    assert!(out.is_empty() && err.contains("wrong passphrase"), "{err}");
    // The failed attempt's audit event, and the checkpoint-digest events (runs and governance
    // views) the engine appends when a writer closes after the views moved: nothing of the
    // attempted operation.
    assert!(
        log_size(db) <= size + 3,
        "only the failed attempt's audit event"
    );
    assert_eq!(json(db, &["vault", "audit"]).as_array().unwrap().len(), 4);
    let newest = &json(db, &["vault", "audit", "--limit", "1"])[0];
    assert_eq!(newest["operation"], "read_denied");
    let (code, _, _) = with_pass(db, "wrong", &["vault", "put", "k2", "--value", "x"]);
    assert_eq!(code, 1);
    assert!(
        json(db, &["vault", "list"]).as_array().unwrap().len() == 1,
        "nothing stored"
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_secret_value_appears_in_no_file_export_or_error_message() {
    // Proves plaintext never reaches the log, checkpoints, exports or errors: after storing,
    // reading, rotating (through serve too), failing and deleting, no file under the data
    // directory, no export and no error message holds either value; the deleted secret's
    // ciphertexts are erased and every chain still verifies.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let first = "s3cr3t-PLAINTEXT-first-4242";
    let second = "s3cr3t-PLAINTEXT-second-4242";
    let mut errors = String::new();
    let mut record = |r: (i32, String, String)| {
        errors.push_str(&r.2);
        r
    };
    assert_eq!(record(with_pass(&db, "pw", &["vault", "init"])).0, 0);
    assert_eq!(
        record(with_pass(
            &db,
            "pw",
            &["vault", "put", "api-key", "--value", first]
        ))
        .0,
        0
    );
    assert_eq!(
        record(with_pass(&db, "pw", &["vault", "get", "api-key"]))
            .1
            .trim(),
        first
    );
    record(with_pass(&db, "bad", &["vault", "get", "api-key"]));
    record(with_pass(
        &db,
        "pw",
        &["vault", "put", "api-key", "--value", first],
    ));
    let mut server = serve(&db);
    assert_eq!(
        record(with_pass(
            &db,
            "pw",
            &["vault", "rotate", "api-key", "--value", second]
        ))
        .0,
        0
    );
    assert_eq!(
        record(with_pass(&db, "pw", &["vault", "get", "api-key"]))
            .1
            .trim(),
        second
    );
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(
        record(with_pass(&db, "pw", &["vault", "get", "api-key"]))
            .1
            .trim(),
        second
    );
    let export = dir.path().join("export.json");
    ok(&db, &["audit", "export", "--out", export.to_str().unwrap()]);
    ok(&db, &["log", "checkpoint"]);
    for needle in [first, second] {
        assert!(!errors.contains(needle), "an error message holds the value");
        for file in files_under(dir.path()) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds the plaintext",
                file.display()
            );
        }
    }
    assert_eq!(with_pass(&db, "pw", &["vault", "delete", "api-key"]).0, 0);
    let (code, _, err) = with_pass(&db, "pw", &["vault", "get", "api-key"]);
    assert_eq!(code, 1, "{err}");
    ok(&db, &["audit", "verify", "--all"]);
    ok(&db, &["log", "verify"]);
}

#[test]
fn delete_subject_erases_a_subjects_name_from_every_file_and_keeps_the_chains() {
    // Proves lineage: edges only between known nodes, traces, and that delete-subject removes
    // the subject's nodes and edges and leaves its name and metadata in no file.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let subject = "alice.subject@example.com";
    ok(
        &db,
        &[
            "lineage",
            "add-node",
            subject,
            "--kind",
            "source",
            "--id",
            "a",
            "--metadata",
            &format!("{{\"email\":\"{subject}\"}}"),
        ],
    );
    ok(
        &db,
        &[
            "lineage",
            "add-node",
            "clean",
            "--kind",
            "transform",
            "--id",
            "b",
        ],
    );
    ok(
        &db,
        &[
            "lineage", "add-node", "report", "--kind", "sink", "--id", "c",
        ],
    );
    ok(
        &db,
        &["lineage", "add-edge", "a", "b", "--relation", "feeds"],
    );
    ok(
        &db,
        &["lineage", "add-edge", "b", "c", "--relation", "feeds"],
    );
    assert_eq!(at(&db, &["lineage", "add-edge", "a", "nowhere"]).0, 1);
    assert_eq!(
        at(&db, &["lineage", "add-node", "x", "--kind", "spaceship"]).0,
        2
    );
    let down = json(&db, &["lineage", "impact", "a"]);
    assert_eq!(down.as_array().unwrap().len(), 2);
    let up = json(&db, &["lineage", "upstream", "c"]);
    assert_eq!(up[1]["name"], subject);
    ok(&db, &["lineage", "delete-subject", subject]);
    let graph = json(&db, &["lineage", "list"]);
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(graph["edges"].as_array().unwrap().len(), 1);
    ok(&db, &["log", "checkpoint"]);
    for file in files_under(&db) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(subject.len())
                .any(|w| w == subject.as_bytes()),
            "{} still holds the subject's name",
            file.display()
        );
    }
    ok(&db, &["log", "verify"]);
    ok(&db, &["audit", "verify", "--all"]);
}
