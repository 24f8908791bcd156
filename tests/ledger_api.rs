//! The `Ledger` API (issue 3): appends with engine-assigned fields and optimistic concurrency,
//! idempotent retries, tenant scoping, reads, summaries, diffs, CSV and chain verification,
//! across reopen; tampering with a stored step is reported naming the step.

use meshflow_engine::ledger::export::{hex, CSV_HEADER};
use meshflow_engine::ledger::{Ledger, LedgerError, StepRequest};
use meshflow_engine::log::{Durability, LogOptions, LogReader};

fn request(run: &str, node: &str, cost: f64) -> StepRequest {
    StepRequest {
        run_id: run.to_string(),
        node_id: node.to_string(),
        node_kind: "llm".to_string(),
        input_task: format!("task for {node}"),
        output_content: format!("output of {node}"),
        verdict: "commit".to_string(),
        uncertainty: 0.1,
        cost_usd: cost,
        tokens_used: 100,
        carbon_gco2: 0.001,
        duration_ms: 12.5,
        ..StepRequest::default()
    }
}

fn open(dir: &std::path::Path) -> Ledger {
    Ledger::open(dir, LogOptions::default(), "default")
        .unwrap()
        .0
}

fn log_records(dir: &std::path::Path) -> u64 {
    LogReader::open(dir, LogOptions::default())
        .unwrap()
        .snapshot()
        .unwrap()
        .head
        .next_offset
}

#[test]
fn appends_chain_per_run_and_verify_valid_across_runs_and_reopen() {
    // Proves A4 and A8: interleaved runs each get a valid chain from "", before and after reopen.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut receipts = Vec::new();
    for n in 0..3 {
        for run in ["R1", "R2"] {
            receipts.push(
                ledger
                    .append(request(run, &format!("n{n}"), 0.01), Durability::Sync)
                    .unwrap(),
            );
        }
    }
    assert_eq!(receipts[4].step_index, 2);
    assert_eq!(receipts[4].run_id, "R1");
    assert_eq!(receipts[4].step_id.len(), 36, "engine-assigned UUID");
    let steps = ledger.get_run("R1").unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0].prev_hash, [0; 32]);
    assert_eq!(steps[1].prev_hash, steps[0].entry_hash);
    assert_eq!(steps[2].entry_hash, receipts[4].entry_hash);
    for run in ["R1", "R2"] {
        let report = ledger.verify_chain(run).unwrap();
        assert!(report.valid, "{report:?}");
        assert_eq!(report.steps_verified, 3);
    }
    drop(ledger);
    let ledger = open(dir.path());
    assert_eq!(ledger.list_runs().unwrap(), vec!["R2", "R1"]);
    assert_eq!(ledger.get_run("R1").unwrap(), steps);
    let next = ledger
        .append(request("R1", "n3", 0.01), Durability::Sync)
        .unwrap();
    assert_eq!(next.step_index, 3);
    assert!(ledger.verify_chain("R1").unwrap().valid);
    assert_eq!(ledger.list_runs().unwrap(), vec!["R1", "R2"]);
}

#[test]
fn unknown_runs_are_not_found_in_every_read() {
    // Proves A5/A19/A21 with SPEC §11: an unknown run is "not found", never an empty success.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ledger
        .append(request("A", "n0", 0.01), Durability::Sync)
        .unwrap();
    let is_not_found = |e: LedgerError| matches!(e, LedgerError::NotFound { .. });
    assert!(is_not_found(ledger.get_run("nope").unwrap_err()));
    assert!(is_not_found(ledger.verify_chain("nope").unwrap_err()));
    assert!(is_not_found(ledger.run_summary("nope").unwrap_err()));
    assert!(is_not_found(ledger.load_state("nope", 0).unwrap_err()));
    assert!(is_not_found(ledger.diff("A", "nope").unwrap_err()));
    assert!(is_not_found(
        ledger.export_run("nope", &mut Vec::new()).unwrap_err()
    ));
    let mut csv = Vec::new();
    assert!(is_not_found(
        ledger.export_csv(Some("nope"), &mut csv).unwrap_err()
    ));
    assert!(csv.is_empty(), "nothing written for an unknown run");
}

