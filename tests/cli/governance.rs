//! Black-box tests of `meshflow policy` and `meshflow tenant` (issue 5): reference cases A28
//! and A29 through the CLI, every write visible to the next invocation with and without a
//! running `serve` (the reference loses them: W1), conflicts and bad input writing nothing,
//! and views shown as of a past offset.
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

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
    let child = Command::new(BIN)
        .args(["--db", db.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while meshflow_engine::service::client::Client::discover(db).is_none() {
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
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
