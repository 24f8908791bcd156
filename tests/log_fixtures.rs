//! Old formats keep opening: the committed version-1 fixture (`tests/fixtures/v1_log/`, written
//! by `log_child fixture` with several segments, multi-record batches, padding, Unicode tenants
//! and an erasure) must verify with its pinned head hash, reopen for writing and accept appends;
//! the damaged fixture (`v1_log_corrupt/`, one payload byte flipped) must fail verification
//! naming the segment, byte position and offset written in its `EXPECTED` file.

use std::path::{Path, PathBuf};

use meshflow_engine::log::{Durability, Log, LogOptions, LogReader};
use meshflow_engine::Error;
use meshflow_suite::test_record;

const V1_HEAD_HASH: &str = "1b473de65b8c0de9d0ce0f2c82d9d9c6c0dd780e7a03a43883d3c53185c604e8";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn v1_fixture_verifies_with_its_pinned_head() {
    // Proves a version-1 log written by an earlier build still reads and verifies unchanged.
    let reader = LogReader::open(&fixture("v1_log"), LogOptions::default()).unwrap();
    let report = reader.verify().unwrap();
    assert_eq!(report.record_count, 101);
    assert_eq!(report.segment_count, 4);
    assert_eq!(
        (
            report.slots_live,
            report.slots_erased,
            report.erasure_records
        ),
        (99, 1, 1)
    );
    assert_eq!(report.head_hash, V1_HEAD_HASH);
}

#[test]
fn v1_fixture_reopens_for_writing_and_appends() {
    // Proves a writer continues an old log's chain without recovery work.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("v1_log"), dir.path());
    let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert!(
        report.clean && report.torn_bytes_truncated == 0,
        "{report:?}"
    );
    assert_eq!(
        log.append(test_record(0), Durability::Sync).unwrap().offset,
        101
    );
    let verified = log.reader().verify().unwrap();
    assert_eq!(verified.record_count, 102);
}

#[test]
fn v1_corrupt_fixture_fails_where_expected() {
    // Proves the damaged fixture is reported as corruption at the documented place.
    let expected = std::fs::read_to_string(fixture("v1_log_corrupt").join("EXPECTED")).unwrap();
    let words: Vec<&str> = expected.split_whitespace().collect();
    let reader = LogReader::open(&fixture("v1_log_corrupt"), LogOptions::default()).unwrap();
    match reader.verify() {
        Err(Error::Corrupt(c)) => {
            assert_eq!(c.file, words[1]);
            assert_eq!(c.position_bytes.to_string(), words[3]);
            assert_eq!(c.offset.map(|o| o.to_string()).as_deref(), Some(words[5]));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}
