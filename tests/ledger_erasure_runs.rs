//! Run erasure (SPEC §5.4, reference cases A23 and A24): anonymizing erases every slot of a
//! run (and of its forks on request) while every chain still verifies and the original bytes
//! are in no file under the data directory; deleting also makes the run "not found"
//! everywhere, refuses new steps for it, and survives a reopen; both are listed as erasures.

use meshflow_engine::ledger::fork::ForkOverrides;
use meshflow_engine::ledger::{Ledger, LedgerError, StepRequest};
use meshflow_engine::log::{Durability, LogOptions};

const SECRET: &str = "customer-4711-private-notes";

fn step(run: &str, n: u64) -> StepRequest {
    StepRequest {
        run_id: run.to_string(),
        step_id: Some(format!("{run}-s{n}")),
        node_id: format!("node-{n}"),
        node_kind: "llm".to_string(),
        input_task: format!("{SECRET} task {n}"),
        output_content: format!("{SECRET} output {n}"),
        verdict: "commit".to_string(),
        metadata_json: Some(format!("{{\"who\":\"{SECRET}\"}}")),
        ..StepRequest::default()
    }
}

fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

#[test]
fn a23_anonymize_keeps_every_chain_valid_and_leaves_the_bytes_nowhere() {
    // Proves A23 (with SPEC §11): after anonymizing A with its forks, A and its fork read
    // [REDACTED], every chain verifies, B is untouched, and the secret is in no file.
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
        .unwrap()
        .0;
    for run in ["A", "B"] {
        for n in 0..3 {
            ledger.append(step(run, n), Durability::Sync).unwrap();
        }
    }
    ledger
        .fork("A", -1, Some("A-fork"), &ForkOverrides::default())
        .unwrap();
    ledger.checkpoint().unwrap();
    let r = ledger
        .anonymize_run("A", true, "dpo@example.com", "art. 17 request")
        .unwrap();
    assert_eq!(r.runs, ["A", "A-fork"]);
    assert_eq!(r.slots_erased, 2 * 3 * 4);
    for run in ["A", "A-fork"] {
        let steps = ledger.get_run(run).unwrap();
        assert!(steps.iter().all(|s| s.text(0) == "[REDACTED]"), "{run}");
    }
    assert!(
        ledger.get_run("B").unwrap()[0].text(0).contains(SECRET),
        "B untouched"
    );
    let (_, chains) = ledger.verify_all().unwrap();
    assert!(chains.iter().all(|c| c.valid), "{chains:?}");
    // B still holds the secret; the erased runs' bytes must be gone: erase B too and search.
    ledger.anonymize_run("B", false, "dpo", "cleanup").unwrap();
    ledger.checkpoint().unwrap();
    drop(ledger);
    assert_eq!(
        files_holding(dir.path(), SECRET.as_bytes()),
        Vec::<String>::new()
    );
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    let erasures = reader.erasures().unwrap();
    assert_eq!(erasures.len(), 2);
    assert_eq!(erasures[0].note["op"], "anonymize");
    assert_eq!(erasures[0].note["by"], "dpo@example.com");
}

#[test]
fn a24_a_deleted_run_is_not_found_anywhere_and_takes_no_step() {
    // Proves A24: delete_run(unknown) is not found; after delete_run(B) B is absent from
    // list_runs and every read, a step for it is refused, the others are intact, chains
    // verify, and all of it holds after a reopen (runs-view checkpoint included).
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
        .unwrap()
        .0;
    for run in ["A", "B"] {
        for n in 0..2 {
            ledger.append(step(run, n), Durability::Sync).unwrap();
        }
    }
    assert!(matches!(
        ledger.delete_run("unknown", "dpo", "x"),
        Err(LedgerError::NotFound { .. })
    ));
    ledger.delete_run("B", "dpo", "erasure request").unwrap();
    let check = |l: &Ledger| {
        assert_eq!(l.list_runs().unwrap(), ["A"]);
        for res in [
            l.get_run("B").map(|_| ()),
            l.run_summary("B").map(|_| ()),
            l.verify_chain("B").map(|_| ()),
            l.export_run("B", &mut Vec::new()),
        ] {
            assert!(matches!(res, Err(LedgerError::NotFound { .. })), "{res:?}");
        }
        let (_, chains) = l.verify_all().unwrap();
        assert_eq!(chains.len(), 1);
        assert!(chains[0].valid);
    };
    check(&ledger);
    let again = ledger.append(step("B", 7), Durability::Sync);
    assert!(
        matches!(again, Err(LedgerError::Conflict { .. })),
        "{again:?}"
    );
    drop(ledger);
    let (ledger, _) = Ledger::open(dir.path(), LogOptions::default(), "default").unwrap();
    check(&ledger);
    let again = ledger.append(step("B", 8), Durability::Sync);
    assert!(
        matches!(again, Err(LedgerError::Conflict { .. })),
        "after reopen: {again:?}"
    );
    assert!(ledger
        .fork("B", -1, None, &ForkOverrides::default())
        .is_err());
}