#[test]
fn identical_retry_returns_the_original_receipt_and_different_content_conflicts() {
    // Proves A9: a step_id is never silently replaced; retries are idempotent, also after reopen.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut first = request("A", "n0", 0.01);
    first.step_id = Some("A-s0".to_string());
    let original = ledger.append(first.clone(), Durability::Sync).unwrap();
    let again = ledger.append(first.clone(), Durability::Sync).unwrap();
    assert_eq!(
        again, original,
        "identical retry (engine timestamp not sent)"
    );
    let records = log_records(dir.path());
    let mut changed = first.clone();
    changed.output_content = "something else".to_string();
    let err = ledger
        .append(changed.clone(), Durability::Sync)
        .unwrap_err();
    assert!(
        matches!(&err, LedgerError::Conflict { reason } if reason.contains("output_content")),
        "{err}"
    );
    let mut twice = request("A", "n1", 0.01);
    twice.step_id = Some("A-dup".to_string());
    let err = ledger
        .append_batch(vec![twice.clone(), twice], Durability::Sync)
        .unwrap_err();
    assert!(
        matches!(&err, LedgerError::Invalid { reason } if reason.contains("appears twice")),
        "{err}"
    );
    let mut other_run = first.clone();
    other_run.run_id = "B".to_string();
    assert!(matches!(
        ledger.append(other_run, Durability::Sync).unwrap_err(),
        LedgerError::Conflict { .. }
    ));
    assert_eq!(log_records(dir.path()), records, "nothing written");
    drop(ledger);
    let ledger = open(dir.path());
    assert_eq!(ledger.append(first, Durability::Sync).unwrap(), original);
    assert!(matches!(
        ledger.append(changed, Durability::Sync).unwrap_err(),
        LedgerError::Conflict { .. }
    ));
    assert_eq!(ledger.get_run("A").unwrap().len(), 1);
}

#[test]
fn run_head_expectations_are_checked_and_a_mismatch_writes_nothing() {
    // Proves A10: a wrong prev_hash or expected_step_index is a conflict, a right one is accepted.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut r = request("A", "n0", 0.01);
    r.prev_hash = Some(String::new());
    let s0 = ledger.append(r, Durability::Sync).unwrap();
    let records = log_records(dir.path());
    for bad in [
        StepRequest {
            prev_hash: Some(String::new()),
            ..request("A", "n1", 0.01)
        },
        StepRequest {
            prev_hash: Some("ab".repeat(32)),
            ..request("A", "n1", 0.01)
        },
        StepRequest {
            expected_step_index: Some(0),
            ..request("A", "n1", 0.01)
        },
        StepRequest {
            expected_step_index: Some(5),
            ..request("A", "n1", 0.01)
        },
    ] {
        let err = ledger.append(bad, Durability::Sync).unwrap_err();
        assert!(matches!(err, LedgerError::Conflict { .. }), "{err}");
    }
    assert_eq!(log_records(dir.path()), records, "nothing written");
    let s1 = ledger
        .append(
            StepRequest {
                prev_hash: Some(hex(&s0.entry_hash)),
                ..request("A", "n1", 0.01)
            },
            Durability::Sync,
        )
        .unwrap();
    assert_eq!(s1.step_index, 1);
    let s2 = ledger
        .append(
            StepRequest {
                expected_step_index: Some(2),
                ..request("A", "n2", 0.01)
            },
            Durability::Sync,
        )
        .unwrap();
    assert_eq!(s2.step_index, 2);
    // A retry of a step sent with prev_hash (its ack lost) returns the original receipt,
    // though the run's head has moved on.
    let with_prev = StepRequest {
        step_id: Some("A-s3".to_string()),
        prev_hash: Some(hex(&s2.entry_hash)),
        ..request("A", "n3", 0.01)
    };
    let s3 = ledger.append(with_prev.clone(), Durability::Sync).unwrap();
    assert_eq!(ledger.append(with_prev, Durability::Sync).unwrap(), s3);
}

#[test]
fn invalid_steps_are_typed_errors_and_a_bad_step_fails_its_whole_batch() {
    // Proves missing/negative/non-finite/oversized input is refused before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let records = log_records(dir.path());
    let bad = [
        StepRequest {
            cost_usd: f64::NAN,
            ..request("A", "n", 0.0)
        },
        StepRequest {
            duration_ms: -1.0,
            ..request("A", "n", 0.0)
        },
        StepRequest {
            run_id: "x".repeat(129),
            ..request("A", "n", 0.0)
        },
        StepRequest {
            run_id: "bad\nid".to_string(),
            ..request("A", "n", 0.0)
        },
        StepRequest {
            metadata_json: Some("[1]".to_string()),
            ..request("A", "n", 0.0)
        },
        StepRequest {
            tenant_id: Some("other".to_string()),
            ..request("A", "n", 0.0)
        },
        StepRequest {
            output_content: "x".repeat(64 << 20),
            ..request("A", "n", 0.0)
        },
    ];
    for b in bad {
        let err = ledger
            .append_batch(vec![request("A", "ok", 0.0), b], Durability::Sync)
            .unwrap_err();
        assert!(matches!(err, LedgerError::Invalid { .. }), "{err}");
    }
    assert_eq!(log_records(dir.path()), records, "nothing written");
    assert!(ledger.list_runs().unwrap().is_empty());
}

