//! The ledger's admission step, run on the log's sequencer thread in offset order: it knows
//! every run's head and every step id written so far (including records not yet durable), so
//! it refuses a duplicate step id or a stale run-head expectation before an offset is used, and
//! it computes each accepted step's index and entry hash.
//!
//! This is writer-side state, kept apart from the runs view: admission runs ahead of
//! durability, while the view applies durable records only. Both start from the same state
//! when the ledger opens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::log::{Admission, AdmitDecision, Admitted, Candidate};

use super::step::{self, KIND_STEP};
use crate::governance::{Event, Family};

/// Prefix of the rejection reason for a step id already in the log; the ledger then checks
/// whether the batch is an identical retry.
pub(crate) const DUPLICATE: &str = "duplicate step_id";

/// A governance event admitted in the batch being checked: offset, tenant, event, slots.
type StagedEvent = (u64, String, Event, Vec<Option<Vec<u8>>>);

/// A run's head: how many steps it has and its last entry hash (zeros when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunHead {
    /// Steps in the run.
    pub count: u64,
    /// Entry hash of the last step.
    pub head: [u8; 32],
}

/// A 16-byte key naming a step id within a tenant.
pub type StepKey = [u8; 16];

/// The key of `step_id` in `tenant` (SHA-256, truncated: collisions are out of reach).
pub fn step_key(tenant: &[u8], step_id: &[u8]) -> StepKey {
    let mut h = Sha256::new();
    h.update(b"meshflow/v1/step-key\0");
    h.update([u8::try_from(tenant.len()).unwrap_or(u8::MAX)]);
    h.update(tenant);
    h.update(step_id);
    let digest: [u8; 32] = h.finalize().into();
    let mut key = [0u8; 16];
    key.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
    key
}

/// The key of a run: its tenant, a zero byte, its id.
pub fn run_key(tenant: &[u8], run_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + 1 + run_id.len());
    key.extend_from_slice(tenant);
    key.push(0);
    key.extend_from_slice(run_id);
    key
}

/// Run heads and step ids as the sequencer has accepted them.
#[derive(Debug, Default)]
pub struct WriterState {
    /// Head of every run, by [`run_key`].
    pub runs: HashMap<Vec<u8>, RunHead>,
    /// Offset of every step, by [`step_key`].
    pub steps: HashMap<StepKey, u64, StepKeyHasher>,
    /// Deleted runs, by [`run_key`]: a step for one is refused.
    pub deleted: std::collections::HashSet<Vec<u8>>,
    /// Every governance view, as of the last admitted record: new governance events are
    /// checked against it (unique names, existing rules, tenant status).
    pub governance: crate::governance::GovState,
}

/// Hashes a [`StepKey`] by taking its first 8 bytes: the key is already a truncated SHA-256,
/// uniformly distributed, so hashing it again (SipHash) would only cost time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepKeyHasher;

impl std::hash::BuildHasher for StepKeyHasher {
    type Hasher = KeyPrefixHasher;
    fn build_hasher(&self) -> KeyPrefixHasher {
        KeyPrefixHasher(0)
    }
}

/// The hasher of [`StepKeyHasher`].
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyPrefixHasher(u64);

impl std::hash::Hasher for KeyPrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A [u8; 16] hashes as its bytes (arrays write no length prefix); fold in whatever
        // arrives, 8 bytes at a time.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}

/// The [`Admission`] the ledger installs on its log.
#[derive(Debug)]
pub(crate) struct LedgerAdmission {
    pub(crate) state: Arc<Mutex<WriterState>>,
    /// Scratch space reused from batch to batch (see `admit`).
    arena: Vec<u8>,
    pending: Vec<Pending>,
    /// The step keys of a large batch, so that a duplicate within it is found in O(1).
    pending_keys: std::collections::HashSet<StepKey, StepKeyHasher>,
}

/// Past this many steps in a batch, duplicates within it are looked up in a set.
const PENDING_SCAN_MAX: usize = 32;

impl LedgerAdmission {
    pub(crate) fn new(state: Arc<Mutex<WriterState>>) -> LedgerAdmission {
        LedgerAdmission {
            state,
            arena: Vec::new(),
            pending: Vec::new(),
            pending_keys: std::collections::HashSet::with_hasher(StepKeyHasher),
        }
    }
}

/// One step of a batch, checked but not yet applied.
#[derive(Debug)]
struct Pending {
    /// The run's key, as a range of the batch's key arena.
    run: std::ops::Range<usize>,
    key: StepKey,
    head: RunHead,
    offset: u64,
}

