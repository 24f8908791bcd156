//! Reads over the runs view: runs, steps, summaries, diffs and per-run chain verification.
//! Every read is scoped to the handle's tenant; an unknown run is [`LedgerError::NotFound`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::Error;
use crate::format::frame::FrameView;
use crate::format::segment_header::{segment_file_name, SEGMENT_HEADER_BYTES};
use crate::log::{Record, Snapshot, VerifyReport};

use super::export::{round_to, short_hex};
use super::record::{read_step, FieldValue, StoredStep};
use super::runs::StepLoc;
use super::step;
use super::{Ledger, LedgerError};

/// How many step locations are copied out of the view at a time, so a long run is read with
/// bounded memory and without holding the view's lock.
const CHUNK: usize = 4096;

/// A step as read back, with its place in the run and its chain hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The stored record.
    pub stored: StoredStep,
    /// Index in the run.
    pub step_index: u64,
    /// Entry hash of the previous step (zeros for step 0).
    pub prev_hash: [u8; 32],
    /// This step's entry hash as the view recorded it.
    pub entry_hash: [u8; 32],
}

impl Step {
    /// The text of slot field `index`, `[REDACTED]` when erased.
    pub fn text(&self, index: u16) -> &str {
        match self.stored.slots.get(usize::from(index)) {
            Some(FieldValue::Text(t)) => t,
            _ => "[REDACTED]",
        }
    }

    /// Names of the erased fields.
    pub fn redacted(&self) -> Vec<&'static str> {
        const NAMES: [&str; 4] = ["input_task", "output_content", "block_reason", "metadata"];
        self.stored
            .slots
            .iter()
            .zip(NAMES)
            .filter(|(v, _)| matches!(v, FieldValue::Redacted { .. }))
            .map(|(_, n)| n)
            .collect()
    }
}

/// The reference's run summary.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Number of steps.
    pub steps: u64,
    /// Node id of each step, in order.
    pub nodes: Vec<String>,
    /// Sum of costs, rounded to 6 places.
    pub total_cost_usd: f64,
    /// Sum of tokens.
    pub total_tokens: u64,
    /// Sum of carbon, rounded to 4 places.
    pub total_carbon_gco2: f64,
    /// Blocked steps.
    pub blocked_steps: u64,
    /// Verdict of each step, in order.
    pub verdicts: Vec<String>,
    /// First step's timestamp (`None` for an empty run).
    pub start: Option<String>,
    /// Last step's timestamp.
    pub end: Option<String>,
}

impl RunSummary {
    /// The summary of a run before its first step.
    pub fn empty(run_id: &str) -> RunSummary {
        RunSummary {
            run_id: run_id.to_string(),
            steps: 0,
            nodes: Vec::new(),
            total_cost_usd: 0.0,
            total_tokens: 0,
            total_carbon_gco2: 0.0,
            blocked_steps: 0,
            verdicts: Vec::new(),
            start: None,
            end: None,
        }
    }

    /// Counts the run's next step (steps must come in order).
    pub fn add(&mut self, step: &Step) {
        let f = &step.stored.fields;
        self.steps += 1;
        self.nodes.push(f.node_id.clone());
        self.verdicts.push(f.verdict.clone());
        self.total_cost_usd += f.cost_usd;
        self.total_tokens = self.total_tokens.saturating_add(f.tokens_used);
        self.total_carbon_gco2 += f.carbon_gco2;
        self.blocked_steps += u64::from(f.blocked);
        if self.start.is_none() {
            self.start = Some(f.timestamp.clone());
        }
        self.end = Some(f.timestamp.clone());
    }

    /// The summary, totals rounded as the reference rounds them.
    pub fn finish(mut self) -> RunSummary {
        self.total_cost_usd = round_to(self.total_cost_usd, 6);
        self.total_carbon_gco2 = round_to(self.total_carbon_gco2, 4);
        self
    }

    /// The summary of steps already read (`get_run`), with no second read of the run.
    pub fn of(run_id: &str, steps: &[Step]) -> RunSummary {
        let mut s = RunSummary::empty(run_id);
        steps.iter().for_each(|step| s.add(step));
        s.finish()
    }
}

