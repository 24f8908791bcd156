//! meshflow-peers: the peer comparison of the benchmark phases of SPEC.md §9. meshflow and five
//! other embedded stores run the same canonical workload ([`Workload`]: R runs × S steps, each a
//! record of a small payload plus an `input` and an `output` of P bytes, appended round-robin)
//! through the same phases, and each phase returns the engine's own [`PhaseResult`].
//!
//! Phases, for every peer:
//! - **A**: one appender, buffered writes, made durable every [`SYNC_EVERY_RECORDS`] records.
//! - **B** / **B<W>**: W threads, each append durable before it returns.
//! - **C**: a full read of phase A's data (meshflow and the hand-written log also verify the
//!   SHA-256 chain; the other peers only touch the bytes).
//! - **E**: reopen of phase A's (cleanly closed) data until ready to append; the median of
//!   [`REOPEN_TRIES`] reopens.
//! - **D**: every step of 1,000 runs picked with a fixed seed, runs/s: key-value peers get each
//!   step by its sequence number ([`run_steps`]), SQLite by primary key, the hand-written log
//!   through an in-memory position index built at open; each step's bytes are copied out.
//!   meshflow's `ledger` peer returns decoded steps (fields, slots, hashes) from its runs view.
//!
//! The peers: [`meshflow_peer`] (`meshflow`: the log layer; `ledger`: the same phases through
//! the ledger, with both chains, and phase D), [`handwritten`], [`sqlite`], [`sled_peer`], [`redb_peer`],
//! [`fjall_peer`].
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
#![warn(clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
pub use meshflow_engine::bench::{PhaseResult, SYNC_EVERY_RECORDS};
pub use meshflow_engine::workload::Workload;

pub mod fjall_peer;
pub mod handwritten;
pub mod meshflow_peer;
pub mod redb_peer;
pub mod sled_peer;
pub mod sqlite;

/// Reopens measured by phase E (the median is reported), as `meshflow bench` does.
pub const REOPEN_TRIES: u32 = 7;

/// One step of the workload, split into the fields a table-shaped peer stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Sequence number: the record's index in append order.
    pub seq: u64,
    /// The run the step belongs to (`run-00000042`).
    pub run_id: String,
    /// The step's index within its run.
    pub step: u64,
    /// The step's scalar fields, encoded exactly as meshflow's record payload.
    pub payload: Vec<u8>,
    /// The `input` slot (P bytes).
    pub input: Vec<u8>,
    /// The `output` slot (P bytes).
    pub output: Vec<u8>,
}

impl Step {
    /// The `i`-th step in append order: the same bytes as `workload.record(i)`.
    pub fn new(workload: &Workload, i: u64) -> Step {
        let runs = workload.runs.max(1);
        let record = workload.record(i);
        let mut slots = record.slots.into_iter();
        let input = slots.next().unwrap_or_default();
        let output = slots.next().unwrap_or_default();
        Step {
            seq: i,
            run_id: format!("run-{:08}", i % runs),
            step: i / runs,
            payload: record.payload,
            input,
            output,
        }
    }

    /// `payload || input || output`: the value a key-value peer stores.
    pub fn data(&self) -> Vec<u8> {
        let mut data =
            Vec::with_capacity(self.payload.len() + self.input.len() + self.output.len());
        data.extend_from_slice(&self.payload);
        data.extend_from_slice(&self.input);
        data.extend_from_slice(&self.output);
        data
    }
}

