//! The runs view: a projection of the log's durable step records. For each run (per tenant) it
//! keeps where every step lives in the log and the step's entry hash as computed when the
//! record was applied, so reads go straight to the record and verification has a recorded
//! chain to compare against.

use std::collections::HashMap;

use crate::error::Error;
use crate::log::{LogReader, Record};

use super::admission::{run_key, step_key, RunHead, StepKey, WriterState};
use super::checkpoint::{self, Binding, KIND_CHECKPOINT_DIGEST, SYSTEM_TENANT};
use super::step::{self, KIND_STEP};

/// Where one step lives and what it hashed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLoc {
    /// Log offset.
    pub offset: u64,
    /// Base offset of the segment holding it.
    pub segment_base: u64,
    /// Byte position of its frame in that segment (segments are at most 4 GiB).
    pub position: u32,
    /// Length of its frame in bytes, so a point read fetches exactly the frame.
    pub frame_len: u32,
    /// Entry hash computed when the record was applied.
    pub entry_hash: [u8; 32],
    /// Key of its step id.
    pub step_key: StepKey,
}

/// Where one governance event lives (`crate::governance`): the runs view is also the index
/// the governance views are rebuilt from, so a reopen reads those events and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLoc {
    /// Its log offset.
    pub offset: u64,
    /// Base offset of the segment holding it.
    pub segment_base: u64,
    /// Byte position of its frame in that segment.
    pub position: u32,
    /// Length of its frame in bytes.
    pub frame_len: u32,
}

/// One run in the view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunState {
    /// The tenant.
    pub tenant: String,
    /// The run id.
    pub run_id: String,
    /// Its steps in order.
    pub steps: Vec<StepLoc>,
    /// Offset of the run's latest record (orders `list_runs`).
    pub last_offset: u64,
    /// Deleted (`Ledger::delete_run`): "not found" everywhere; its records stay in the log,
    /// its slots erased, its chain still verifiable.
    pub deleted: bool,
}

/// A run erasure that took several erasure records, of which the last is not in the log yet
/// (a crash between two of them): a writable open finishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingErasure {
    /// The tenant of the erasure records.
    pub tenant: String,
    /// Offset of the series' first record: the erasure covers the runs' steps below it.
    pub first_offset: u64,
    /// The highest part number seen.
    pub seen: u32,
    /// The series' part count.
    pub parts: u32,
    /// The first record's note.
    pub note: Vec<u8>,
}

/// The view's state: every run, and the next offset to apply.
#[derive(Debug, Default)]
pub struct RunsView {
    /// Next log offset to apply.
    pub next_offset: u64,
    /// Runs by [`run_key`].
    pub runs: HashMap<Vec<u8>, RunState>,
    /// Every governance event, in offset order.
    pub events: Vec<EventLoc>,
    /// Run erasures of several records not finished yet, by series id (logic version 4).
    pub pending_erasures: std::collections::BTreeMap<String, PendingErasure>,
    /// The checkpoint the state was loaded from, if any: its digest event in the log must agree.
    pub loaded_from: Option<Binding>,
    /// Set when the log's digest event for `loaded_from` disagrees with it.
    pub digest_mismatch: Option<String>,
    /// One past the offset of the last record applied that is not a checkpoint-digest event:
    /// a view that moved only over digest events needs no new checkpoint.
    pub data_end: u64,
    /// Scratch space for run keys (see `apply`).
    pub(crate) key_buf: Vec<u8>,
}

impl RunsView {
    /// Applies every durable record from `next_offset` to the reader's durable end.
    pub fn refresh(&mut self, reader: &LogReader) -> Result<(), Error> {
        let snapshot = reader.snapshot()?;
        if snapshot.head.next_offset <= self.next_offset {
            return Ok(());
        }
        for record in reader.scan_snapshot(snapshot, self.next_offset)? {
            self.apply(&record?)?;
        }
        Ok(())
    }

