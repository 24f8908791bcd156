//! Forks (SPEC §5.3, reference cases A11–A16): step counts −1 / 0 / k / past the end, fresh
//! step ids `<new>-<old>` and a fresh valid chain, the origin in the first step, empty forks
//! listed, re-used run ids and unknown runs refused with nothing written, the parent untouched,
//! a `forked_from` lineage edge, and forks at a log offset.

use meshflow_engine::governance::lineage::run_node;
use meshflow_engine::ledger::fork::ForkOverrides;
use meshflow_engine::ledger::{Ledger, LedgerError, StepRequest};
use meshflow_engine::log::{Durability, LogOptions};

fn step(run: &str, n: u64) -> StepRequest {
    StepRequest {
        run_id: run.to_string(),
        step_id: Some(format!("s{n}")),
        node_id: format!("node-{n}"),
        node_kind: "llm".to_string(),
        input_task: format!("task {n}"),
        output_content: format!("output {n}"),
        verdict: "commit".to_string(),
        cost_usd: 0.01,
        tokens_used: 10,
        ..StepRequest::default()
    }
}

fn ledger_with_a() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
        .unwrap()
        .0;
    for n in 0..3 {
        ledger.append(step("A", n), Durability::Sync).unwrap();
    }
    (dir, ledger)
}

#[test]
fn a11_a14_fork_counts_ids_and_fresh_chains() {
    // Proves A11 (−1: all 3 steps, ids <new>-<old>, a valid fresh chain with its origin),
    // A12 (2: the first two node ids), A13 (0: an empty run that is listed) and A14 (10: 3).
    let (_dir, ledger) = ledger_with_a();
    let none = ForkOverrides::default();
    let all = ledger.fork("A", -1, Some("all"), &none).unwrap();
    assert_eq!(all.steps_copied, 3);
    let steps = ledger.get_run("all").unwrap();
    let ids: Vec<&str> = steps
        .iter()
        .map(|s| s.stored.fields.step_id.as_str())
        .collect();
    assert_eq!(ids, ["all-s0", "all-s1", "all-s2"]);
    let origin = steps[0].stored.fields.fork_origin.clone().unwrap();
    assert_eq!(
        (origin.parent_run_id.as_str(), origin.parent_step_index),
        ("A", 2)
    );
    assert!(ledger.verify_chain("all").unwrap().valid);
    let two = ledger.fork("A", 2, Some("two"), &none).unwrap();
    let nodes: Vec<String> = ledger
        .get_run("two")
        .unwrap()
        .iter()
        .map(|s| s.stored.fields.node_id.clone())
        .collect();
    assert_eq!(
        (two.steps_copied, nodes),
        (2, vec!["node-0".to_string(), "node-1".to_string()])
    );
    let empty = ledger.fork("A", 0, None, &none).unwrap();
    assert_eq!(empty.steps_copied, 0);
    assert!(
        ledger.list_runs().unwrap().contains(&empty.run_id),
        "an empty fork is listed"
    );
    assert!(ledger.get_run(&empty.run_id).unwrap().is_empty());
    assert_eq!(
        ledger
            .fork("A", 10, Some("ten"), &none)
            .unwrap()
            .steps_copied,
        3
    );
    let (_, chains) = ledger.verify_all().unwrap();
    assert!(chains.iter().all(|c| c.valid));
    assert_eq!(
        ledger.get_run("A").unwrap().len(),
        3,
        "the parent is untouched"
    );
}