/// One failure found by [`Ledger::verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainError {
    /// Index of the step.
    pub step_index: u64,
    /// Its step id (`?` when the record is too damaged to tell).
    pub step_id: String,
    /// Which check failed: `entry_hash`, `global_hash`, `commitment` or `record`.
    pub hash: &'static str,
    /// The message, in the reference's form.
    pub message: String,
}

/// The result of verifying one run's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Run id.
    pub run_id: String,
    /// No errors.
    pub valid: bool,
    /// Steps checked.
    pub steps_verified: u64,
    /// Steps with erased fields (their erased content is unverifiable; their hashes are).
    pub steps_redacted: u64,
    /// What failed.
    pub errors: Vec<ChainError>,
}

/// The reference's run diff.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDiff {
    /// First run.
    pub run_id_a: String,
    /// Second run.
    pub run_id_b: String,
    /// Node ids only in A, sorted.
    pub only_in_a: Vec<String>,
    /// Node ids only in B, sorted.
    pub only_in_b: Vec<String>,
    /// Node ids in both, sorted.
    pub common: Vec<String>,
    /// Common nodes whose output or verdict differ (last occurrence of each node).
    pub changed: Vec<ChangedNode>,
    /// Sum of B's costs minus A's, rounded to 6 places.
    pub cost_delta_usd: f64,
    /// Sum of B's tokens minus A's.
    pub token_delta: i128,
}

/// A node whose output or verdict differs between two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedNode {
    /// Node id.
    pub node_id: String,
    /// Verdict in A.
    pub verdict_a: String,
    /// Verdict in B.
    pub verdict_b: String,
    /// First 200 characters of A's output.
    pub output_a: String,
    /// First 200 characters of B's output.
    pub output_b: String,
    /// B's cost minus A's for this node, rounded to 6 places.
    pub cost_delta_usd: f64,
}

fn damaged(loc: &StepLoc, why: &str) -> Error {
    Error::corrupt(
        segment_file_name(loc.segment_base),
        u64::from(loc.position),
        Some(loc.offset),
        why.to_string(),
    )
}

impl Ledger {
    pub(super) fn not_found(&self, run_id: &str) -> LedgerError {
        LedgerError::NotFound {
            what: format!("run '{run_id}'"),
        }
    }

    /// Brings the view up to `snapshot` and returns it with the run's step count there.
    pub(crate) fn run_len(&self, run_id: &str) -> Result<(Snapshot, usize), LedgerError> {
        let snapshot = self.reader().snapshot()?;
        let view = self.refresh()?;
        let run = view
            .run(&self.tenant, run_id)
            .ok_or_else(|| self.not_found(run_id))?;
        let below = run
            .steps
            .partition_point(|s| s.offset < snapshot.head.next_offset);
        Ok((snapshot, below))
    }

    /// Calls `f` for each step of the run in order, from `from` (an index), reading the log
    /// in chunks: memory does not grow with the run.
    pub fn for_each_step(
        &self,
        run_id: &str,
        from: usize,
        f: impl FnMut(Step) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        self.for_each_step_in(run_id, from, usize::MAX, f)
    }

    /// [`Ledger::for_each_step`] for at most `count` steps from `from`.
    pub(crate) fn for_each_step_in(
        &self,
        run_id: &str,
        from: usize,
        count: usize,
        mut f: impl FnMut(Step) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        let (snapshot, all) = self.run_len(run_id)?;
        let len = all.min(from.saturating_add(count));
        self.for_each_loc(run_id, from, len, |loc, index, prev| {
            let record = self.read_loc(&snapshot, loc)?;
            let stored = read_step(&record)?.ok_or_else(|| damaged(loc, "not a step record"))?;
            f(Step {
                stored,
                step_index: index,
                prev_hash: prev,
                entry_hash: loc.entry_hash,
            })
        })?;
        Ok(len.saturating_sub(from) as u64)
    }