#[test]
fn a25_a26_tenants_are_strict_and_a_purge_touches_one_tenant() {
    // Proves A25 (tenant beta gets "not found" for alpha's run in get, summary, export,
    // verify, diff, fork, anonymize and delete) and A26 (purging alpha deletes its runs,
    // erases its lineage names and secrets' ciphertexts, marks it deleted; beta untouched).
    use meshflow_engine::governance::{lineage, tenant, vault};
    let dir = tempfile::tempdir().unwrap();
    let alpha = Ledger::open(dir.path(), LogOptions::default(), "alpha")
        .unwrap()
        .0;
    let beta = alpha.with_tenant("beta").unwrap();
    for n in 0..2 {
        alpha.append(step("alpha-1", n), Durability::Sync).unwrap();
        alpha.append(step("alpha-2", n), Durability::Sync).unwrap();
        beta.append(step("beta-1", n), Durability::Sync).unwrap();
    }
    let nf = |r: Result<(), LedgerError>| {
        assert!(matches!(r, Err(LedgerError::NotFound { .. })), "{r:?}")
    };
    nf(beta.get_run("alpha-1").map(|_| ()));
    nf(beta.run_summary("alpha-1").map(|_| ()));
    nf(beta.export_run("alpha-1", &mut Vec::new()));
    nf(beta.verify_chain("alpha-1").map(|_| ()));
    nf(beta.diff("alpha-1", "beta-1").map(|_| ()));
    nf(beta
        .fork("alpha-1", -1, None, &ForkOverrides::default())
        .map(|_| ()));
    nf(beta.anonymize_run("alpha-1", false, "x", "y").map(|_| ()));
    nf(beta.delete_run("alpha-1", "x", "y").map(|_| ()));
    assert_eq!(beta.list_runs().unwrap(), ["beta-1"]);
    alpha
        .append_event(
            &tenant::events::create("alpha", "Alpha", "alpha", "free", Default::default(), 1.0)
                .unwrap(),
        )
        .unwrap();
    let (node, slots) =
        lineage::events::add_node("n", "dataset", SECRET, "", "", &Default::default(), 1.0)
            .unwrap();
    alpha.append_event_with_slots(&node, slots).unwrap();
    let (params, key) = vault::KdfParams::create("alpha", b"pw").unwrap();
    alpha
        .append_event(&vault::events::init(&params, "a0", "t", 1.0))
        .unwrap();
    let sealed = vault::seal_value(&key, "alpha", "k", 1, b"v").unwrap();
    let put = alpha
        .append_event_with_slots(
            &vault::events::put("s", "k", "generic", "", "t", "a1", 2.0),
            vec![sealed],
        )
        .unwrap();
    let r = alpha.purge_tenant("dpo", "contract ended").unwrap();
    assert_eq!(r.runs.len(), 2);
    assert!(alpha.list_runs().unwrap().is_empty());
    assert_eq!(beta.list_runs().unwrap(), ["beta-1"]);
    assert!(
        beta.get_run("beta-1").unwrap()[0].text(0).contains(SECRET),
        "beta untouched"
    );
    assert_eq!(
        alpha.read_event_slot(put, 0).unwrap(),
        None,
        "the secret's ciphertext"
    );
    alpha
        .with_governance(|g| {
            assert!(g.of("alpha").lineage.nodes().is_empty());
            assert!(g.of("alpha").vault.list("").is_empty());
            assert_eq!(g.tenants().get("alpha").unwrap().status, "deleted");
        })
        .unwrap();
    let (_, chains) = beta.verify_all().unwrap();
    assert!(chains.iter().all(|c| c.valid));
}

#[test]
fn an_empty_fork_can_be_anonymized_and_deleted() {
    // Proves a run without steps (a fork at step 0) is erasable: the erasure record is a
    // note naming no slot, and the deleted empty run is "not found" afterwards, also after a
    // reopen.
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
            .unwrap()
            .0;
        ledger.append(step("P", 0), Durability::Sync).unwrap();
        ledger
            .fork("P", 0, Some("empty"), &ForkOverrides::default())
            .unwrap();
        let r = ledger.anonymize_run("empty", false, "dpo", "test").unwrap();
        assert_eq!((r.slots_erased, r.offsets.len()), (0, 1));
        ledger.delete_run("empty", "dpo", "test").unwrap();
        assert!(matches!(
            ledger.get_run("empty"),
            Err(LedgerError::NotFound { .. })
        ));
        assert_eq!(ledger.list_runs().unwrap(), ["P"]);
    }
    let ledger = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    assert!(matches!(
        ledger.get_run("empty"),
        Err(LedgerError::NotFound { .. })
    ));
    assert_eq!(ledger.erasures().unwrap().len(), 2);
}