#[test]
fn tenants_see_only_their_own_runs() {
    // Proves W8 fixed for the ledger reads: another tenant's run is "not found".
    let dir = tempfile::tempdir().unwrap();
    let alpha = Ledger::open(dir.path(), LogOptions::default(), "alpha")
        .unwrap()
        .0;
    let beta = alpha.with_tenant("beta").unwrap();
    alpha
        .append(request("alpha-1", "n0", 0.01), Durability::Sync)
        .unwrap();
    beta.append(request("shared-name", "n0", 0.01), Durability::Sync)
        .unwrap();
    alpha
        .append(request("shared-name", "n0", 0.01), Durability::Sync)
        .unwrap();
    assert_eq!(beta.list_runs().unwrap(), vec!["shared-name"]);
    assert!(matches!(
        beta.get_run("alpha-1").unwrap_err(),
        LedgerError::NotFound { .. }
    ));
    assert!(matches!(
        beta.verify_chain("alpha-1").unwrap_err(),
        LedgerError::NotFound { .. }
    ));
    assert_eq!(alpha.get_run("shared-name").unwrap().len(), 1);
    assert_eq!(beta.get_run("shared-name").unwrap()[0].step_index, 0);
}

#[test]
fn summary_load_state_diff_and_csv_follow_the_reference() {
    // Proves A17, A18, A20 and A21: shapes and values as the reference's.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    for node in ["plan", "analyze", "report"] {
        ledger
            .append(request("A", node, 0.01), Durability::Sync)
            .unwrap();
    }
    for node in ["plan", "analyze", "report", "extra_node"] {
        let mut r = request("B", node, 0.02);
        if node == "analyze" {
            r.output_content = "different".to_string();
            r.blocked = true;
        }
        ledger.append(r, Durability::Sync).unwrap();
    }
    assert_eq!(
        ledger
            .load_state("A", 0)
            .unwrap()
            .unwrap()
            .stored
            .fields
            .node_id,
        "plan"
    );
    assert!(ledger.load_state("A", 99).unwrap().is_none());
    assert!(ledger.load_state("A", -1).unwrap().is_none());

    let s = ledger.run_summary("B").unwrap();
    assert_eq!(s.steps, 4);
    assert_eq!(s.nodes, vec!["plan", "analyze", "report", "extra_node"]);
    assert_eq!(s.total_cost_usd, 0.08);
    assert_eq!(s.total_tokens, 400);
    assert_eq!(s.total_carbon_gco2, 0.004);
    assert_eq!(s.blocked_steps, 1);

    let d = ledger.diff("A", "B").unwrap();
    assert_eq!(d.only_in_b, vec!["extra_node"]);
    assert_eq!(d.common, vec!["analyze", "plan", "report"]);
    assert_eq!(d.changed.len(), 1);
    assert_eq!(d.changed[0].node_id, "analyze");
    assert!(d.cost_delta_usd > 0.0);
    assert_eq!(d.token_delta, 100);

    let mut csv = Vec::new();
    ledger.export_csv(Some("A"), &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], CSV_HEADER.join(","));
    assert_eq!(lines.len(), 5, "header, 3 rows, empty after the last CRLF");
    assert!(lines[1].starts_with("A,"));
    assert!(lines[1].contains(",llm,commit,0,,0.1,0.01,100,0.001,12.5,"));
    assert!(lines[1].ends_with(','), "step 0's prev_hash is empty");
}

/// Where the record at `offset` lives: (segment file, frame position).
fn locate(dir: &std::path::Path, offset: u64) -> (std::path::PathBuf, usize) {
    let reader = LogReader::open(dir, LogOptions::default()).unwrap();
    let record = reader.get(offset).unwrap().unwrap();
    let file = dir.join(meshflow_engine::format::segment_header::segment_file_name(
        record.segment_base(),
    ));
    (file, usize::try_from(record.position()).unwrap())
}

