//! The "sqlite" peer: SQLite (bundled, via rusqlite) in WAL mode with `synchronous=FULL`, one
//! row per step in `steps(seq INTEGER PRIMARY KEY, run_id TEXT, step INTEGER, payload BLOB,
//! input BLOB, output BLOB)`. A commits a transaction every 1,000 rows; B and B<W> insert one row
//! per transaction (autocommit), each writer thread on its own connection with a busy timeout;
//! C selects every row in `seq` order and sums the lengths (no verification: SQLite keeps no
//! chain); E reopens a connection and asks for the last `seq`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use crate::{
    drive_batches, drive_reopens, drive_run_reads, drive_writers, records_result, run_steps,
    BatchWriter, Peer, PhaseResult, Step, Workload,
};

/// How long a writer waits for the write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(600);

const INSERT: &str =
    "INSERT INTO steps (seq, run_id, step, payload, input, output) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

fn db_path(dir: &Path) -> PathBuf {
    dir.join("steps.sqlite")
}

/// Opens a connection to the database in `dir` with the benchmark's settings, creating the
/// table if needed.
fn connect(dir: &Path) -> Result<Connection> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let conn = Connection::open(db_path(dir))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS steps (
            seq INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            payload BLOB NOT NULL,
            input BLOB NOT NULL,
            output BLOB NOT NULL
        )",
    )?;
    Ok(conn)
}

fn insert(conn: &Connection, step: &Step) -> Result<()> {
    let seq = i64::try_from(step.seq).context("seq beyond i64")?;
    let index = i64::try_from(step.step).context("step beyond i64")?;
    conn.prepare_cached(INSERT)?.execute(params![
        seq,
        step.run_id,
        index,
        step.payload,
        step.input,
        step.output
    ])?;
    Ok(())
}

/// The number of the row after the last (0 when empty): where the next append goes.
fn next_seq(conn: &Connection) -> Result<u64> {
    let last: Option<i64> = conn.query_row("SELECT max(seq) FROM steps", [], |row| row.get(0))?;
    Ok(last.map_or(0, |s| u64::try_from(s).unwrap_or(0) + 1))
}

/// Phase A's writer: an open transaction, committed on every sync.
struct Batches {
    conn: Connection,
    in_transaction: bool,
}

impl BatchWriter for Batches {
    fn append(&mut self, step: Step) -> Result<()> {
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN")?;
            self.in_transaction = true;
        }
        insert(&self.conn, &step)
    }

    fn sync(&mut self) -> Result<()> {
        if self.in_transaction {
            self.conn.execute_batch("COMMIT")?;
            self.in_transaction = false;
        }
        Ok(())
    }
}

fn close(conn: Connection) -> Result<()> {
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// SQLite through rusqlite.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

impl Peer for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn phase_a(&self, dir: &Path, workload: &Workload) -> Result<PhaseResult> {
        let mut writer = Batches {
            conn: connect(dir)?,
            in_transaction: false,
        };
        let result = drive_batches(workload, &mut writer)?;
        close(writer.conn)?;
        Ok(result)
    }

    fn phase_b(
        &self,
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult> {
        // Create the database and table once, before the writers connect.
        close(connect(dir)?)?;
        drive_writers(workload, writers, records, |_| {
            let conn = connect(dir)?;
            Ok(move |step: Step| insert(&conn, &step))
        })
    }

    fn phase_c(&self, dir: &Path) -> Result<PhaseResult> {
        let conn = connect(dir)?;
        let started = Instant::now();
        let mut count = 0u64;
        let mut bytes = 0u64;
        {
            let mut stmt = conn.prepare(
                "SELECT seq, run_id, step, payload, input, output FROM steps ORDER BY seq",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let _seq: i64 = row.get(0)?;
                let _step: i64 = row.get(2)?;
                for column in [1, 3, 4, 5] {
                    bytes += row.get_ref(column)?.as_bytes()?.len() as u64;
                }
                count += 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        std::hint::black_box(bytes);
        close(conn)?;
        Ok(records_result("C", count, secs, Vec::new()))
    }

    fn phase_e(&self, dir: &Path) -> Result<PhaseResult> {
        drive_reopens(|| {
            let conn = connect(dir)?;
            Ok((next_seq(&conn)?, conn))
        })
    }

    fn phase_d(&self, dir: &Path, workload: &Workload) -> Result<Option<PhaseResult>> {
        let conn = connect(dir)?;
        let result = {
            let mut stmt =
                conn.prepare("SELECT payload, input, output FROM steps WHERE seq = ?1")?;
            drive_run_reads(workload, |run| {
                let mut n = 0;
                for seq in run_steps(workload, run) {
                    let seq = i64::try_from(seq).context("seq beyond i64")?;
                    let row = stmt.query_row([seq], |row| {
                        Ok((
                            row.get::<_, Vec<u8>>(0)?,
                            row.get::<_, Vec<u8>>(1)?,
                            row.get::<_, Vec<u8>>(2)?,
                        ))
                    })?;
                    std::hint::black_box(row);
                    n += 1;
                }
                Ok(n)
            })?
        };
        close(conn)?;
        Ok(Some(result))
    }
}