    /// Calls `f(loc, index, prev_entry_hash)` for the run's step locations `from..len`.
    fn for_each_loc(
        &self,
        run_id: &str,
        from: usize,
        len: usize,
        mut f: impl FnMut(&StepLoc, u64, [u8; 32]) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut start = from;
        while start < len {
            let end = (start + CHUNK).min(len);
            let (chunk, mut prev) = {
                let view = self.inner.view.lock().unwrap_or_else(|p| p.into_inner());
                let run = view
                    .run(&self.tenant, run_id)
                    .ok_or_else(|| self.not_found(run_id))?;
                let prev = start
                    .checked_sub(1)
                    .and_then(|i| run.steps.get(i))
                    .map_or([0; 32], |s| s.entry_hash);
                (run.steps.get(start..end).unwrap_or(&[]).to_vec(), prev)
            };
            for (i, loc) in chunk.iter().enumerate() {
                f(loc, (start + i) as u64, prev)?;
                prev = loc.entry_hash;
            }
            start = end;
        }
        Ok(())
    }

    pub(super) fn read_loc(&self, snapshot: &Snapshot, loc: &StepLoc) -> Result<Record, Error> {
        self.reader().read_at_len(
            snapshot,
            loc.segment_base,
            u64::from(loc.position),
            loc.offset,
            Some(loc.frame_len),
        )
    }

    /// The run's steps in order.
    pub fn get_run(&self, run_id: &str) -> Result<Vec<Step>, LedgerError> {
        let mut steps = Vec::new();
        self.for_each_step(run_id, 0, |s| {
            steps.push(s);
            Ok(())
        })?;
        Ok(steps)
    }

    /// The tenant's run ids, newest first (by the offset of each run's latest step).
    pub fn list_runs(&self) -> Result<Vec<String>, LedgerError> {
        let view = self.refresh()?;
        let mut runs: Vec<(u64, &str)> = view
            .runs
            .values()
            .filter(|r| r.tenant == self.tenant && !r.deleted)
            .map(|r| (r.last_offset, r.run_id.as_str()))
            .collect();
        runs.sort_unstable_by(|a, b| b.cmp(a));
        Ok(runs.into_iter().map(|(_, id)| id.to_string()).collect())
    }

    /// The step at `step_index` (negative or past the end: `None`).
    pub fn load_state(&self, run_id: &str, step_index: i64) -> Result<Option<Step>, LedgerError> {
        let Ok(index) = usize::try_from(step_index) else {
            self.run_len(run_id)?; // an unknown run is still "not found"
            return Ok(None);
        };
        let mut found = None;
        self.for_each_step_in(run_id, index, 1, |step| {
            found = Some(step);
            Ok(())
        })?;
        Ok(found)
    }

    /// The step of `run_id` written at `offset`, if that run has one there.
    pub(crate) fn step_at(&self, run_id: &str, offset: u64) -> Result<Option<Step>, LedgerError> {
        let index = {
            let view = self.refresh()?;
            let Some(run) = view.run(&self.tenant, run_id) else {
                return Ok(None);
            };
            match run.steps.binary_search_by_key(&offset, |s| s.offset) {
                Ok(i) => i,
                Err(_) => return Ok(None),
            }
        };
        self.load_state(run_id, i64::try_from(index).unwrap_or(i64::MAX))
    }

    /// The reference's run summary.
    pub fn run_summary(&self, run_id: &str) -> Result<RunSummary, LedgerError> {
        let mut s = RunSummary::empty(run_id);
        self.for_each_step(run_id, 0, |step| {
            s.add(&step);
            Ok(())
        })?;
        Ok(s.finish())
    }