fn u32_at(b: &[u8], p: usize) -> usize {
    u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) as usize
}

/// Recomputes the frame CRC at `pos` (what a deliberate tamperer does).
fn reseal_frame(bytes: &mut [u8], pos: usize) {
    let tenant_len = bytes[pos + 35] as usize;
    let payload_len = u32_at(bytes, pos + 40);
    let slots = u16::from_le_bytes(bytes[pos + 44..pos + 46].try_into().unwrap()) as usize;
    let committed = &bytes[pos + 112..pos + 112 + tenant_len + 36 * slots + payload_len];
    let crc = crc32c::crc32c_append(crc32c::crc32c(committed), &bytes[pos + 8..pos + 112]);
    bytes[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
}

fn three_step_run(dir: &std::path::Path) -> Vec<u64> {
    let ledger = open(dir);
    let offsets = (0..3)
        .map(|n| {
            let mut r = request("A", &format!("n{n}"), 0.01);
            r.step_id = Some(format!("A-s{n}"));
            ledger.append(r, Durability::Sync).unwrap().offset
        })
        .collect();
    ledger
        .append(request("other", "x", 0.0), Durability::Sync)
        .unwrap();
    offsets
}

#[test]
fn an_edited_output_with_a_fixed_slot_crc_is_reported_naming_the_step() {
    // Proves A6: an edited field is caught (its commitment), naming step 1; step 2 still links.
    let dir = tempfile::tempdir().unwrap();
    let offsets = three_step_run(dir.path());
    let (file, pos) = locate(dir.path(), offsets[1]);
    let mut bytes = std::fs::read(&file).unwrap();
    let tenant_len = bytes[pos + 35] as usize;
    let payload_len = u32_at(&bytes, pos + 40);
    let committed = 112 + tenant_len + 36 * 4 + payload_len;
    let slot0 = pos + committed.div_ceil(8) * 8;
    let slot1 = slot0 + (40 + u32_at(&bytes, pos + 112 + tenant_len)).div_ceil(8) * 8;
    bytes[slot1 + 40] ^= 0x20; // first byte of output_content
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&bytes[slot1..slot1 + 4]),
        &bytes[slot1 + 8..slot1 + 40 + u32_at(&bytes, pos + 112 + tenant_len + 36)],
    );
    bytes[slot1 + 4..slot1 + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&file, bytes).unwrap();

    let ledger = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    let report = ledger.verify_chain("A").unwrap();
    assert!(!report.valid);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].step_index, 1);
    assert_eq!(report.errors[0].step_id, "A-s1");
    assert!(report.errors[0]
        .message
        .starts_with("step 1 (A-s1): entry_hash mismatch"));
    assert!(report.errors[0].message.contains("output_content"));
}

#[test]
fn an_edited_cost_with_a_fixed_crc_is_reported_naming_the_step() {
    // Proves A7: a committed field (cost_usd) is covered; a rewrite that also fixes the frame
    // CRC is caught by the record's global hash and reported against the step.
    let dir = tempfile::tempdir().unwrap();
    let offsets = three_step_run(dir.path());
    let (file, pos) = locate(dir.path(), offsets[1]);
    let original = std::fs::read(&file).unwrap();
    let tenant_len = original[pos + 35] as usize;
    let payload = pos + 112 + tenant_len + 36 * 4;
    // cost_usd sits after version, five texts, blocked and uncertainty.
    let mut p = payload + 1;
    for _ in 0..5 {
        p += 4 + u32_at(&original, p);
    }
    let cost = p + 1 + 8;
    let mut bytes = original.clone();
    bytes[cost + 6] ^= 0x01;
    reseal_frame(&mut bytes, pos);
    std::fs::write(&file, &bytes).unwrap();
    let ledger = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    let report = ledger.verify_chain("A").unwrap();
    assert!(!report.valid);
    assert_eq!(
        (
            report.errors[0].step_index,
            report.errors[0].step_id.as_str()
        ),
        (1, "A-s1")
    );
    assert_eq!(report.errors[0].hash, "global_hash");
}

