//! Hostile input through the real CLI (issue 8, SPEC §10): each rejected input gets one clear
//! error and a documented exit code (2 for bad input and limits, 1 for a failed verification,
//! 3 for damaged or unsupported data), and nothing is written: the log's record count is the
//! same before and after. Ids with path separators are accepted and never reach outside a
//! directory when they become file names.
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`).

use std::path::Path;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_meshflow");

fn at(db: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    meshflow_suite::run_binary(BIN, &all)
}

fn records(db: &Path) -> u64 {
    let (code, out, err) = at(db, &["--json", "log", "stats"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(out.trim()).unwrap()["records"]
        .as_u64()
        .unwrap()
}

fn step(run: &str) -> Value {
    json!({
        "run_id": run, "node_id": "n", "node_kind": "llm", "input_task": "i",
        "output_content": "o", "verdict": "commit", "blocked": false, "uncertainty": 0.1,
        "cost_usd": 0.01, "tokens_used": 5, "carbon_gco2": 0.1, "duration_ms": 3.0,
    })
}

/// Appends the bytes of one JSON Lines file; returns (code, stderr).
fn append_bytes(db: &Path, name: &str, bytes: &[u8], extra: &[&str]) -> (i32, String) {
    let file = db.parent().unwrap().join(name);
    std::fs::write(&file, bytes).unwrap();
    let mut args = vec!["append", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, _, err) = at(db, &args);
    std::fs::remove_file(&file).unwrap();
    (code, err)
}

fn with(field: &str, value: Value) -> Vec<u8> {
    let mut s = step("r");
    s[field] = value;
    format!("{s}\n").into_bytes()
}

#[test]
fn hostile_json_lines_are_refused_with_exit_2_and_write_nothing() {
    // Proves each malformed or out-of-range step line (malformed JSON, invalid UTF-8, a line
    // over 64 MiB, a field over the record limit, wrong types, NaN and infinite floats,
    // negative costs and tokens, control characters in the run id, in the tenant id) is one
    // error naming the line, exit 2, and the log is unchanged.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (code, err) = append_bytes(&db, "ok.jsonl", format!("{}\n", step("r")).as_bytes(), &[]);
    assert_eq!(code, 0, "{err}");
    let before = records(&db);
    let mut huge_line = b"{\"run_id\":\"".to_vec();
    huge_line.resize(huge_line.len() + (65 << 20), b'x');
    huge_line.extend_from_slice(b"\"}\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "malformed JSON",
            b"{\"run_id\": \"r\",\n".to_vec(),
            "line 1",
        ),
        (
            "invalid UTF-8",
            b"{\"run_id\":\"r\xff\"}\n".to_vec(),
            "not UTF-8",
        ),
        ("a line over 64 MiB", huge_line, "over the limit"),
        (
            "a field over the record limit",
            with("output_content", json!("x".repeat(17 << 20))),
            "limit",
        ),
        (
            "a string for a number",
            with("tokens_used", json!("ten")),
            "line 1",
        ),
        (
            "a NaN literal",
            b"{\"run_id\":\"r\",\"uncertainty\":NaN}\n".to_vec(),
            "line 1",
        ),
        (
            "an infinite float",
            format!("{}\n", step("r"))
                .replace("\"cost_usd\":0.01", "\"cost_usd\":1e999")
                .into_bytes(),
            "line 1",
        ),
        ("a negative cost", with("cost_usd", json!(-1.0)), "line 1"),
        ("negative tokens", with("tokens_used", json!(-5)), "line 1"),
        (
            "a control character in the run id",
            with("run_id", json!("r\u{1}x")),
            "control character",
        ),
    ];
    for (what, bytes, says) in cases {
        let (code, err) = append_bytes(&db, "bad.jsonl", &bytes, &[]);
        assert_eq!(code, 2, "{what}: {err}");
        assert!(err.contains(says), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
        assert_eq!(records(&db), before, "{what}: nothing written");
    }
    let (code, err) = append_bytes(
        &db,
        "ok.jsonl",
        format!("{}\n", step("r")).as_bytes(),
        &["--tenant", "bad\u{1}tenant"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("control character"), "{err}");
    assert_eq!(records(&db), before);
}

#[test]
fn hostile_names_files_and_records_get_one_clear_error_each() {
    // Proves: a run id with `..` and `/` is accepted and its archive stays inside the
    // destination (percent-encoded); a secret name with a control character is refused (2)
    // and writes nothing; a truncated export is "not an export" (2) and an edited one fails
    // verification (1); a malformed ZIP and a ZIP bomb given to `snapshot verify` are INVALID
    // (1); a step record of an unknown future payload version stops reads with exit 3 naming
    // the version.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (code, err) = append_bytes(
        &db,
        "ok.jsonl",
        format!("{}\n", step("../../escape")).as_bytes(),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let dest = dir.path().join("archives");
    let (code, out, err) = at(
        &db,
        &[
            "--json",
            "replay",
            "../../escape",
            "--archive",
            dest.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let uri = serde_json::from_str::<Value>(out.trim()).unwrap()["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        uri.ends_with("/archives/%2E%2E%2F%2E%2E%2Fescape.json"),
        "{uri}"
    );
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);

    let pass = ["--vault-passphrase", "correct horse"];
    let (code, _, err) = at(&db, &[&["vault", "init"][..], &pass].concat());
    assert_eq!(code, 0, "{err}");
    let before = records(&db);
    let (code, _, err) = at(
        &db,
        &[&["vault", "put", "bad\u{7}name", "--value", "v"][..], &pass].concat(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("control"), "{err}");
    assert_eq!(records(&db), before, "nothing written");

    let export = dir.path().join("e.json");
    let (code, _, err) = at(&db, &["audit", "export", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&export).unwrap();
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let (code, _, err) = at(
        &db,
        &["audit", "verify", "--file", truncated.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an export"), "{err}");
    let edited = dir.path().join("edited.json");
    std::fs::write(
        &edited,
        text.replacen("\"output_content\":\"o\"", "\"output_content\":\"p\"", 1),
    )
    .unwrap();
    let (code, out, err) = at(
        &db,
        &["audit", "verify", "--file", edited.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}{err}");

    let garbage = dir.path().join("garbage.zip");
    std::fs::write(&garbage, b"PK\x03\x04 not really a zip").unwrap();
    let (code, out, _) = at(&db, &["snapshot", "verify", garbage.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a readable snapshot"), "{out}");
    // A bomb: a section of 1.2 GiB of spaces, a few MiB compressed, past the 1 GiB limit.
    let bomb = dir.path().join("bomb.zip");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&bomb).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("manifest.json", options).unwrap();
        zip.write_all(b"{}").unwrap();
        zip.start_file("alerts.json", options).unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..1200 {
            zip.write_all(&chunk).unwrap();
        }
        zip.finish().unwrap();
    }
    assert!(std::fs::metadata(&bomb).unwrap().len() < 8 << 20);
    let (code, out, _) = at(&db, &["snapshot", "verify", bomb.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("past the limit"), "{out}");

    let future = dir.path().join("future");
    {
        let (log, _) =
            meshflow_engine::log::Log::open(&future, meshflow_engine::log::LogOptions::default())
                .unwrap();
        let mut payload = vec![99u8];
        payload.extend_from_slice(b"a step from a later engine");
        log.append(
            meshflow_engine::log::RecordInput::new(
                meshflow_engine::ledger::step::KIND_STEP,
                "default",
                payload,
            ),
            meshflow_engine::log::Durability::Sync,
        )
        .unwrap();
        log.close().unwrap();
    }
    let (code, _, err) = at(&future, &["runs"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
