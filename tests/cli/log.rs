//! Black-box tests of the `meshflow` binary's log commands and demo: exit codes (0 valid,
//! 1 not found or verification failed, 2 usage, 3 corrupt), JSON output, and that read commands
//! never create a log.
//!
//! This file belongs to the `meshflow-cli` package (see `cli/Cargo.toml`, `[[test]]`) so that
//! cargo builds the binary for it and tells it where the binary is.

use meshflow_engine::format::frame;
use meshflow_engine::format::segment_header::segment_file_name;
use meshflow_engine::format::slot::{self, SlotView};

/// Runs the `meshflow` binary that cargo built for this test.
fn run_meshflow(args: &[&str]) -> (i32, String, String) {
    meshflow_suite::run_binary(env!("CARGO_BIN_EXE_meshflow"), args)
}

fn demo(dir: &std::path::Path) {
    let (code, out, err) = run_meshflow(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--agents",
        "4",
        "--steps",
        "50",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        summary["records"], 309,
        "200 steps, the erasure, a checkpoint-digest event and the 47 governance events of \
         4 agents (tenant, 3 rules and a decision, an SLA and 12 observations, 3 vault events, \
         13 lineage nodes and edges, 4 identities, a canary and 6 outcomes, 2 lock, 2 alert \
         and 2 flag events), then a fork copying 50 steps (51 records), two branches copying 3 \
         (8) and an anonymization (1 erasure record)"
    );
    assert_eq!(summary["valid"], true);
}

#[test]
fn read_commands_on_a_missing_log_exit_1_and_create_nothing() {
    // Proves `log stats|verify|tail` report "No ledger found" with exit 1 and write nothing.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none");
    for cmd in [&["log", "stats"][..], &["log", "verify"], &["log", "tail"]] {
        let mut args = vec!["--db", db.to_str().unwrap()];
        args.extend_from_slice(cmd);
        let (code, _, err) = run_meshflow(&args);
        assert_eq!(code, 1, "{cmd:?}: {err}");
        assert!(err.contains("No ledger found at"), "{err}");
        assert!(!db.exists());
    }
}

#[test]
fn demo_then_stats_verify_and_tail() {
    // Proves the demo's log verifies through the CLI and tail prints records as JSON lines.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo");
    demo(&db);
    let db = db.to_str().unwrap();
    let (code, out, _) = run_meshflow(&["--db", db, "log", "verify", "--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    // The demo's 309 records, the record of its compliance snapshot, and the
    // checkpoint-digest events (runs and governance views) its ledger appends on close.
    assert_eq!(report["records"], 312);
    // One step's input, then agent-03-run's 50 steps × 4 slots.
    assert_eq!(report["slots_erased"], 201);
    let (code, out, _) = run_meshflow(&["--db", db, "log", "stats", "--json"]);
    assert_eq!(code, 0);
    let stats: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(stats["records"], 312);
    assert_eq!(stats["head_hash"], report["head_hash"]);
    let (code, out, _) = run_meshflow(&[
        "--db", db, "log", "tail", "--from", "0", "--limit", "1000", "--json",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 312);
    assert_eq!(lines[0]["offset"], 0);
    let erased: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["slots"][0]["erased"] == true)
        .collect();
    assert_eq!(
        erased.len(),
        51,
        "the demo erases one step's input, then anonymizes agent-03-run's 50 steps"
    );
    let (code, out, _) = run_meshflow(&["--db", db, "log", "tail"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().count(),
        10,
        "tail defaults to the last ten records"
    );
}

#[test]
fn tampering_exits_1_and_damage_exits_3() {
    // Proves `log verify` separates a hash mismatch (1) from damaged bytes (3).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo");
    demo(&db);
    let seg = db.join(segment_file_name(0));
    let original = std::fs::read(&seg).unwrap();
    // Damage: flip a byte inside the first frame's payload; its CRC no longer matches.
    let mut damaged = original.clone();
    damaged[64 + 112 + 7 + 36 * 2 + 3] ^= 0xff;
    std::fs::write(&seg, &damaged).unwrap();
    let (code, _, err) = run_meshflow(&["--db", db.to_str().unwrap(), "log", "verify"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("corrupt"), "{err}");
    // Tampering: change a live slot 1's content and rewrite its CRC; only the commitment
    // catches it. (The first step whose slot 1 is live: which agent's step comes first, and
    // whether its run was anonymized, varies between demos.)
    let mut tampered = original.clone();
    let mut at = 64;
    let (view, salt, content) = loop {
        let view = frame::decode(&original[at..], 1 << 30).unwrap();
        if view.slot_count() > 1 {
            if let SlotView::Live { salt, content } = view.slot(1).unwrap() {
                if !content.is_empty() {
                    break (view, salt, content);
                }
            }
        }
        at += view.frame_len() as usize;
    };
    let range = view.slot_range(1).unwrap();
    let mut forged = content.to_vec();
    forged[0] ^= 0x01;
    slot::encode_live(
        &mut tampered[at + range.start..at + range.end],
        salt,
        &forged,
    )
    .unwrap();
    std::fs::write(&seg, &tampered).unwrap();
    let (code, _, err) = run_meshflow(&["--db", db.to_str().unwrap(), "log", "verify", "--json"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("\"verification_failed\""), "JSON error: {err}");
    std::fs::write(&seg, &original).unwrap();
    assert_eq!(
        run_meshflow(&["--db", db.to_str().unwrap(), "log", "verify"]).0,
        0
    );
}

#[test]
fn usage_errors_exit_2() {
    // Proves bad arguments exit 2 with one line on stderr.
    let (code, _, _) = run_meshflow(&["log", "frobnicate"]);
    assert_eq!(code, 2);
    let (code, _, err) = run_meshflow(&["bench", "--phases", "Q"]);
    assert_eq!(code, 2, "{err}");
}