#[test]
fn reads_follow_runs_across_segment_rolls_in_a_reader_that_opened_before_them() {
    // Proves point reads stay correct when the segment a reader first saw as active is sealed
    // and new segments follow, and that every chain verifies across segments.
    let dir = tempfile::tempdir().unwrap();
    let options = meshflow_suite::small_options();
    let ledger = Ledger::open(dir.path(), options, "default").unwrap().0;
    let reader = Ledger::open_read_only(dir.path(), options, "default").unwrap();
    ledger
        .append(request("R", "n0", 0.01), Durability::Sync)
        .unwrap();
    assert_eq!(reader.get_run("R").unwrap().len(), 1);
    for n in 1..400 {
        let mut r = request(if n % 2 == 0 { "R" } else { "S" }, &format!("n{n}"), 0.01);
        r.input_task = "x".repeat(700);
        ledger.append(r, Durability::Sync).unwrap();
    }
    let stats = LogReader::open(dir.path(), LogOptions::default())
        .unwrap()
        .stats()
        .unwrap();
    assert!(
        stats.segments.len() > 3,
        "the log rolled: {} segments",
        stats.segments.len()
    );
    let steps = reader.get_run("R").unwrap();
    assert_eq!(steps.len(), 200);
    assert_eq!(steps[199].stored.fields.node_id, "n398");
    assert!(reader.verify_chain("R").unwrap().valid);
    assert!(reader.verify_chain("S").unwrap().valid);
}

#[test]
fn verify_all_checks_the_log_and_every_chain_in_one_pass() {
    // Proves verify_all reports each run (steps, redacted steps) and that a rewritten record
    // fails it with an error whose offset describe_offset names as the step.
    let dir = tempfile::tempdir().unwrap();
    let offsets = three_step_run(dir.path());
    let ledger = open(dir.path());
    let first = ledger.load_state("A", 0).unwrap().unwrap().stored.offset;
    ledger
        .log()
        .unwrap()
        .erase(
            "default",
            vec![meshflow_engine::format::erasure::SlotRef {
                offset: first,
                slot_index: 0,
            }],
            b"{}".to_vec(),
        )
        .unwrap();
    let (log, chains) = ledger.verify_all().unwrap();
    assert!(log.record_count >= 5);
    assert_eq!(chains.len(), 2);
    let a = chains.iter().find(|c| c.run_id == "A").unwrap();
    assert!(a.valid);
    assert_eq!((a.steps_verified, a.steps_redacted), (3, 1));
    drop(ledger);

    let (file, pos) = locate(dir.path(), offsets[2]);
    let mut bytes = std::fs::read(&file).unwrap();
    let tenant_len = bytes[pos + 35] as usize;
    bytes[pos + 112 + tenant_len + 36 * 4 + 6] ^= 1; // inside the run id, CRC fixed below
    reseal_frame(&mut bytes, pos);
    std::fs::write(&file, bytes).unwrap();
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    let err = reader.verify_all().unwrap_err();
    let offset = match &err {
        LedgerError::Log(meshflow_engine::Error::Verify(v)) => v.offset,
        other => panic!("expected a verification failure, got {other}"),
    };
    assert_eq!(offset, offsets[2]);
    assert_eq!(
        reader.describe_offset(offset).unwrap(),
        "step 2 of run 'A' (tenant 'default')"
    );
}

#[test]
fn floats_with_17_significant_digits_survive_append_export_and_offline_verify() {
    // Proves a float reads back as the same bits through a JSON step line, the log, the export
    // and the offline verifier (a parser that rounds twice would break the entry hash).
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut sent = Vec::new();
    for n in 0..300u64 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let x = (state >> 11) as f64 / (1u64 << 53) as f64; // uniform in [0, 1)
        let line = format!(
            r#"{{"run_id":"F","step_id":"F-{n}","node_id":"n","node_kind":"llm","input_task":"t","output_content":"o","verdict":"commit","blocked":false,"uncertainty":{x:?},"cost_usd":{x:?},"tokens_used":1,"carbon_gco2":{x:?},"duration_ms":{x:?}}}"#
        );
        ledger
            .append(StepRequest::from_json(&line).unwrap(), Durability::Sync)
            .unwrap();
        sent.push(x);
    }
    let steps = ledger.get_run("F").unwrap();
    for (step, x) in steps.iter().zip(&sent) {
        assert_eq!(step.stored.fields.uncertainty.to_bits(), x.to_bits());
    }
    let mut out = Vec::new();
    ledger.export_run("F", &mut out).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let reports = meshflow_engine::ledger::offline::verify_export(&value).unwrap();
    assert!(reports[0].valid(), "{:?}", &reports[0].errors[..1]);
}