#[test]
fn a15_a16_unknown_runs_and_reused_ids_are_refused_writing_nothing() {
    // Proves A15 (an unknown run is not found) and A16 (the second fork into one id is a
    // conflict), each leaving the log as it was; and that the lineage view has the edge.
    let (dir, ledger) = ledger_with_a();
    let none = ForkOverrides::default();
    let size = |l: &Ledger| {
        l.log()
            .unwrap()
            .reader()
            .snapshot()
            .unwrap()
            .head
            .next_offset
    };
    let before = size(&ledger);
    assert!(matches!(
        ledger.fork("unknown", 2, None, &none),
        Err(LedgerError::NotFound { .. })
    ));
    assert_eq!(size(&ledger), before);
    assert_eq!(
        ledger.fork("A", 1, Some("my-fork"), &none).unwrap().run_id,
        "my-fork"
    );
    let after = size(&ledger);
    for (run, k) in [("A", 1), ("A", 0)] {
        let again = ledger.fork(run, k, Some("my-fork"), &none);
        assert!(
            matches!(again, Err(LedgerError::Conflict { .. })),
            "{again:?}"
        );
    }
    let empty = ledger.fork("A", 0, Some("empty"), &none).unwrap();
    assert!(matches!(
        ledger.fork("A", 2, Some(&empty.run_id), &none),
        Err(LedgerError::Conflict { .. })
    ));
    assert!(matches!(
        ledger.fork("A", 2, Some("A"), &none),
        Err(LedgerError::Conflict { .. })
    ));
    assert_eq!(
        size(&ledger),
        after + 1,
        "only the empty fork's event was written"
    );
    let edges = ledger
        .with_governance(|g| {
            g.of("default")
                .lineage
                .downstream(&run_node("A"))
                .iter()
                .map(|n| n.node_id.clone())
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(edges, [run_node("my-fork"), run_node("empty")]);
    drop(ledger);
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    assert!(
        reader.list_runs().unwrap().contains(&"empty".to_string()),
        "after reopen"
    );
}

#[test]
fn a_fork_at_an_offset_copies_the_steps_before_it() {
    // Proves fork_at_offset: the parent's steps below the offset, and only those.
    let (_dir, ledger) = ledger_with_a();
    let third = ledger.get_run("A").unwrap()[2].stored.offset;
    let f = ledger
        .fork_at_offset("A", third, Some("early"), &ForkOverrides::default())
        .unwrap();
    assert_eq!(f.steps_copied, 2);
    assert!(ledger
        .fork_at_offset("A", 1_000_000, None, &ForkOverrides::default())
        .is_err());
}

#[test]
fn a_fork_of_an_anonymized_run_copies_redacted_fields_as_redacted() {
    // Proves a fork never resurrects or blanks erased data silently: what the parent reads as
    // [REDACTED] the copy holds as "[REDACTED]", empty fields stay empty, and the copy's
    // chain verifies.
    let (_dir, ledger) = ledger_with_a();
    ledger.anonymize_run("A", false, "dpo", "request").unwrap();
    ledger
        .fork("A", -1, Some("after"), &ForkOverrides::default())
        .unwrap();
    for s in ledger.get_run("after").unwrap() {
        assert_eq!(s.text(0), "[REDACTED]");
        assert_eq!(s.text(1), "[REDACTED]");
        assert_eq!(s.text(2), "", "an empty block reason stays empty");
    }
    let (_, chains) = ledger.verify_all().unwrap();
    assert!(chains.iter().all(|c| c.valid), "{chains:?}");
}

#[test]
fn a_large_fork_copied_on_two_threads_keeps_order_origin_and_chain() {
    // Proves the two-thread copy (forks of 1,024 steps or more) keeps every step in order
    // with ids <new>-<old>, puts the origin (last step copied) in step 0 only, and yields a
    // valid chain, for a whole fork and for a fork of an odd count.
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
        .unwrap()
        .0;
    let requests: Vec<StepRequest> = (0..2501).map(|n| step("big", n)).collect();
    ledger.append_batch(requests, Durability::Sync).unwrap();
    let parent = ledger.get_run("big").unwrap();
    for (k, id, copied) in [(-1i64, "all", 2501usize), (1501, "some", 1501)] {
        let r = ledger
            .fork("big", k, Some(id), &ForkOverrides::default())
            .unwrap();
        assert_eq!(r.steps_copied, copied as u64);
        let steps = ledger.get_run(id).unwrap();
        assert_eq!(steps.len(), copied);
        for (i, s) in steps.iter().enumerate() {
            assert_eq!(s.stored.fields.step_id, format!("{id}-s{i}"));
            assert_eq!(s.text(0), format!("task {i}"));
            assert_eq!(s.stored.fields.fork_origin.is_some(), i == 0);
        }
        let origin = steps[0].stored.fields.fork_origin.clone().unwrap();
        assert_eq!(origin.parent_step_index, copied as u64 - 1);
        assert_eq!(origin.parent_entry_hash, parent[copied - 1].entry_hash);
        assert!(ledger.verify_chain(id).unwrap().valid);
    }
}
