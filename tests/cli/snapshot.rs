//! Black-box tests of `meshflow snapshot export | verify | list` (issue 7): A37 through separate
//! CLI invocations, the seed's entry order, refusal of an existing file without --force,
//! pinned exports byte-identical, tampered files exit 1 naming the failure, exports recorded
//! through a running `serve`, and a view that cannot be built failing the export (A36).
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

use std::io::Read;
use std::path::Path;

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

fn entry_names(file: &Path) -> Vec<String> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(file).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().to_string())
        .collect()
}

fn entry(file: &Path, name: &str) -> Value {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name(name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn populate(db: &Path) {
    ok(db, &["policy", "add", "no-pii", "--action", "deny"]);
    ok(
        db,
        &[
            "sla", "define", "planner", "--p50", "100", "--p95", "200", "--p99", "300",
        ],
    );
    ok(
        db,
        &[
            "tenant",
            "create",
            "Default Co",
            "--slug",
            "default",
            "--id",
            "default",
        ],
    );
    ok(db, &["flag", "define", "beta"]);
}

#[test]
fn a37_separate_invocations_each_land_in_the_snapshot_in_the_seeds_order() {
    // Proves A37 (the reference's CLI gave 0 records, W1): one policy rule, SLA contract,
    // tenant and flag written by separate processes are one record each; manifest.json is
    // the first entry and the 13 sections follow in the seed's order; verify passes alone
    // and against the log, and the export is listed as recorded.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    populate(&db);
    let file = dir.path().join("audit.zip");
    let r = json(
        &db,
        &[
            "snapshot",
            "export",
            "--output",
            file.to_str().unwrap(),
            "--created-by",
            "compliance@example.com",
            "--description",
            "Q1 package",
        ],
    );
    assert_eq!(r["sections"], 13);
    assert_eq!(r["records"], 4);
    let names = entry_names(&file);
    assert_eq!(names[0], "manifest.json");
    let sections: Vec<&str> = names[1..]
        .iter()
        .map(|n| n.strip_suffix(".json").unwrap())
        .collect();
    assert_eq!(sections, meshflow_engine::snapshot::SECTIONS);
    let manifest = entry(&file, "manifest.json");
    for s in ["policy_rules", "sla_contracts", "tenants", "feature_flags"] {
        assert_eq!(manifest["record_counts"][s], 1, "{s}");
    }
    assert_eq!(manifest["description"], "Q1 package");
    let (code, out, err) =
        meshflow_suite::run_binary(BIN, &["snapshot", "verify", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Not checked against a log"), "{out}");
    let v = json(&db, &["snapshot", "verify", file.to_str().unwrap()]);
    assert_eq!(
        (v["valid"].as_bool(), v["manifest_recorded"].as_bool()),
        (Some(true), Some(true))
    );
    let listed = json(&db, &["snapshot", "list"]);
    assert_eq!(listed[0]["snapshot_id"], r["snapshot_id"]);
    assert_eq!(listed[0]["manifest_sha256"], r["manifest_sha256"]);
}

#[test]
fn existing_files_pinned_exports_and_tampering() {
    // Proves: an existing output is refused (exit 1) and kept without --force; two pinned
    // exports at one offset are byte-identical even after more events; a byte flipped inside
    // a section makes verify exit 1 naming it; an id without a time is a usage error.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    populate(&db);
    let offset = json(&db, &["log", "stats"])["records"]
        .as_u64()
        .unwrap()
        .to_string();
    let a = dir.path().join("a.zip");
    let b = dir.path().join("b.zip");
    let pinned = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "export",
            "--output",
            file.to_str().unwrap(),
            "--at-offset",
            &offset,
            "--snapshot-id",
            "q1-2026",
            "--created-at",
            "2026-04-01T00:00:00Z",
            "--no-record",
        ];
        args.extend_from_slice(extra);
        at(&db, &args)
    };
    assert_eq!(pinned(&a, &[]).0, 0);
    ok(&db, &["policy", "add", "later", "--action", "allow"]);
    assert_eq!(pinned(&b, &[]).0, 0);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "byte-identical"
    );
    let (code, _, err) = pinned(&a, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(pinned(&a, &["--force"]).0, 0);
    let (code, _, err) = at(
        &db,
        &[
            "snapshot",
            "export",
            "--output",
            "x.zip",
            "--snapshot-id",
            "only-id",
        ],
    );
    assert_eq!(code, 2, "{err}");

    // Flip one byte of policy_rules.json's stored (compressed) data: the ZIP's own CRC or the
    // section hash catches it.
    let bytes = std::fs::read(&a).unwrap();
    let name = b"policy_rules.json";
    let at_name = bytes.windows(name.len()).position(|w| w == name).unwrap();
    let mut bad = bytes.clone();
    bad[at_name + name.len() + 4] ^= 0x20;
    let tampered = dir.path().join("tampered.zip");
    std::fs::write(&tampered, &bad).unwrap();
    let (code, out, _) = at(&db, &["snapshot", "verify", tampered.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("INVALID") && out.contains("policy_rules"),
        "{out}"
    );
}

#[test]
fn exports_through_a_running_serve_are_recorded_and_a_broken_view_fails_the_export() {
    // Proves the export is recorded through `serve` when one holds the lock (the manifest
    // digest is then in the log), and A36: a policy record that does not apply makes the
    // export exit 3 naming the policy view and leaves no output file.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    populate(&db);
    let mut serve = meshflow_suite::start_serve(BIN, &db);
    let file = dir.path().join("s.zip");
    let r = json(
        &db,
        &["snapshot", "export", "--output", file.to_str().unwrap()],
    );
    let v = json(&db, &["snapshot", "verify", file.to_str().unwrap()]);
    assert_eq!(v["manifest_recorded"], true, "{v}");
    assert_eq!(
        json(&db, &["snapshot", "list"])[0]["snapshot_id"],
        r["snapshot_id"]
    );
    serve.kill().unwrap();
    serve.wait().unwrap();

    let broken = dir.path().join("broken");
    {
        let (log, _) =
            meshflow_engine::log::Log::open(&broken, meshflow_engine::log::LogOptions::default())
                .unwrap();
        let mut payload = vec![1u8];
        payload.extend_from_slice(br#"{"op":"enable","rule":"no-such-rule"}"#);
        let kind = meshflow_engine::governance::Family::Policy.kind();
        log.append(
            meshflow_engine::log::RecordInput::new(kind, "default", payload),
            meshflow_engine::log::Durability::Sync,
        )
        .unwrap();
        log.close().unwrap();
    }
    let out = dir.path().join("never.zip");
    let (code, _, err) = at(
        &broken,
        &["snapshot", "export", "--output", out.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("policy"), "{err}");
    assert!(!out.exists());
}
