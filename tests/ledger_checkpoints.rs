//! Checkpoints of the runs view (issue 3, SPEC §6): a reopen loads the newest checkpoint and
//! replays only the tail; missing, damaged, foreign, outdated or forged checkpoints are refused,
//! reported and rebuilt from the log, with the same state as before.

use meshflow_engine::ledger::checkpoint::{self, DIR};
use meshflow_engine::ledger::{Ledger, StepRequest};
use meshflow_engine::log::{Durability, LogOptions};

fn request(run: &str, n: u64) -> StepRequest {
    StepRequest {
        run_id: run.to_string(),
        step_id: Some(format!("{run}-s{n}")),
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

fn open(dir: &std::path::Path) -> Ledger {
    Ledger::open(dir, LogOptions::default(), "default")
        .unwrap()
        .0
}

/// Appends `n` steps round-robin over three runs.
fn fill(ledger: &Ledger, from: u64, n: u64) {
    for i in from..from + n {
        ledger
            .append(request(&format!("run-{}", i % 3), i), Durability::Sync)
            .unwrap();
    }
}

/// Everything a reader can see of the runs, for comparing states.
fn state(ledger: &Ledger) -> Vec<(String, Vec<[u8; 32]>)> {
    ledger
        .list_runs()
        .unwrap()
        .into_iter()
        .map(|r| {
            let hashes = ledger
                .get_run(&r)
                .unwrap()
                .iter()
                .map(|s| s.entry_hash)
                .collect();
            (r, hashes)
        })
        .collect()
}

/// The runs view's checkpoint files (the governance views' are beside them).
fn checkpoint_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(DIR))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .starts_with("runs-")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn reopen_loads_the_newest_checkpoint_and_replays_only_the_tail() {
    // Proves a clean close leaves a checkpoint that the next open (writer or reader) uses.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    assert_eq!(ledger.load_report().checkpoint_offset, None);
    fill(&ledger, 0, 30);
    let before = state(&ledger);
    drop(ledger);
    let ledger = open(dir.path());
    let report = ledger.load_report().clone();
    assert_eq!(report.checkpoint_offset, Some(30));
    assert_eq!(report.tail_records, 1, "only the checkpoint-digest event");
    assert!(report.rejected.is_empty(), "{report:?}");
    assert_eq!(state(&ledger), before);
    fill(&ledger, 30, 6);
    let after = state(&ledger);
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    assert_eq!(reader.load_report().checkpoint_offset, Some(30));
    assert_eq!(reader.load_report().tail_records, 7);
    assert_eq!(state(&reader), after);
    drop(ledger);
    assert_eq!(
        checkpoint_files(dir.path()).len(),
        2,
        "the newest two are kept"
    );
}

#[test]
fn missing_or_damaged_checkpoints_are_rebuilt_and_reported() {
    // Proves deleting or damaging checkpoints loses nothing: the view is rebuilt, and said so.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 0, 12);
    let before = state(&ledger);
    drop(ledger);
    let files = checkpoint_files(dir.path());
    assert_eq!(files.len(), 1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    let report = reader.load_report();
    assert_eq!(report.checkpoint_offset, None);
    assert_eq!(report.rejected.len(), 1);
    assert!(report.rejected[0].contains("CRC mismatch"), "{report:?}");
    assert_eq!(state(&reader), before);
    std::fs::remove_dir_all(dir.path().join(DIR)).unwrap();
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    assert_eq!(reader.load_report().checkpoint_offset, None);
    assert_eq!(reader.load_report().tail_records, 13);
    assert_eq!(state(&reader), before);
}

#[test]
fn a_checkpoint_from_another_log_or_other_logic_is_refused() {
    // Proves the binding to the global hash and the logic version.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (dir, run) in [(&a, "x"), (&b, "y")] {
        let ledger = open(dir.path());
        for i in 0..5 {
            ledger.append(request(run, i), Durability::Sync).unwrap();
        }
    }
    let name = checkpoint::file_name(5);
    std::fs::copy(
        b.path().join(DIR).join(&name),
        a.path().join(DIR).join(&name),
    )
    .unwrap();
    let reader = Ledger::open_read_only(a.path(), LogOptions::default(), "default").unwrap();
    assert!(reader.load_report().rejected[0].contains("global hash differs"));
    assert_eq!(reader.list_runs().unwrap(), vec!["x"]);

    // Another view logic version (CRC recomputed, as a build with other logic would write).
    let file = b.path().join(DIR).join(&name);
    let mut bytes = std::fs::read(&file).unwrap();
    let other = meshflow_engine::ledger::checkpoint::VIEW_LOGIC_VERSION + 1;
    bytes[12..16].copy_from_slice(&other.to_le_bytes());
    let n = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&file, bytes).unwrap();
    let reader = Ledger::open_read_only(b.path(), LogOptions::default(), "default").unwrap();
    assert!(
        reader.load_report().rejected[0].contains(&format!("view logic version {other}")),
        "{:?}",
        reader.load_report()
    );
    assert_eq!(reader.get_run("y").unwrap().len(), 5);
}

#[test]
fn a_forged_checkpoint_is_caught_by_the_digest_event_in_the_log() {
    // Proves state digests are chained: a checkpoint rewritten consistently (state, digest and
    // CRC recomputed) disagrees with the digest event the writer appended, and is not used.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 0, 6);
    let before = state(&ledger);
    drop(ledger);
    let file = &checkpoint_files(dir.path())[0];
    let bytes = std::fs::read(file).unwrap();
    let header = 8 + 4 + 4 + 16 + 8 + 32;
    let state_start = header + 32 + 8;
    let mut forged = bytes[..bytes.len() - 4].to_vec();
    // Flip a byte of the first step's entry hash in the state, then fix digest and CRC.
    let first_hash = state_start + 8 + 1 + 7 + 4 + 5 + 8 + 8 + 24;
    forged[first_hash] ^= 1;
    let digest: [u8; 32] = blake3::hash(&forged[state_start..]).into();
    forged[header..header + 32].copy_from_slice(&digest);
    let crc = crc32c::crc32c(&forged);
    forged.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(file, forged).unwrap();
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    let report = reader.load_report();
    assert_eq!(report.checkpoint_offset, None, "{report:?}");
    assert!(
        report.rejected[0].contains("disagrees with the digest event"),
        "{report:?}"
    );
    assert_eq!(state(&reader), before);
    for run in reader.list_runs().unwrap() {
        assert!(reader.verify_chain(&run).unwrap().valid);
    }
}

#[test]
fn the_system_tenant_is_reserved() {
    // Proves no handle can be opened as the engine's own `_system` tenant.
    let dir = tempfile::tempdir().unwrap();
    assert!(Ledger::open(dir.path(), LogOptions::default(), "_system").is_err());
    let ledger = open(dir.path());
    assert!(ledger.with_tenant("_system").is_err());
}
