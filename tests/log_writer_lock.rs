//! The writer lock: a second writer on the same directory is refused with the holder's pid,
//! readers keep working while the writer holds it, and the lock is released on close.

use meshflow_engine::log::{Durability, Log, LogOptions, LogReader};
use meshflow_engine::Error;
use meshflow_suite::test_record;

#[test]
fn second_writer_is_refused_with_the_holders_pid() {
    // Proves only one writer at a time, with the message operators see.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(test_record(0), Durability::Sync).unwrap();
    match Log::open(dir.path(), LogOptions::default()) {
        Err(e @ Error::Locked { pid: Some(pid) }) => {
            assert_eq!(pid, std::process::id());
            assert_eq!(e.to_string(), format!("log is locked by pid {pid}"));
        }
        other => panic!("expected Locked, got {:?}", other.map(|(_, r)| r)),
    }
    let reader = LogReader::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(reader.verify().unwrap().record_count, 1);
    log.close().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.close().unwrap();
}