    /// Applies one record (records must come in offset order).
    pub fn apply(&mut self, record: &Record) -> Result<(), Error> {
        let view = record.view();
        let offset = view.offset();
        if view.kind() == KIND_CHECKPOINT_DIGEST && view.tenant() == SYSTEM_TENANT.as_bytes() {
            self.check_digest_event(view.payload(), offset);
            self.next_offset = offset + 1;
            return Ok(());
        }
        if view.kind() == crate::format::erasure::KIND_ERASE {
            // A deletion marks its runs deleted (the note says which); a series of several
            // records stays pending until its last part.
            if let Some((_, note)) = crate::format::erasure::decode(view.payload()) {
                for run_id in super::erasure::deleted_runs(note).unwrap_or_default() {
                    let key = run_key(view.tenant(), run_id.as_bytes());
                    if let Some(run) = self.runs.get_mut(&key) {
                        run.deleted = true;
                    }
                }
                if let Some((series, part, parts)) = super::erasure::series_of(note) {
                    let pending =
                        self.pending_erasures
                            .entry(series.clone())
                            .or_insert_with(|| PendingErasure {
                                tenant: String::from_utf8_lossy(view.tenant()).into_owned(),
                                first_offset: offset,
                                seen: 0,
                                parts,
                                note: note.to_vec(),
                            });
                    pending.seen = pending.seen.max(part);
                    if pending.seen >= pending.parts {
                        self.pending_erasures.remove(&series);
                    }
                }
            }
        }
        if view.kind() != KIND_STEP {
            if let Some(family) = crate::governance::Family::of_kind(view.kind()) {
                // A fork creates its run, even when it copied no step.
                if family == crate::governance::Family::Lineage {
                    if let Some(run_id) = crate::governance::Event::decode(family, view.payload())
                        .ok()
                        .as_ref()
                        .and_then(crate::governance::lineage::forked_run)
                    {
                        let tenant = view.tenant();
                        let key = run_key(tenant, run_id.as_bytes());
                        self.runs.entry(key).or_insert_with(|| RunState {
                            tenant: String::from_utf8_lossy(tenant).into_owned(),
                            run_id,
                            steps: Vec::new(),
                            last_offset: offset,
                            deleted: false,
                        });
                    }
                }
                let damaged = |why: &str| {
                    Error::corrupt(
                        crate::format::segment_header::segment_file_name(record.segment_base()),
                        record.position(),
                        Some(offset),
                        why.to_string(),
                    )
                };
                self.events.push(EventLoc {
                    offset,
                    segment_base: record.segment_base(),
                    position: u32::try_from(record.position())
                        .map_err(|_| damaged("frame position beyond 4 GiB"))?,
                    frame_len: u32::try_from(view.frame_len())
                        .map_err(|_| damaged("frame longer than 4 GiB"))?,
                });
            }
            self.next_offset = offset + 1;
            self.data_end = offset + 1;
            return Ok(());
        }
        // Everything that can fail comes before the view changes: a record that cannot be
        // applied leaves the view where it was, and every later read reports it again.
        let damaged = |why: &str| {
            Error::corrupt(
                crate::format::segment_header::segment_file_name(record.segment_base()),
                record.position(),
                Some(offset),
                why.to_string(),
            )
        };
        let (run_id, step_id) =
            step::peek_ids(view.payload()).ok_or_else(|| damaged("malformed step payload"))?;
        let position =
            u32::try_from(record.position()).map_err(|_| damaged("frame position beyond 4 GiB"))?;
        let frame_len =
            u32::try_from(view.frame_len()).map_err(|_| damaged("frame longer than 4 GiB"))?;
        let tenant = view.tenant();
        // A known run is found through a key built in place; only a new run's key is kept.
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        key.extend_from_slice(tenant);
        key.push(0);
        key.extend_from_slice(run_id.as_bytes());
        if !self.runs.contains_key(key.as_slice()) {
            self.runs.insert(
                key.clone(),
                RunState {
                    tenant: String::from_utf8_lossy(tenant).into_owned(),
                    run_id: run_id.to_string(),
                    steps: Vec::new(),
                    last_offset: offset,
                    deleted: false,
                },
            );
        }
        let run = self.runs.get_mut(key.as_slice());
        self.key_buf = key;
        let Some(run) = run else {
            return Err(damaged("the run just added is missing"));
        };
        let prev = run.steps.last().map_or([0; 32], |s| s.entry_hash);
        let entry_hash = step::entry_hash(
            &prev,
            run.steps.len() as u64,
            offset,
            tenant,
            &view.body_digest(),
        );
        run.steps.push(StepLoc {
            offset,
            segment_base: record.segment_base(),
            position,
            frame_len,
            entry_hash,
            step_key: step_key(tenant, step_id.as_bytes()),
        });
        run.last_offset = offset;
        self.next_offset = offset + 1;
        self.data_end = offset + 1;
        Ok(())
    }

    fn check_digest_event(&mut self, payload: &[u8], at: u64) {
        let (Some(loaded), Some((logic, event))) =
            (self.loaded_from, checkpoint::parse_digest_event(payload))
        else {
            return;
        };
        if logic == checkpoint::VIEW_LOGIC_VERSION
            && event.offset == loaded.offset
            && event != loaded
        {
            self.digest_mismatch = Some(format!(
                "the checkpoint at offset {} disagrees with the digest event at offset {at}",
                loaded.offset
            ));
        }
    }

    /// The run `run_id` of `tenant`.
    pub fn run(&self, tenant: &str, run_id: &str) -> Option<&RunState> {
        self.runs
            .get(&run_key(tenant.as_bytes(), run_id.as_bytes()))
            .filter(|r| !r.deleted)
    }

    /// The admission state equal to this view (when the view covers the whole log).
    pub fn writer_state(&self) -> WriterState {
        let mut state = WriterState::default();
        let steps: usize = self.runs.values().map(|r| r.steps.len()).sum();
        state.steps.reserve(steps);
        state.runs.reserve(self.runs.len());
        for (key, run) in &self.runs {
            state.runs.insert(
                key.clone(),
                RunHead {
                    count: run.steps.len() as u64,
                    head: run.steps.last().map_or([0; 32], |s| s.entry_hash),
                },
            );
            for s in &run.steps {
                state.steps.insert(s.step_key, s.offset);
            }
            if run.deleted {
                state.deleted.insert(key.clone());
            }
        }
        state
    }
}