    /// Compares two runs node by node (the last occurrence of a node wins).
    pub fn diff(&self, run_a: &str, run_b: &str) -> Result<RunDiff, LedgerError> {
        struct Side {
            nodes: BTreeMap<String, (String, String, f64)>,
            cost: f64,
            tokens: i128,
        }
        let collect = |run: &str| -> Result<Side, LedgerError> {
            let mut side = Side {
                nodes: BTreeMap::new(),
                cost: 0.0,
                tokens: 0,
            };
            self.for_each_step(run, 0, |step| {
                let f = &step.stored.fields;
                side.cost += f.cost_usd;
                side.tokens += i128::from(f.tokens_used);
                side.nodes.insert(
                    f.node_id.clone(),
                    (
                        f.verdict.clone(),
                        step.text(step::slot::OUTPUT_CONTENT).to_string(),
                        f.cost_usd,
                    ),
                );
                Ok(())
            })?;
            Ok(side)
        };
        let a = collect(run_a)?;
        let b = collect(run_b)?;
        let keys_a: BTreeSet<&String> = a.nodes.keys().collect();
        let keys_b: BTreeSet<&String> = b.nodes.keys().collect();
        let prefix = |s: &str| s.chars().take(200).collect::<String>();
        let mut changed = Vec::new();
        for node in keys_a.intersection(&keys_b) {
            if let (Some(x), Some(y)) = (a.nodes.get(*node), b.nodes.get(*node)) {
                if x.0 != y.0 || x.1 != y.1 {
                    changed.push(ChangedNode {
                        node_id: (*node).clone(),
                        verdict_a: x.0.clone(),
                        verdict_b: y.0.clone(),
                        output_a: prefix(&x.1),
                        output_b: prefix(&y.1),
                        cost_delta_usd: round_to(y.2 - x.2, 6),
                    });
                }
            }
        }
        Ok(RunDiff {
            run_id_a: run_a.to_string(),
            run_id_b: run_b.to_string(),
            only_in_a: keys_a.difference(&keys_b).map(|s| (*s).clone()).collect(),
            only_in_b: keys_b.difference(&keys_a).map(|s| (*s).clone()).collect(),
            common: keys_a.intersection(&keys_b).map(|s| (*s).clone()).collect(),
            changed,
            cost_delta_usd: round_to(b.cost - a.cost, 6),
            token_delta: b.tokens - a.tokens,
        })
    }

    /// Verifies the run's chain: each record's frame and global hash, its link to the next
    /// record, each live field against its commitment, and each entry hash against the one
    /// the view recorded (the previous step's recorded hash is the expected link, so one
    /// altered step is reported once).
    pub fn verify_chain(&self, run_id: &str) -> Result<ChainReport, LedgerError> {
        let (snapshot, len) = self.run_len(run_id)?;
        let mut report = ChainReport {
            run_id: run_id.to_string(),
            valid: true,
            steps_verified: 0,
            steps_redacted: 0,
            errors: Vec::new(),
        };
        self.for_each_loc(run_id, 0, len, |loc, index, prev| {
            report.steps_verified += 1;
            if let Some(e) = self.check_step(&snapshot, loc, index, &prev, &mut report) {
                report.errors.push(e);
            }
            Ok(())
        })?;
        report.valid = report.errors.is_empty();
        Ok(report)
    }

