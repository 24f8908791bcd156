//! The "sled" peer: sled 0.34 (the stable line, not the 1.0 alphas), one key per step: the
//! big-endian sequence number, and the value `payload || input || output`. A inserts and calls
//! `flush()` (sled's durability point) every 1,000 records; B and B<W> insert and flush per
//! record; C iterates every key in order and sums the lengths; E reopens with `sled::open` and
//! reads the last key.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use crate::{
    drive_batches, drive_reopens, drive_run_reads, drive_writers, key_seq, records_result,
    run_steps, seq_key, split_step, BatchWriter, Peer, PhaseResult, Step, Workload,
};

fn open(dir: &Path) -> Result<sled::Db> {
    Ok(sled::open(dir)?)
}

/// The sequence number after the last key (0 when empty).
fn next_seq(db: &sled::Db) -> Result<u64> {
    match db.last()? {
        Some((key, _)) => Ok(key_seq(&key)? + 1),
        None => Ok(0),
    }
}

/// Phase A's writer: inserts, and `flush` on every sync.
struct Batches {
    db: sled::Db,
}

impl BatchWriter for Batches {
    fn append(&mut self, step: Step) -> Result<()> {
        self.db.insert(seq_key(step.seq), step.data())?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// sled 0.34.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sled;

impl Peer for Sled {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn phase_a(&self, dir: &Path, workload: &Workload) -> Result<PhaseResult> {
        let mut writer = Batches { db: open(dir)? };
        let result = drive_batches(workload, &mut writer)?;
        writer.db.flush()?;
        Ok(result)
    }

    fn phase_b(
        &self,
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult> {
        let db = open(dir)?;
        let result = drive_writers(workload, writers, records, |_| {
            let db = &db;
            Ok(move |step: Step| -> Result<()> {
                db.insert(seq_key(step.seq), step.data())?;
                db.flush()?;
                Ok(())
            })
        })?;
        db.flush()?;
        Ok(result)
    }

    fn phase_c(&self, dir: &Path) -> Result<PhaseResult> {
        let db = open(dir)?;
        let started = Instant::now();
        let mut count = 0u64;
        let mut bytes = 0u64;
        for entry in db.iter() {
            let (key, value) = entry?;
            bytes += (key.len() + value.len()) as u64;
            count += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        std::hint::black_box(bytes);
        Ok(records_result("C", count, secs, Vec::new()))
    }

    fn phase_e(&self, dir: &Path) -> Result<PhaseResult> {
        drive_reopens(|| {
            let db = open(dir)?;
            Ok((next_seq(&db)?, db))
        })
    }

    fn phase_d(&self, dir: &Path, workload: &Workload) -> Result<Option<PhaseResult>> {
        let db = open(dir)?;
        let result = drive_run_reads(workload, |run| {
            let mut n = 0;
            for seq in run_steps(workload, run) {
                let value = db
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
