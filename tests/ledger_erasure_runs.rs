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