    fn check_step(
        &self,
        snapshot: &Snapshot,
        loc: &StepLoc,
        index: u64,
        prev: &[u8; 32],
        report: &mut ChainReport,
    ) -> Option<ChainError> {
        let error = |step_id: &str, hash: &'static str, what: String| ChainError {
            step_index: index,
            step_id: step_id.to_string(),
            hash,
            message: format!("step {index} ({step_id}): {what}"),
        };
        let record = match self.read_loc(snapshot, loc) {
            Ok(r) => r,
            Err(e) => return Some(error("?", "record", format!("record damaged: {e}"))),
        };
        let view = record.view();
        let step_id = step::peek_ids(view.payload()).map_or("?", |(_, s)| s);
        let stored = match read_step(&record) {
            Ok(Some(s)) => s,
            Ok(None) => return Some(error(step_id, "record", "not a step record".to_string())),
            Err(e) => return Some(error(step_id, "record", format!("record damaged: {e}"))),
        };
        if stored
            .slots
            .iter()
            .any(|s| matches!(s, FieldValue::Redacted { .. }))
        {
            report.steps_redacted += 1;
        }
        if view.compute_hash() != view.hash() {
            return Some(error(
                step_id,
                "global_hash",
                "entry_hash mismatch — record was modified (its global hash does not match)"
                    .to_string(),
            ));
        }
        if let Some(next) = self.next_record(snapshot, &record) {
            if next.view().prev_hash() != view.hash() {
                return Some(error(
                    step_id,
                    "global_hash",
                    "entry_hash mismatch — record was modified (the next record does not link to it)"
                        .to_string(),
                ));
            }
        }
        const NAMES: [&str; 4] = ["input_task", "output_content", "block_reason", "metadata"];
        for (i, name) in NAMES.iter().enumerate() {
            if !matches!(view.slot_matches_commitment(i), Ok(true)) {
                return Some(error(
                    step_id,
                    "commitment",
                    format!("entry_hash mismatch — record was modified ({name} does not match its commitment)"),
                ));
            }
        }
        let recomputed = super::record::step_entry_hash(&record, prev, index);
        if recomputed != loc.entry_hash {
            return Some(error(
                step_id,
                "entry_hash",
                format!(
                    "entry_hash mismatch — record was modified (expected={}... got={}...)",
                    short_hex(&loc.entry_hash),
                    short_hex(&recomputed)
                ),
            ));
        }
        None
    }

    /// The record after `record` in the log, when it is durable.
    fn next_record(&self, snapshot: &Snapshot, record: &Record) -> Option<Record> {
        let next = record.offset() + 1;
        if next >= snapshot.head.next_offset {
            return None;
        }
        let after = record.position() + record.view().frame_len();
        self.reader()
            .read_at(snapshot, record.segment_base(), after, next)
            .or_else(|_| {
                self.reader()
                    .read_at(snapshot, next, SEGMENT_HEADER_BYTES as u64, next)
            })
            .ok()
    }

    /// Verifies the whole log (frames, the global chain, every slot and erasure) and every run
    /// chain in one pass: each step's entry hash is recomputed on the verify workers from the
    /// body digest they already computed, against the chain the runs view recorded. Returns
    /// the log report and a chain report for each run of the handle's tenant (newest first).
    /// A damaged or re-hashed record fails the whole call with the log's error, like
    /// `log verify`; [`Ledger::describe_offset`] names the step it belongs to.
    pub fn verify_all(&self) -> Result<(VerifyReport, Vec<ChainReport>), LedgerError> {
        struct Expect {
            offset: u64,
            run: usize,
            index: u64,
            prev: [u8; 32],
            expected: [u8; 32],
            step_key: super::admission::StepKey,
        }
        let snapshot = self.reader().snapshot()?;
        let end = snapshot.head.next_offset;
        let (runs, table, deleted) = {
            let view = self.refresh()?;
            let mut runs: Vec<(String, String, u64, u64)> = Vec::new();
            let mut deleted: Vec<bool> = Vec::new();
            let mut table = Vec::new();
            for run in view.runs.values() {
                let r = runs.len();
                let mut prev = [0u8; 32];
                let mut count = 0u64;
                for (i, s) in run.steps.iter().take_while(|s| s.offset < end).enumerate() {
                    table.push(Expect {
                        offset: s.offset,
                        run: r,
                        index: i as u64,
                        prev,
                        expected: s.entry_hash,
                        step_key: s.step_key,
                    });
                    prev = s.entry_hash;
                    count += 1;
                }
                let last = run
                    .steps
                    .iter()
                    .take_while(|s| s.offset < end)
                    .last()
                    .map_or(0, |s| s.offset);
                // A deleted run's chain is still checked; it is only left out of the reports.
                deleted.push(run.deleted);
                runs.push((run.tenant.clone(), run.run_id.clone(), count, last));
            }
            table.sort_unstable_by_key(|e| e.offset);
            (runs, table, deleted)
        };
        let failures: Mutex<Vec<(usize, ChainError)>> = Mutex::new(Vec::new());
        let redacted: Vec<AtomicU64> = runs.iter().map(|_| AtomicU64::new(0)).collect();
        // Steps of each run the log pass met: every step the view lists must be met once.
        let met: Vec<AtomicU64> = runs.iter().map(|_| AtomicU64::new(0)).collect();
        let hook = |_record: &Record, view: &FrameView<'_>, body: &[u8; 32]| {
            if view.kind() != step::KIND_STEP {
                return;
            }
            let offset = view.offset();
            let step_id = step::peek_ids(view.payload()).map_or("?", |(_, s)| s);
            let fail = |run: usize, index: u64, hash: &'static str, what: String| {
                let e = ChainError {
                    step_index: index,
                    step_id: step_id.to_string(),
                    hash,
                    message: format!("step {index} ({step_id}): {what}"),
                };
                failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((run, e));
            };
            let Ok(i) = table.binary_search_by_key(&offset, |e| e.offset) else {
                fail(
                    usize::MAX,
                    0,
                    "record",
                    format!("the step at offset {offset} belongs to no run of the runs view"),
                );
                return;
            };
            let Some(e) = table.get(i) else { return };
            if let Some(c) = met.get(e.run) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            // The record must be the step the view files there: same tenant, run and step id.
            let filed = runs.get(e.run).is_some_and(|(tenant, run_id, _, _)| {
                tenant.as_bytes() == view.tenant()
                    && step::peek_ids(view.payload()).is_some_and(|(r, s)| {
                        r == run_id
                            && super::admission::step_key(view.tenant(), s.as_bytes()) == e.step_key
                    })
            });
            if !filed {
                fail(
                    e.run,
                    e.index,
                    "record",
                    format!("the runs view files the step at offset {offset} under another run, tenant or step id"),
                );
                return;
            }
            let recomputed = step::entry_hash(&e.prev, e.index, offset, view.tenant(), body);
            if recomputed != e.expected {
                fail(
                    e.run,
                    e.index,
                    "entry_hash",
                    format!(
                        "entry_hash mismatch — record was modified (expected={}... got={}...)",
                        short_hex(&e.expected),
                        short_hex(&recomputed)
                    ),
                );
            }
            let erased = (0..view.slot_count()).any(|k| {
                view.slot_range(k)
                    .and_then(|r| crate::format::u32_at(view.bytes(), r.start))
                    == Some(crate::format::slot::SLOT_STATE_ERASED)
            });
            if erased {
                if let Some(c) = redacted.get(e.run) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        let report = self.reader().verify_with(snapshot, &hook)?;
        let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
        for (r, (_, run_id, count, _)) in runs.iter().enumerate() {
            let seen = met.get(r).map_or(0, |c| c.load(Ordering::Relaxed));
            if seen != *count {
                failures.push((
                    r,
                    ChainError {
                        step_index: seen,
                        step_id: "?".to_string(),
                        hash: "record",
                        message: format!(
                            "the runs view lists {count} step(s) of run '{run_id}' but the log holds {seen} of them"
                        ),
                    },
                ));
            }
        }
        failures.sort_by_key(|(run, e)| (*run, e.step_index));
        let mut order: Vec<usize> = (0..runs.len())
            .filter(|r| runs.get(*r).is_some_and(|(t, _, _, _)| *t == self.tenant))
            .filter(|r| !deleted.get(*r).copied().unwrap_or(false))
            .collect();
        order.sort_by_key(|r| std::cmp::Reverse(runs.get(*r).map_or(0, |x| x.3)));
        let reports = order
            .into_iter()
            .filter_map(|r| {
                let (_, run_id, count, _) = runs.get(r)?;
                let errors: Vec<ChainError> = failures
                    .iter()
                    .filter(|(fr, _)| *fr == r)
                    .map(|(_, e)| e.clone())
                    .collect();
                Some(ChainReport {
                    run_id: run_id.clone(),
                    valid: errors.is_empty(),
                    steps_verified: *count,
                    steps_redacted: redacted.get(r).map_or(0, |c| c.load(Ordering::Relaxed)),
                    errors,
                })
            })
            .collect();
        if let Some((_, e)) = failures.iter().find(|(r, _)| *r == usize::MAX) {
            return Err(LedgerError::Log(Error::verify(
                "runs view",
                0,
                0,
                e.message.clone(),
            )));
        }
        Ok((report, reports))
    }

    /// Names the step of this tenant a log offset holds (`step 3 of run 'R'`), for error
    /// messages; `None` for an offset that holds none of its steps.
    pub fn describe_offset(&self, offset: u64) -> Option<String> {
        let view = self.inner.view.lock().unwrap_or_else(|p| p.into_inner());
        view.runs
            .values()
            .filter(|r| r.tenant == self.tenant && !r.deleted)
            .find_map(|run| {
                let i = run.steps.binary_search_by_key(&offset, |s| s.offset).ok()?;
                Some(format!(
                    "step {i} of run '{}' (tenant '{}')",
                    run.run_id, run.tenant
                ))
            })
    }
}
