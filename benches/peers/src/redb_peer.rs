//! The "redb" peer: redb (current 4.x release), one table keyed by the `u64` sequence number
//! with the value `payload || input || output`. A commits one write transaction per 1,000 rows
//! with redb's default durability (`Immediate`: durable when `commit` returns); B and B<W>
//! commit one row per transaction from each writer thread (redb runs one write transaction at a
//! time, so the threads queue in `begin_write`); C iterates the table in key order and sums the
//! lengths; E reopens the database file and reads the last key.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{
    drive_reopens, drive_run_reads, drive_writers, records_result, run_steps, split_step, Peer,
    PhaseResult, Step, Workload, SYNC_EVERY_RECORDS,
};

const STEPS: TableDefinition<u64, &[u8]> = TableDefinition::new("steps");

fn db_path(dir: &Path) -> PathBuf {
    dir.join("steps.redb")
}

/// Opens (or creates) the database in `dir`.
fn open(dir: &Path) -> Result<Database> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Database::create(db_path(dir))?)
}

/// Commits one transaction holding `steps`.
fn commit_one(db: &Database, step: &Step) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(STEPS)?;
        table.insert(step.seq, step.data().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// redb.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redb;

impl Peer for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn phase_a(&self, dir: &Path, workload: &Workload) -> Result<PhaseResult> {
        let db = open(dir)?;
        let count = workload.record_count();
        let mut latencies = Vec::new();
        let started = Instant::now();
        let mut next = 0u64;
        while next < count {
            let end = (next + SYNC_EVERY_RECORDS).min(count);
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(STEPS)?;
                for i in next..end {
                    let step = Step::new(workload, i);
                    table.insert(step.seq, step.data().as_slice())?;
                }
            }
            let t = Instant::now();
            txn.commit()?;
            latencies.push(t.elapsed());
            next = end;
        }
        let secs = started.elapsed().as_secs_f64();
        drop(db);
        Ok(records_result("A", count, secs, latencies))
    }

    fn phase_b(
        &self,
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult> {
        let db = open(dir)?;
        drive_writers(workload, writers, records, |_| {
            let db = &db;
            Ok(move |step: Step| commit_one(db, &step))
        })
    }

    fn phase_c(&self, dir: &Path) -> Result<PhaseResult> {
        let db = open(dir)?;
        let started = Instant::now();
        let mut count = 0u64;
        let mut bytes = 0u64;
        {
            let txn = db.begin_read()?;
            let table = txn.open_table(STEPS)?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                std::hint::black_box(key.value());
                bytes += 8 + value.value().len() as u64;
                count += 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        std::hint::black_box(bytes);
        Ok(records_result("C", count, secs, Vec::new()))
    }

    fn phase_e(&self, dir: &Path) -> Result<PhaseResult> {
        drive_reopens(|| {
            let db = open(dir)?;
            let next = {
                let txn = db.begin_read()?;
                let table = txn.open_table(STEPS)?;
                let last = table.last()?;
                last.map_or(0, |(key, _)| key.value() + 1)
            };
            Ok((next, db))
        })
    }

    fn phase_d(&self, dir: &Path, workload: &Workload) -> Result<Option<PhaseResult>> {
        let db = open(dir)?;
        let txn = db.begin_read()?;
        let table = txn.open_table(STEPS)?;
        let result = drive_run_reads(workload, |run| {
            let mut n = 0;
            for seq in run_steps(workload, run) {
                let value = table
                    .get(seq)?
                    .ok_or_else(|| anyhow::anyhow!("step {seq} is missing"))?;
                std::hint::black_box(split_step(value.value(), workload));
                n += 1;
            }
            Ok(n)
        })?;
        Ok(Some(result))
    }
}