impl Admission for LedgerAdmission {
    fn admit(&mut self, first_offset: u64, batch: &[Candidate<'_>]) -> AdmitDecision {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Run keys of this batch, back to back: a run already known costs no allocation.
        let arena = &mut self.arena;
        let pending = &mut self.pending;
        let pending_keys = &mut self.pending_keys;
        arena.clear();
        pending.clear();
        pending_keys.clear();
        let mut admitted = Vec::with_capacity(batch.len());
        // At most one governance event a batch, checked against the state before the batch.
        let mut governance: Option<StagedEvent> = None;
        for (i, candidate) in batch.iter().enumerate() {
            let offset = first_offset + i as u64;
            let frame = &candidate.frame;
            if let Some(family) = Family::of_kind(frame.kind()) {
                if governance.is_some() {
                    return AdmitDecision::Reject(
                        "a batch carries at most one governance event".to_string(),
                    );
                }
                let event = match Event::decode(family, frame.payload()) {
                    Ok(e) => e,
                    Err(why) => {
                        return AdmitDecision::Reject(format!(
                            "an invalid {} event: {why}",
                            family.name()
                        ))
                    }
                };
                let tenant = String::from_utf8_lossy(frame.tenant()).into_owned();
                let slots = match crate::governance::slot_contents(frame) {
                    Ok(s) => s,
                    Err(why) => return AdmitDecision::Reject(why),
                };
                if let Err(why) = state.governance.check(&tenant, &event, &slots) {
                    return AdmitDecision::Reject(why);
                }
                // A fork's run id must not be a run already.
                if let Some(run) = crate::governance::lineage::forked_run(&event) {
                    if state
                        .runs
                        .contains_key(&run_key(tenant.as_bytes(), run.as_bytes()))
                    {
                        return AdmitDecision::Reject(format!("run '{run}' exists"));
                    }
                }
                governance = Some((offset, tenant, event, slots));
                admitted.push(Admitted {
                    index: 0,
                    hash: [0; 32],
                });
                continue;
            }
            if frame.kind() != KIND_STEP {
                admitted.push(Admitted {
                    index: 0,
                    hash: [0; 32],
                });
                continue;
            }
            let Some((run_id, step_id)) = step::peek_ids(frame.payload()) else {
                return AdmitDecision::Reject("malformed step payload".to_string());
            };
            let tenant = frame.tenant();
            let key = step_key(tenant, step_id.as_bytes());
            let in_batch = if pending.len() < PENDING_SCAN_MAX {
                pending.iter().any(|p| p.key == key)
            } else {
                if pending_keys.is_empty() {
                    pending_keys.extend(pending.iter().map(|p| p.key));
                }
                !pending_keys.insert(key)
            };
            if state.steps.contains_key(&key) || in_batch {
                return AdmitDecision::Reject(format!("{DUPLICATE} '{step_id}'"));
            }
            let start = arena.len();
            arena.extend_from_slice(tenant);
            arena.push(0);
            arena.extend_from_slice(run_id.as_bytes());
            let run = start..arena.len();
            let this = arena.get(run.clone()).unwrap_or(&[]);
            if !state.deleted.is_empty() && state.deleted.contains(this) {
                return AdmitDecision::Reject(format!("run '{run_id}' was deleted"));
            }
            let before = pending
                .iter()
                .rev()
                .find(|p| arena.get(p.run.clone()) == Some(this))
                .map(|p| p.head)
                .or_else(|| state.runs.get(this).copied())
                .unwrap_or_default();
            if let Some(expected) = candidate.condition {
                if expected != before.count {
                    return AdmitDecision::Reject(format!(
                        "run '{run_id}' has {} step(s), the step expected {expected}",
                        before.count
                    ));
                }
            }
            let hash = step::entry_hash(
                &before.head,
                before.count,
                offset,
                tenant,
                &candidate.body_digest,
            );
            admitted.push(Admitted {
                index: before.count,
                hash,
            });
            pending.push(Pending {
                run,
                key,
                head: RunHead {
                    count: before.count + 1,
                    head: hash,
                },
                offset,
            });
        }
        if let Some((offset, tenant, event, slots)) = governance {
            // Checked above against the same state: applying cannot be refused.
            let _ = state.governance.apply(&tenant, &event, &slots, offset);
        }
        for p in pending.iter() {
            state.steps.insert(p.key, p.offset);
            let run = arena.get(p.run.clone()).unwrap_or(&[]);
            match state.runs.get_mut(run) {
                Some(head) => *head = p.head,
                None => {
                    state.runs.insert(run.to_vec(), p.head);
                }
            }
        }
        AdmitDecision::Accept(admitted)
    }
}