/// The big-endian key of sequence number `seq`, so that key order is append order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of a big-endian key written by [`seq_key`].
pub fn key_seq(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| anyhow!("key of {} bytes is not a sequence number", key.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The phase name of `writers` durable appenders: `B` for one, `B<W>` otherwise.
pub fn b_phase_name(writers: u64) -> String {
    if writers <= 1 {
        "B".to_string()
    } else {
        format!("B{writers}")
    }
}

/// A phase result measured in records per second.
pub fn records_result(
    phase: &str,
    records: u64,
    secs: f64,
    latencies: Vec<Duration>,
) -> PhaseResult {
    PhaseResult::records_per_sec(phase, records, secs, latencies)
}

/// Phase E's result: `secs` is the median of the reopen `latencies`.
pub fn reopen_result(records: u64, latencies: Vec<Duration>) -> PhaseResult {
    let mut sorted = latencies.clone();
    sorted.sort_unstable();
    let secs = sorted
        .get(sorted.len() / 2)
        .map_or(0.0, Duration::as_secs_f64);
    PhaseResult {
        phase: "E".to_string(),
        records,
        secs,
        unit: "reopens/s",
        latencies,
    }
}

/// Phase A's writer: buffers steps and makes everything buffered so far durable on `sync`.
pub trait BatchWriter {
    /// Buffers one step (not yet durable).
    fn append(&mut self, step: Step) -> Result<()>;
    /// Makes every step appended so far durable.
    fn sync(&mut self) -> Result<()>;
}

/// Phase A's loop, shared by the peers that buffer records and make them durable in batches:
/// every step is appended in order, and `sync` is called after every [`SYNC_EVERY_RECORDS`]
/// steps (and after the last). The syncs' latencies are recorded.
pub fn drive_batches(workload: &Workload, writer: &mut impl BatchWriter) -> Result<PhaseResult> {
    let count = workload.record_count();
    let mut latencies = Vec::new();
    let started = Instant::now();
    for i in 0..count {
        writer.append(Step::new(workload, i))?;
        if (i + 1) % SYNC_EVERY_RECORDS == 0 || i + 1 == count {
            let t = Instant::now();
            writer.sync()?;
            latencies.push(t.elapsed());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(records_result("A", count, secs, latencies))
}

/// Phases B and B<W>, shared by the peers: `make(w)` builds writer `w`'s append function
/// (before the clock starts); then `writers` threads each append `records / writers` steps,
/// writer `w` taking steps `w, w + W, w + 2W, …` as meshflow's phase B does, and each call
/// must return only once its step is durable. Every call's latency is recorded (the step is
/// generated before the latency clock starts, as in meshflow's phase B).
pub fn drive_writers<F, W>(
    workload: &Workload,
    writers: u64,
    records: u64,
    make: F,
) -> Result<PhaseResult>
where
    F: Fn(u64) -> Result<W>,
    W: FnMut(Step) -> Result<()> + Send,
{
    let writers = writers.max(1);
    let per_writer = records / writers;
    let mut appenders = Vec::new();
    for w in 0..writers {
        appenders.push(make(w)?);
    }
    let started = Instant::now();
    // Each thread hands its appender back, so that closing it (a connection, say) happens after
    // the clock stops.
    let (latencies, appenders) = std::thread::scope(|scope| -> Result<(Vec<Duration>, Vec<W>)> {
        let handles: Vec<_> = appenders
            .into_iter()
            .zip(0u64..)
            .map(|(mut append, w)| {
                scope.spawn(move || -> Result<(Vec<Duration>, W)> {
                    let mut lat = Vec::with_capacity(usize::try_from(per_writer).unwrap_or(0));
                    for i in 0..per_writer {
                        let step = Step::new(workload, i * writers + w);
                        let t = Instant::now();
                        append(step)?;
                        lat.push(t.elapsed());
                    }
                    Ok((lat, append))
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut appenders = Vec::new();
        for handle in handles {
            let (lat, append) = handle
                .join()
                .map_err(|_| anyhow!("a writer thread panicked"))??;
            all.extend(lat);
            appenders.push(append);
        }
        Ok((all, appenders))
    })?;
    let secs = started.elapsed().as_secs_f64();
    drop(appenders);
    Ok(records_result(
        &b_phase_name(writers),
        per_writer * writers,
        secs,
        latencies,
    ))
}

/// Phase E's loop: `reopen()` opens the data until ready to append, returns the record count it
/// found and a value whose drop closes it (outside the measured time).
pub fn drive_reopens<T>(mut reopen: impl FnMut() -> Result<(u64, T)>) -> Result<PhaseResult> {
    let mut latencies = Vec::new();
    let mut records = 0;
    for _ in 0..REOPEN_TRIES {
        let started = Instant::now();
        let (count, handle) = reopen()?;
        latencies.push(started.elapsed());
        records = count;
        drop(handle);
    }
    Ok(reopen_result(records, latencies))
}

/// A store compared in the benchmark. `dir` is a directory of the peer's own (created if
/// missing); phases C and E read what phase A left in its directory.
pub trait Peer {
    /// The peer's name in the output (`meshflow`, `sqlite`, …).
    fn name(&self) -> &'static str;
    /// Phase A: the whole workload, durable every [`SYNC_EVERY_RECORDS`] records.
    fn phase_a(&self, dir: &Path, workload: &Workload) -> Result<PhaseResult>;
    /// Phases B (`writers` = 1) and B<W>: `records` records, each durable on return.
    fn phase_b(
        &self,
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult>;
    /// Phase C: read everything phase A wrote into `dir`.
    fn phase_c(&self, dir: &Path) -> Result<PhaseResult>;
    /// Phase E: reopen phase A's `dir` until ready to append.
    fn phase_e(&self, dir: &Path) -> Result<PhaseResult>;
    /// Phase D: every step of 1,000 runs ([`run_steps`]) from phase A's `dir`, each step's
    /// payload, input and output copied out; `None` when the peer has no notion of runs.
    fn phase_d(&self, dir: &Path, workload: &Workload) -> Result<Option<PhaseResult>>;
}

/// The sequence numbers of run `run`'s steps, in step order (the workload appends round-robin,
/// so step `s` of run `r` is record `s × R + r`). Key-value peers look steps up by these, as
/// meshflow's runs view looks them up by offset.
pub fn run_steps(workload: &Workload, run: u64) -> impl Iterator<Item = u64> + '_ {
    (0..workload.steps).map(move |s| s * workload.runs + run)
}

/// One step read back: payload, input and output, owned (as a reader would hold them).
pub fn split_step(data: &[u8], workload: &Workload) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let p = usize::try_from(workload.payload_bytes).ok()?;
    let payload_len = data.len().checked_sub(2 * p)?;
    let (payload, rest) = data.split_at(payload_len);
    let (input, output) = rest.split_at(p);
    Some((payload.to_vec(), input.to_vec(), output.to_vec()))
}

/// Phase D's loop, shared by the peers: for each of the 1,000 runs of
/// [`meshflow_engine::bench::phase_d_runs`], `read_run(run)` reads every step of the run and
/// returns how many it read (which must be S). Latencies are per run; the rate is runs/s.
pub fn drive_run_reads(
    workload: &Workload,
    mut read_run: impl FnMut(u64) -> Result<u64>,
) -> Result<PhaseResult> {
    let picks = meshflow_engine::bench::phase_d_runs(workload);
    let mut latencies = Vec::with_capacity(picks.len());
    let started = Instant::now();
    for run in &picks {
        let t = Instant::now();
        let n = read_run(*run)?;
        if n != workload.steps {
            return Err(anyhow!(
                "run {run}: read {n} steps, expected {}",
                workload.steps
            ));
        }
        latencies.push(t.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(PhaseResult {
        phase: "D".to_string(),
        records: picks.len() as u64,
        secs,
        unit: "runs/s",
        latencies,
    })
}

/// Every peer's name, in the default order.
pub const PEER_NAMES: [&str; 7] = [
    "meshflow",
    "ledger",
    "handwritten",
    "sqlite",
    "sled",
    "redb",
    "fjall",
];

/// The peer called `name`.
pub fn peer(name: &str) -> Result<Box<dyn Peer>> {
    Ok(match name {
        "meshflow" => Box::new(meshflow_peer::Meshflow),
        "ledger" => Box::new(meshflow_peer::Ledger),
        "handwritten" => Box::new(handwritten::Handwritten),
        "sqlite" => Box::new(sqlite::Sqlite),
        "sled" => Box::new(sled_peer::Sled),
        "redb" => Box::new(redb_peer::Redb),
        "fjall" => Box::new(fjall_peer::Fjall),
        other => {
            return Err(anyhow!(
                "unknown peer '{other}' (one of {})",
                PEER_NAMES.join(",")
            ))
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_step_carries_the_workload_records_bytes() {
        let workload = Workload {
            runs: 5,
            steps: 3,
            payload_bytes: 16,
        };
        let step = Step::new(&workload, 12);
        let record = workload.record(12);
        assert_eq!(step.run_id, "run-00000002");
        assert_eq!(step.step, 2);
        assert_eq!(step.payload, record.payload);
        assert_eq!(vec![step.input.clone(), step.output.clone()], record.slots);
        assert_eq!(step.data().len(), record.payload.len() + 32);
        assert_eq!(key_seq(&seq_key(12)).unwrap(), 12);
    }

    #[test]
    fn every_peer_runs_every_phase_on_a_small_workload() {
        let workload = Workload {
            runs: 4,
            steps: 5,
            payload_bytes: 8,
        };
        for name in PEER_NAMES {
            let dir = tempfile::tempdir().unwrap();
            let peer = peer(name).unwrap();
            let a_dir = dir.path().join("a");
            assert_eq!(
                peer.phase_a(&a_dir, &workload).unwrap().records,
                20,
                "{name}"
            );
            let b = peer
                .phase_b(&dir.path().join("b"), &workload, 1, 6)
                .unwrap();
            assert_eq!((b.phase.as_str(), b.records), ("B", 6), "{name}");
            let bw = peer
                .phase_b(&dir.path().join("bw"), &workload, 3, 10)
                .unwrap();
            assert_eq!((bw.phase.as_str(), bw.records), ("B3", 9), "{name}");
            // The ledger's log also holds the checkpoint-digest event written when it closed.
            let records = if name == "ledger" { 21 } else { 20 };
            assert_eq!(peer.phase_c(&a_dir).unwrap().records, records, "{name}");
            match peer.phase_d(&a_dir, &workload).unwrap() {
                Some(d) => assert_eq!((d.records, d.unit), (1000, "runs/s"), "{name}"),
                None => assert_eq!(name, "meshflow", "only the bare log has no runs"),
            }
            let e = peer.phase_e(&a_dir).unwrap();
            assert!(e.records >= records, "{name}");
            assert_eq!(e.unit, "reopens/s", "{name}");
        }
    }
}
