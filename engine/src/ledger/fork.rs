//! Forks (SPEC §5.3): a new run that starts as a copy of a parent's first steps, with fresh step
//! ids (`<new>-<old>`), a fresh chain, and its origin in the first copied step and in a `fork`
//! event (a lineage event: the runs view lists the fork even when it copied nothing, and the
//! lineage view adds `run:<parent>` → `run:<fork>`, `forked_from`). The event and the copies are
//! one atomic batch; the parent is never touched, and the copies own their slots (erasing the
//! parent does not erase the fork).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::step::{slot, ForkOrigin};
use super::{Ledger, LedgerError, StepRequest};
use crate::governance::{self, lineage};
use crate::log::{Durability, RecordInput};

/// What a fork changes for its replay, recorded with its origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForkOverrides {
    /// A label naming the branch (`--branch-compare`'s variants).
    pub label: Option<String>,
    /// Another model.
    pub model: Option<String>,
    /// Another prompt.
    pub prompt: Option<String>,
    /// Other values, by key.
    pub inject: BTreeMap<String, String>,
}

impl ForkOverrides {
    fn to_json(&self) -> Value {
        json!({"label": self.label, "model": self.model, "prompt": self.prompt, "inject": self.inject})
    }
}

/// What a fork made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkReceipt {
    /// The new run.
    pub run_id: String,
    /// The parent.
    pub parent_run_id: String,
    /// Steps copied.
    pub steps_copied: u64,
    /// Offset of the fork event.
    pub offset: u64,
}

/// Which of the parent's steps a fork copies.
enum Cut {
    /// −1: all; 0: none; k: the first min(k, len).
    Steps(i64),
    /// Those below a log offset.
    Offset(u64),
}

/// A labelled branch of a run: a fork made with a label.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// The label.
    pub label: String,
    /// The fork's run id.
    pub run_id: String,
    /// Its recorded overrides (`{label, model, prompt, inject}`).
    pub overrides: Value,
}

impl Ledger {
    /// The labelled forks of `run`, oldest first (from the lineage view's fork edges).
    pub fn branches(&self, run: &str) -> Result<Vec<Branch>, LedgerError> {
        self.run_len(run)?;
        self.with_governance(|g| {
            let graph = &g.of(&self.tenant).lineage;
            graph
                .edges()
                .into_iter()
                .filter(|e| e.relation == "forked_from" && e.source_id == lineage::run_node(run))
                .filter_map(|e| {
                    let node = graph.node(&e.target_id)?;
                    let overrides = node.metadata.as_ref()?.get("overrides")?.clone();
                    let label = overrides.get("label")?.as_str()?.to_string();
                    Some(Branch {
                        label,
                        run_id: node.run_id.clone(),
                        overrides,
                    })
                })
                .collect()
        })
    }

    /// Forks `run` from step `from_step` (−1 copies every step, 0 none, k the first min(k,
    /// len)) into `new_run_id` (a new UUID when `None`). An unknown run is `NotFound`; a run id
    /// in use is a `Conflict`.
    pub fn fork(
        &self,
        run: &str,
        from_step: i64,
        new_run_id: Option<&str>,
        overrides: &ForkOverrides,
    ) -> Result<ForkReceipt, LedgerError> {
        self.fork_impl(run, Cut::Steps(from_step), new_run_id, overrides)
    }

    /// Forks `run` with the steps it had below log offset `offset`.
    pub fn fork_at_offset(
        &self,
        run: &str,
        offset: u64,
        new_run_id: Option<&str>,
        overrides: &ForkOverrides,
    ) -> Result<ForkReceipt, LedgerError> {
        self.fork_impl(run, Cut::Offset(offset), new_run_id, overrides)
    }

