//! The "fjall" peer: fjall (current 3.x release, an LSM tree), one keyspace keyed by the
//! big-endian sequence number with the value `payload || input || output`. A inserts and calls
//! `Database::persist(PersistMode::SyncAll)` (fsync of the journal) every 1,000 records; B and
//! B<W> insert and persist with `SyncAll` per record; C iterates the keyspace in key order and
//! sums the lengths; E reopens the database and the keyspace and reads the last key.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::{
    drive_batches, drive_reopens, drive_run_reads, drive_writers, key_seq, records_result,
    run_steps, seq_key, split_step, BatchWriter, Peer, PhaseResult, Step, Workload,
};

const KEYSPACE: &str = "steps";

/// Opens (or creates) the database in `dir` and its `steps` keyspace.
fn open(dir: &Path) -> Result<(Database, Keyspace)> {
    let db = Database::builder(dir).open()?;
    let steps = db.keyspace(KEYSPACE, KeyspaceCreateOptions::default)?;
    Ok((db, steps))
}

fn insert(steps: &Keyspace, step: &Step) -> Result<()> {
    steps.insert(seq_key(step.seq), step.data())?;
    Ok(())
}

/// Phase A's writer: inserts, and a `SyncAll` persist on every sync.
struct Batches {
    db: Database,
    steps: Keyspace,
}

impl BatchWriter for Batches {
    fn append(&mut self, step: Step) -> Result<()> {
        insert(&self.steps, &step)
    }

    fn sync(&mut self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

/// fjall.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fjall;

impl Peer for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn phase_a(&self, dir: &Path, workload: &Workload) -> Result<PhaseResult> {
        let (db, steps) = open(dir)?;
        let mut writer = Batches { db, steps };
        drive_batches(workload, &mut writer)
    }

    fn phase_b(
        &self,
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult> {
        let (db, steps) = open(dir)?;
        drive_writers(workload, writers, records, |_| {
            let (db, steps) = (&db, &steps);
            Ok(move |step: Step| -> Result<()> {
                insert(steps, &step)?;
                db.persist(PersistMode::SyncAll)?;
                Ok(())
            })
        })
    }

    fn phase_c(&self, dir: &Path) -> Result<PhaseResult> {
        let (_db, steps) = open(dir)?;
        let started = Instant::now();
        let mut count = 0u64;
        let mut bytes = 0u64;
        for guard in steps.iter() {
            let (key, value) = guard.into_inner()?;
            bytes += (key.len() + value.len()) as u64;
            count += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        std::hint::black_box(bytes);
        Ok(records_result("C", count, secs, Vec::new()))
    }

    fn phase_e(&self, dir: &Path) -> Result<PhaseResult> {
        drive_reopens(|| {
            let (db, steps) = open(dir)?;
            let next = match steps.last_key_value() {
                Some(guard) => key_seq(&guard.key()?)? + 1,
                None => 0,
            };
            Ok((next, (steps, db)))
        })
    }

    fn phase_d(&self, dir: &Path, workload: &Workload) -> Result<Option<PhaseResult>> {
        let (_db, steps) = open(dir)?;
        let result = drive_run_reads(workload, |run| {
            let mut n = 0;
            for seq in run_steps(workload, run) {
                let value = steps
                    .get(seq_key(seq))?
                    .ok_or_else(|| anyhow::anyhow!("step {seq} is missing"))?;
                std::hint::black_box(split_step(&value, workload));
                n += 1;
            }
            Ok(n)
        })?;
        Ok(Some(result))
    }
}