/// How many of `run`'s slots are live.
fn live_slots(ledger: &Ledger, run: &str) -> usize {
    ledger
        .get_run(run)
        .unwrap()
        .iter()
        .map(|s| {
            s.stored
                .slots
                .iter()
                .filter(|v| matches!(v, meshflow_engine::ledger::record::FieldValue::Text(_)))
                .count()
        })
        .sum()
}

#[test]
fn a_large_erasure_is_a_series_that_a_reopen_finishes_after_a_crash_between_parts() {
    // Proves the multi-record erasure is complete or finished on open: with 7 slots per
    // record, a deletion of 10 steps (40 slots) is 6 records; stopping it after each
    // k = 1..5 parts and reopening (from the checkpoint Drop writes, and again from a rebuild
    // without checkpoints) always ends with every slot erased, the last part on record, every
    // chain valid and the other run untouched.
    for from_checkpoint in [true, false] {
        for k in 1..=5usize {
            let dir = tempfile::tempdir().unwrap();
            {
                let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
                    .unwrap()
                    .0;
                for n in 0..10 {
                    ledger.append(step("big", n), Durability::Sync).unwrap();
                }
                ledger.append(step("other", 0), Durability::Sync).unwrap();
                ledger.set_erasure_faults(7, k);
                let e = ledger.delete_run("big", "dpo", "art. 17").unwrap_err();
                assert!(e.to_string().contains("stopped after part"), "{e}");
                // Deleted from the first part on, though not all of it is erased yet.
                assert!(matches!(
                    ledger.get_run("big"),
                    Err(LedgerError::NotFound { .. })
                ));
            }
            if !from_checkpoint {
                std::fs::remove_dir_all(dir.path().join("checkpoints")).unwrap();
            }
            let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
                .unwrap()
                .0;
            let erasures = ledger.erasures().unwrap();
            // k parts before the crash, and the rest in one record (the reopened handle has
            // the default limit).
            assert_eq!(erasures.len(), k + 1, "k={k}: {erasures:?}");
            let last = &erasures[k].note;
            assert_eq!(
                (last["part"].as_u64(), last["parts"].as_u64()),
                (Some(6), Some(6))
            );
            assert!(erasures.iter().all(|e| e.note["series"] == last["series"]));
            assert_eq!(erasures.iter().map(|e| e.slots).sum::<u64>(), 40, "k={k}");
            drop(ledger);
            let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
                .unwrap()
                .0;
            assert_eq!(
                ledger.erasures().unwrap().len(),
                k + 1,
                "a finished series stays so"
            );
            assert_eq!(live_slots(&ledger, "other"), 4);
            // With the other run anonymized too, no file may hold the secret: every slot of
            // the deleted run was erased.
            ledger.set_erasure_faults(0, 0);
            ledger
                .anonymize_run("other", false, "dpo", "cleanup")
                .unwrap();
            ledger.checkpoint().unwrap();
            assert_eq!(
                files_holding(dir.path(), SECRET.as_bytes()),
                Vec::<String>::new(),
                "k={k}"
            );
            let (_, chains) = ledger.verify_all().unwrap();
            assert!(chains.iter().all(|c| c.valid), "{chains:?}");
        }
    }
}

#[test]
fn an_erasure_lists_the_runs_known_archives() {
    // Proves SPEC §5.4: the archive is recorded in the lineage view and the erasure's note
    // names its URI and SHA-256 (erasure does not reach files outside the data directory).
    let dir = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
        .unwrap()
        .0;
    ledger.append(step("A", 0), Durability::Sync).unwrap();
    let archive = ledger
        .archive_run("A", dest.path().to_str().unwrap())
        .unwrap();
    let r = ledger.anonymize_run("A", false, "dpo", "request").unwrap();
    assert_eq!(r.slots_erased, 4);
    assert_eq!(r.archives, vec![archive.uri.clone()]);
    let note = &ledger.erasures().unwrap()[0].note;
    assert_eq!(
        note["archives"],
        serde_json::json!([{"run_id": "A", "uri": archive.uri, "sha256": archive.sha256}])
    );
}