    fn fork_impl(
        &self,
        run: &str,
        cut: Cut,
        new_run_id: Option<&str>,
        overrides: &ForkOverrides,
    ) -> Result<ForkReceipt, LedgerError> {
        let log = self.inner.log.as_ref().ok_or(LedgerError::ReadOnly)?;
        // The parent's step offsets and entry hashes (the cut and the origin need no more).
        let (locs, end): (Vec<(u64, [u8; 32])>, u64) = {
            let view = self.refresh()?;
            let locs = view
                .run(&self.tenant, run)
                .ok_or_else(|| self.not_found(run))?
                .steps
                .iter()
                .map(|s| (s.offset, s.entry_hash))
                .collect();
            (locs, view.next_offset)
        };
        let (count, from_step, at_offset) = match cut {
            Cut::Steps(-1) => (locs.len(), -1, end),
            Cut::Steps(k) if k >= 0 => (
                locs.len().min(usize::try_from(k).unwrap_or(usize::MAX)),
                k,
                end,
            ),
            Cut::Steps(k) => {
                return Err(LedgerError::Invalid {
                    reason: format!("fork at step {k}: −1 (all), 0 (none) or a step count"),
                })
            }
            Cut::Offset(offset) => {
                if offset > end {
                    return Err(LedgerError::Invalid {
                        reason: format!("offset {offset} is past the log's durable end ({end})"),
                    });
                }
                let n = locs.iter().take_while(|(o, _)| *o < offset).count();
                (n, i64::try_from(n).unwrap_or(i64::MAX), offset)
            }
        };
        let new = match new_run_id {
            Some(id) => id.to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        governance::event::check_name("a run id", &new)
            .map_err(|reason| LedgerError::Invalid { reason })?;
        let event = lineage::events::fork(
            &new,
            run,
            from_step,
            count as u64,
            at_offset,
            overrides.to_json(),
            governance::now_secs(),
        );
        let mut records = vec![RecordInput::new(
            event.family.kind(),
            self.tenant.as_str(),
            event.encode(),
        )];
        let now = super::time::now_iso8601();
        let origin = ForkOrigin {
            parent_run_id: run.to_string(),
            parent_step_index: count.saturating_sub(1) as u64,
            parent_entry_hash: locs.get(count.wrapping_sub(1)).map_or([0; 32], |l| l.1),
            parent_offset: at_offset,
        };
        // Reading and re-encoding the copies is most of a fork's work: two threads share it
        // (each reads and builds one half, in order), then one atomic batch appends them.
        let copy = |from: usize, to: usize| -> Result<Vec<RecordInput>, LedgerError> {
            let mut out = Vec::with_capacity(to - from);
            self.for_each_step_in(run, from, to - from, |step| {
                let first = step.step_index == 0;
                let request = copy_request(&new, &step);
                out.push(
                    self.build_one(request, &now, first.then(|| origin.clone()))?
                        .1,
                );
                Ok(())
            })?;
            Ok(out)
        };
        let mid = if count >= PARALLEL_COPY_MIN {
            count / 2
        } else {
            count
        };
        let (first, second) = std::thread::scope(|scope| {
            let second = (mid < count).then(|| scope.spawn(|| copy(mid, count)));
            let first = copy(0, mid);
            let second = match second {
                Some(handle) => handle.join().unwrap_or_else(|_| {
                    Err(LedgerError::Invalid {
                        reason: "the fork's copying thread failed".to_string(),
                    })
                }),
                None => Ok(Vec::new()),
            };
            (first, second)
        });
        records.extend(first?);
        records.extend(second?);
        let receipts = match log.append_batch(records, Durability::Sync) {
            Ok(r) => r,
            Err(crate::Error::Rejected { reason }) => return Err(LedgerError::Conflict { reason }),
            Err(e) => return Err(e.into()),
        };
        Ok(ForkReceipt {
            run_id: new,
            parent_run_id: run.to_string(),
            steps_copied: count as u64,
            offset: receipts.first().map_or(0, |r| r.offset),
        })
    }
}

/// Forks of at least this many steps copy on two threads.
const PARALLEL_COPY_MIN: usize = 1024;

/// The request that copies `step` into run `new`: the parent's fields, timestamp and content
/// under the step id `<new>-<old>`. A field erased in the parent reads "[REDACTED]" in the
/// copy (what every read of the parent shows); erased metadata is no metadata.
fn copy_request(new: &str, step: &super::Step) -> StepRequest {
    let f = &step.stored.fields;
    let text = |index: u16| match step.stored.slots.get(usize::from(index)) {
        Some(super::record::FieldValue::Text(t)) => t.clone(),
        Some(super::record::FieldValue::Redacted { len, .. }) if *len > 0 => {
            lineage::REDACTED.to_string()
        }
        _ => String::new(),
    };
    let metadata = match step.stored.slots.get(usize::from(slot::METADATA)) {
        Some(super::record::FieldValue::Text(m)) if !m.is_empty() => Some(m.clone()),
        _ => None,
    };
    StepRequest {
        run_id: new.to_string(),
        step_id: Some(format!("{new}-{}", f.step_id)),
        node_id: f.node_id.clone(),
        node_kind: f.node_kind.clone(),
        input_task: text(slot::INPUT_TASK),
        output_content: text(slot::OUTPUT_CONTENT),
        verdict: f.verdict.clone(),
        blocked: f.blocked,
        block_reason: Some(text(slot::BLOCK_REASON)),
        uncertainty: f.uncertainty,
        cost_usd: f.cost_usd,
        tokens_used: f.tokens_used,
        carbon_gco2: f.carbon_gco2,
        duration_ms: f.duration_ms,
        timestamp: Some(f.timestamp.clone()),
        metadata_json: metadata,
        ..StepRequest::default()
    }
}
