//! The ledger: step records and their per-run audit chains, over the log.
//!
//! A [`Ledger`] is a handle for one tenant on a log directory. Writes go through the log's
//! sequencer, where the ledger's admission step ([`admission`]) refuses duplicate step ids and
//! stale run-head expectations and computes each step's index and entry hash. Reads go through
//! the runs view ([`runs`]), a projection of the durable records that knows where every step
//! of every run lives. `docs/audit-chain.md` is the contract for the per-run chain and the
//! export envelope; [`legacy_v1`] is the reference MeshFlow ledger's hash, for imports.

pub mod admission;
pub mod anchor;
pub mod appender;
pub mod archive;
pub mod checkpoint;
pub mod erasure;
pub mod export;
pub mod fork;
pub mod import;
pub mod legacy_v1;
pub mod offline;
pub mod query;
pub mod record;
pub mod request;
pub mod runs;
pub mod step;
pub mod time;

use crate::governance::{Event, Family, GovState};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::log::{Durability, Log, LogOptions, LogReader, Receipt, RecordInput, RecoveryReport};

pub use query::{ChainError, ChainReport, RunDiff, RunSummary, Step};
pub use request::StepRequest;

use admission::{step_key, LedgerAdmission, WriterState, DUPLICATE};
pub use checkpoint::store::LoadReport;
use record::{FieldValue, StepInput};
use runs::RunsView;
use step::{ForkOrigin, StepFields};

/// Errors of the ledger layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum LedgerError {
    /// The caller's input is invalid; nothing was written.
    Invalid {
        /// What was wrong, naming the field.
        reason: String,
    },
    /// The run (or another named thing) does not exist for this tenant.
    NotFound {
        /// What was looked for, e.g. `run 'x'`.
        what: String,
    },
    /// A write conflicts with the log's state (run head expectation, step id reused with
    /// other content); nothing was written.
    Conflict {
        /// Why.
        reason: String,
    },
    /// This handle was opened read-only.
    ReadOnly,
    /// An error of the log underneath.
    Log(Error),
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Invalid { reason } => write!(f, "invalid input: {reason}"),
            LedgerError::NotFound { what } => write!(f, "{what} not found"),
            LedgerError::Conflict { reason } => write!(f, "conflict: {reason}"),
            LedgerError::ReadOnly => write!(f, "this ledger handle is read-only"),
            LedgerError::Log(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LedgerError {}

impl From<Error> for LedgerError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput { reason } => LedgerError::Invalid { reason },
            Error::LimitExceeded { what, actual, max } => LedgerError::Invalid {
                reason: format!("{what} {actual} exceeds the limit {max}"),
            },
            other => LedgerError::Log(other),
        }
    }
}

/// What an acknowledged step append returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReceipt {
    /// The run.
    pub run_id: String,
    /// The step id (assigned by the engine when the caller sent none).
    pub step_id: String,
    /// The step's index in its run.
    pub step_index: u64,
    /// The step's log offset.
    pub offset: u64,
    /// The step's entry hash.
    pub entry_hash: [u8; 32],
    /// The step's timestamp (assigned by the engine when the caller sent none).
    pub timestamp: String,
}

struct Inner {
    log: Option<Log>,
    reader: LogReader,
    dir: PathBuf,
    view: Mutex<RunsView>,
    /// The governance views as of the runs view's durable end (readers' copy).
    governance: Mutex<GovState>,
    writer: Option<Arc<Mutex<WriterState>>>,
    load_report: LoadReport,
    /// Offset of the newest checkpoint this handle knows of.
    last_checkpoint: Mutex<u64>,
    /// Test hooks of run erasure (`Ledger::set_erasure_faults`); 0 when unset.
    fault_targets_per_record: std::sync::atomic::AtomicUsize,
    fault_stop_erasure_after: std::sync::atomic::AtomicUsize,
}

/// A writable ledger takes a checkpoint of the runs view when the view has moved this many
/// records past the last one (and when it closes).
pub const CHECKPOINT_EVERY_RECORDS: u64 = 100_000;
/// Checkpoint files kept; older ones are removed.
const CHECKPOINTS_KEPT: usize = 2;

impl Drop for Inner {
    fn drop(&mut self) {
        if self.log.is_some() {
            let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
            // Best effort: a missing checkpoint costs a longer rebuild on the next open.
            let _ = checkpoint_locked(self, &mut view);
        }
    }
}

/// Loads the runs view from its newest good checkpoint and applies the log's tail; falls back
/// to a full rebuild when the log's digest event disagrees with the checkpoint.
fn load_view(dir: &Path, reader: &LogReader) -> Result<(RunsView, LoadReport), Error> {
    let (mut view, mut report) = checkpoint::store::load(dir, reader)?;
    let start = view.next_offset;
    view.refresh(reader)?;
    if let Some(why) = view.digest_mismatch.take() {
        report.rejected.push(why);
        report.checkpoint_offset = None;
        view = RunsView::default();
        view.refresh(reader)?;
        report.tail_records = view.next_offset;
    } else {
        report.tail_records = view.next_offset - start;
    }
    Ok((view, report))
}

/// Writes a checkpoint of `view` if it moved since the last one, then appends the
/// checkpoint-digest event. Writable handles only.
fn checkpoint_locked(
    inner: &Inner,
    view: &mut RunsView,
) -> Result<Option<checkpoint::Binding>, LedgerError> {
    let Some(log) = &inner.log else {
        return Err(LedgerError::ReadOnly);
    };
    view.refresh(&inner.reader)?;
    let mut last = inner
        .last_checkpoint
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if view.data_end <= *last {
        return Ok(None);
    }
    let hash = inner
        .reader
        .get(view.next_offset - 1)?
        .map(|r| r.view().hash())
        .ok_or(LedgerError::Log(Error::Closed))?;
    // Whatever happens next, do not try again before the view moves on: a failing checkpoint
    // (a full disk, say) must not turn every read into a failed rewrite of the whole view.
    *last = view.data_end;
    let binding = checkpoint::store::write(&inner.dir, view, &hash, CHECKPOINTS_KEPT)?;
    *last = binding.offset;
    let mut gov_binding = None;
    // The governance views at the same offset (best effort: they are rebuilt from their
    // events, which the runs view indexes, when no checkpoint of them agrees).
    {
        let mut governance = inner.governance.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = inner.reader.snapshot()?;
        governance.catch_up(&inner.reader, &snapshot, &view.events, view.next_offset)?;
        // A log without governance events needs no governance checkpoint.
        if !view.events.is_empty() && governance.next_offset() == binding.offset {
            gov_binding =
                checkpoint::governance::write(&inner.dir, &governance, &hash, CHECKPOINTS_KEPT)
                    .ok();
        }
    }
    // Durable at once, so that a checkpoint whose digest event a crash lost stays the rare case.
    log.append(
        RecordInput::new(
            checkpoint::KIND_CHECKPOINT_DIGEST,
            checkpoint::SYSTEM_TENANT,
            checkpoint::digest_event_payload(&binding),
        ),
        Durability::Sync,
    )?;
    // The governance checkpoint's digest is chained the same way.
    if let Some(gov) = gov_binding {
        log.append(
            RecordInput::new(
                checkpoint::KIND_CHECKPOINT_DIGEST,
                checkpoint::SYSTEM_TENANT,
                checkpoint::digest_event_payload_for(
                    checkpoint::governance::VIEW,
                    checkpoint::governance::LOGIC_VERSION,
                    &gov,
                ),
            ),
            Durability::Sync,
        )?;
    }
    Ok(Some(binding))
}

/// The governance views from their newest checkpoint at or below `end` that agrees with the
/// log, or empty (they are then rebuilt from their events).
fn load_governance(dir: &Path, reader: &LogReader, end: u64) -> Result<GovState, LedgerError> {
    let (state, _rejected) = checkpoint::governance::load(dir, reader, end)?;
    Ok(state.unwrap_or_default())
}

/// Checks a tenant for a handle: the log's rules, and not the engine's own `_system`.
fn check_handle_tenant(tenant: &str) -> Result<(), LedgerError> {
    crate::log::check_tenant(tenant)?;
    if tenant == checkpoint::SYSTEM_TENANT {
        return Err(LedgerError::Invalid {
            reason: format!("tenant '{tenant}' is reserved for the engine"),
        });
    }
    Ok(())
}

/// A handle on the ledger of one tenant. Cheap to clone; [`Ledger::with_tenant`] gives a
/// handle for another tenant on the same log.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
    tenant: String,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("tenant", &self.tenant)
            .field("writable", &self.inner.log.is_some())
            .finish()
    }
}

impl Ledger {
    /// Opens (creating if missing) the ledger in `dir` for writing, holding the log's writer
    /// lock, as tenant `tenant`.
    pub fn open(
        dir: &Path,
        options: LogOptions,
        tenant: &str,
    ) -> Result<(Ledger, RecoveryReport), LedgerError> {
        check_handle_tenant(tenant)?;
        let (log, report) = Log::open(dir, options)?;
        Ledger::open_on(log, report, dir, tenant)
    }

    /// [`Ledger::open`] with the log on any storage (the fault-injecting one in crash tests);
    /// checkpoints and notes still live in `dir`. A checkpoint that the log does not bear out
    /// (a crash image shorter than the checkpoint) is refused and the views rebuilt.
    pub fn open_with_storage(
        storage: std::sync::Arc<dyn crate::storage::Storage>,
        dir: &Path,
        options: LogOptions,
        tenant: &str,
    ) -> Result<(Ledger, RecoveryReport), LedgerError> {
        check_handle_tenant(tenant)?;
        let (log, report) = Log::open_with_storage(storage, options)?;
        Ledger::open_on(log, report, dir, tenant)
    }

    fn open_on(
        log: Log,
        report: RecoveryReport,
        dir: &Path,
        tenant: &str,
    ) -> Result<(Ledger, RecoveryReport), LedgerError> {
        let reader = log.reader();
        let (view, load_report) = load_view(dir, &reader)?;
        let last_checkpoint = load_report.checkpoint_offset.unwrap_or(0);
        let mut governance = load_governance(dir, &reader, view.next_offset)?;
        governance.catch_up(&reader, &reader.snapshot()?, &view.events, view.next_offset)?;
        let mut writer_state = view.writer_state();
        writer_state.governance = governance.clone();
        let writer = Arc::new(Mutex::new(writer_state));
        log.set_admission(Box::new(LedgerAdmission::new(writer.clone())))?;
        let inner = Inner {
            log: Some(log),
            reader,
            dir: dir.to_path_buf(),
            view: Mutex::new(view),
            governance: Mutex::new(governance),
            writer: Some(writer),
            load_report,
            last_checkpoint: Mutex::new(last_checkpoint),
            fault_targets_per_record: Default::default(),
            fault_stop_erasure_after: Default::default(),
        };
        let ledger = Ledger {
            inner: Arc::new(inner),
            tenant: tenant.to_string(),
        };
        // Erasures a crash interrupted are finished before anything else.
        ledger.finish_erasures()?;
        ledger.erase_retired_slots()?;
        Ok((ledger, report))
    }

    /// Opens the ledger in `dir` for reading only (no lock; another process may be writing).
    /// A missing log is [`Error::NotFound`].
    pub fn open_read_only(
        dir: &Path,
        options: LogOptions,
        tenant: &str,
    ) -> Result<Ledger, LedgerError> {
        check_handle_tenant(tenant)?;
        let reader = LogReader::open(dir, options)?;
        let (view, load_report) = load_view(dir, &reader)?;
        let governance = load_governance(dir, &reader, view.next_offset)?;
        let inner = Inner {
            log: None,
            reader,
            dir: dir.to_path_buf(),
            view: Mutex::new(view),
            governance: Mutex::new(governance),
            writer: None,
            load_report,
            last_checkpoint: Mutex::new(0),
            fault_targets_per_record: Default::default(),
            fault_stop_erasure_after: Default::default(),
        };
        Ok(Ledger {
            inner: Arc::new(inner),
            tenant: tenant.to_string(),
        })
    }

    /// A handle for `tenant` on the same log.
    pub fn with_tenant(&self, tenant: &str) -> Result<Ledger, LedgerError> {
        check_handle_tenant(tenant)?;
        Ok(Ledger {
            inner: self.inner.clone(),
            tenant: tenant.to_string(),
        })
    }

    /// The handle's tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The log underneath, when the handle is writable.
    pub fn log(&self) -> Option<&Log> {
        self.inner.log.as_ref()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A reader of the log underneath.
    pub fn reader(&self) -> &LogReader {
        &self.inner.reader
    }

    fn writable(&self) -> Result<(&Log, &Arc<Mutex<WriterState>>), LedgerError> {
        match (&self.inner.log, &self.inner.writer) {
            (Some(log), Some(writer)) => Ok((log, writer)),
            _ => Err(LedgerError::ReadOnly),
        }
    }

    /// Appends one step.
    pub fn append(
        &self,
        request: StepRequest,
        durability: Durability,
    ) -> Result<StepReceipt, LedgerError> {
        let mut receipts = self.append_batch(vec![request], durability)?;
        receipts.pop().ok_or(LedgerError::Log(Error::Closed))
    }

    /// Appends steps as one atomic batch: all are written or none. An identical retry of
    /// steps already written returns their original receipts.
    pub fn append_batch(
        &self,
        requests: Vec<StepRequest>,
        durability: Durability,
    ) -> Result<Vec<StepReceipt>, LedgerError> {
        let (log, _) = self.writable()?;
        let (built, records): (Vec<Built>, Vec<RecordInput>) =
            self.build(&requests)?.into_iter().unzip();
        match log.append_batch(records, durability) {
            Ok(receipts) => Ok(built
                .into_iter()
                .zip(receipts)
                .map(|(b, r)| b.receipt(&r))
                .collect::<Result<Vec<_>, _>>()?),
            Err(Error::Rejected { reason }) if reason.starts_with(DUPLICATE) => {
                self.resolve_retry(&requests, &built)
            }
            Err(Error::Rejected { reason }) => Err(LedgerError::Conflict { reason }),
            Err(e) => Err(e.into()),
        }
    }

    /// Validates requests and builds their records, with admission conditions.
    pub(crate) fn build(
        &self,
        requests: &[StepRequest],
    ) -> Result<Vec<(Built, RecordInput)>, LedgerError> {
        if requests.is_empty() {
            return Err(LedgerError::Invalid {
                reason: "an empty batch".to_string(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for id in requests.iter().filter_map(|r| r.step_id.as_deref()) {
            if !seen.insert(id) {
                return Err(LedgerError::Invalid {
                    reason: format!("step_id '{id}' appears twice in the batch"),
                });
            }
        }
        let now = time::now_iso8601();
        let mut out = Vec::with_capacity(requests.len());
        for request in requests {
            out.push(self.build_one(request.clone(), &now, None)?);
        }
        Ok(out)
    }

    pub(crate) fn build_one(
        &self,
        request: StepRequest,
        now: &str,
        fork_origin: Option<ForkOrigin>,
    ) -> Result<(Built, RecordInput), LedgerError> {
        if let Some(tenant) = &request.tenant_id {
            if *tenant != self.tenant {
                return Err(LedgerError::Invalid {
                    reason: format!(
                        "tenant_id '{tenant}' differs from the handle's tenant '{}'",
                        self.tenant
                    ),
                });
            }
        }
        let condition = self.condition(&request)?;
        let step_id = request
            .step_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let timestamp = request.timestamp.unwrap_or_else(|| now.to_string());
        let built = Built {
            run_id: request.run_id.clone(),
            step_id: step_id.clone(),
            timestamp: timestamp.clone(),
        };
        let input = StepInput {
            fields: StepFields {
                run_id: request.run_id,
                step_id,
                node_id: request.node_id,
                node_kind: request.node_kind,
                verdict: request.verdict,
                blocked: request.blocked,
                uncertainty: request.uncertainty,
                cost_usd: request.cost_usd,
                tokens_used: request.tokens_used,
                carbon_gco2: request.carbon_gco2,
                duration_ms: request.duration_ms,
                timestamp,
                fork_origin,
            },
            input_task: request.input_task,
            output_content: request.output_content,
            block_reason: request.block_reason.unwrap_or_default(),
            metadata_json: request.metadata_json.unwrap_or_else(|| "{}".to_string()),
        };
        let mut record = input.into_record(&self.tenant)?;
        record.condition = condition;
        Ok((built, record))
    }

    /// The run length a request expects, from `expected_step_index` or `prev_hash`.
    fn condition(&self, request: &StepRequest) -> Result<Option<u64>, LedgerError> {
        let from_prev = match &request.prev_hash {
            None => None,
            Some(prev) if prev.is_empty() => Some(0),
            Some(prev) => {
                let wanted = export::parse_hash(prev).ok_or_else(|| LedgerError::Invalid {
                    reason: "prev_hash: must be \"\" or 64 hex digits".to_string(),
                })?;
                let (_, writer) = self.writable()?;
                let state = writer.lock().unwrap_or_else(|p| p.into_inner());
                // A step_id already written: this is a retry (or a conflict), which admission
                // and `resolve_retry` decide; the run's head has moved past it either way.
                let retried = request.step_id.as_ref().is_some_and(|id| {
                    state
                        .steps
                        .contains_key(&step_key(self.tenant.as_bytes(), id.as_bytes()))
                });
                let key = admission::run_key(self.tenant.as_bytes(), request.run_id.as_bytes());
                match state.runs.get(&key) {
                    _ if retried => None,
                    Some(head) if head.count > 0 && head.head == wanted => Some(head.count),
                    Some(head) => {
                        return Err(LedgerError::Conflict {
                            reason: format!(
                            "prev_hash does not match the head of run '{}' ({} step(s), head {})",
                            request.run_id,
                            head.count,
                            export::short_hex(&head.head)
                        ),
                        })
                    }
                    None => {
                        return Err(LedgerError::Conflict {
                            reason: format!(
                                "prev_hash names a step but run '{}' has no steps",
                                request.run_id
                            ),
                        })
                    }
                }
            }
        };
        match (from_prev, request.expected_step_index) {
            (Some(a), Some(b)) if a != b => Err(LedgerError::Conflict {
                reason: format!(
                    "prev_hash expects {a} step(s) in run '{}' but expected_step_index is {b}",
                    request.run_id
                ),
            }),
            (a, b) => Ok(a.or(b)),
        }
    }

    /// A batch was refused because a step id exists: it is an identical retry (every step
    /// already written with the same content) or a conflict.
    pub(crate) fn resolve_retry(
        &self,
        requests: &[StepRequest],
        built: &[Built],
    ) -> Result<Vec<StepReceipt>, LedgerError> {
        let (log, writer) = self.writable()?;
        let mut offsets = Vec::with_capacity(built.len());
        {
            let state = writer.lock().unwrap_or_else(|p| p.into_inner());
            for b in built {
                let key = step_key(self.tenant.as_bytes(), b.step_id.as_bytes());
                match state.steps.get(&key) {
                    Some(offset) => offsets.push(*offset),
                    None => {
                        return Err(LedgerError::Conflict {
                            reason: format!(
                                "the batch repeats existing step ids but step '{}' is new; \
                                 send retries and new steps in separate batches",
                                b.step_id
                            ),
                        })
                    }
                }
            }
        }
        // The originals may still be in flight: make them durable, then read them.
        log.sync()?;
        let mut receipts = Vec::with_capacity(built.len());
        for ((request, b), offset) in requests.iter().zip(built).zip(offsets) {
            let original =
                self.step_at(&request.run_id, offset)?
                    .ok_or_else(|| LedgerError::Conflict {
                        reason: format!("step_id '{}' already exists in another run", b.step_id),
                    })?;
            if let Some(field) = retry_difference(request, &original) {
                let erased = original.redacted().contains(&field);
                return Err(LedgerError::Conflict {
                    reason: if erased {
                        format!(
                            "step_id '{}' already exists and its {field} was erased: a retry \
                             cannot be confirmed",
                            b.step_id
                        )
                    } else {
                        format!(
                            "step_id '{}' already exists with a different {field}",
                            b.step_id
                        )
                    },
                });
            }
            receipts.push(StepReceipt {
                run_id: original.stored.fields.run_id.clone(),
                step_id: original.stored.fields.step_id.clone(),
                step_index: original.step_index,
                offset,
                entry_hash: original.entry_hash,
                timestamp: original.stored.fields.timestamp.clone(),
            });
        }
        Ok(receipts)
    }

    /// Makes every appended record durable.
    pub fn sync(&self) -> Result<(), LedgerError> {
        let (log, _) = self.writable()?;
        log.sync().map_err(LedgerError::from)
    }

    /// Applies durable records the view has not seen yet (a writable handle also takes a
    /// checkpoint when the view has moved [`CHECKPOINT_EVERY_RECORDS`] past the last one).
    pub(crate) fn refresh(&self) -> Result<std::sync::MutexGuard<'_, RunsView>, LedgerError> {
        let mut view = self.inner.view.lock().unwrap_or_else(|p| p.into_inner());
        view.refresh(&self.inner.reader)?;
        if self.inner.log.is_some() {
            let last = *self
                .inner
                .last_checkpoint
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if view.next_offset >= last + CHECKPOINT_EVERY_RECORDS {
                // Best effort: reads must not fail because a checkpoint could not be written;
                // the view is rebuilt from the log if it is missing.
                let _ = checkpoint_locked(&self.inner, &mut view);
            }
        }
        Ok(view)
    }

    /// Runs `f` on the governance views as of the log's durable end.
    pub fn with_governance<T>(&self, f: impl FnOnce(&GovState) -> T) -> Result<T, LedgerError> {
        let view = self.refresh()?;
        let mut governance = self
            .inner
            .governance
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let snapshot = self.inner.reader.snapshot()?;
        governance.catch_up(
            &self.inner.reader,
            &snapshot,
            &view.events,
            view.next_offset,
        )?;
        drop(view);
        Ok(f(&governance))
    }

    /// The governance views as they were just before record `offset` ("the policy rules as
    /// of offset N"): rebuilt from the events below it. An offset past the durable end is
    /// [`LedgerError::Invalid`].
    pub fn governance_at(&self, offset: u64) -> Result<GovState, LedgerError> {
        let view = self.refresh()?;
        if offset > view.next_offset {
            return Err(LedgerError::Invalid {
                reason: format!(
                    "offset {offset} is past the log's durable end ({})",
                    view.next_offset
                ),
            });
        }
        let mut state = GovState::default();
        let snapshot = self.inner.reader.snapshot()?;
        state.catch_up(&self.inner.reader, &snapshot, &view.events, offset)?;
        Ok(state)
    }

    /// The governance views as they were at `timestamp_ns` (Unix ns): before the first record
    /// written at or after it (every durable record when there is none).
    pub fn governance_at_time(&self, timestamp_ns: u64) -> Result<GovState, LedgerError> {
        let end = match self.inner.reader.offset_at_time(timestamp_ns)? {
            Some(offset) => offset,
            None => self.refresh()?.next_offset,
        };
        self.governance_at(end)
    }

    /// Appends one governance event, durable on return, and returns its offset. Tenant
    /// registry events go to the `_system` tenant; others to this handle's tenant. The
    /// sequencer checks it against the views first: a refusal is [`LedgerError::Conflict`]
    /// and writes nothing.
    pub fn append_event(&self, event: &Event) -> Result<u64, LedgerError> {
        self.append_event_with_slots(event, Vec::new())
    }

    /// [`Ledger::append_event`] with erasable slots (a vault secret's ciphertext is slot 0).
    /// After a vault event, the ciphertexts it retired (a deleted secret, a rotated-out
    /// version) are erased before this returns.
    pub fn append_event_with_slots(
        &self,
        event: &Event,
        slots: Vec<Vec<u8>>,
    ) -> Result<u64, LedgerError> {
        let log = self.inner.log.as_ref().ok_or(LedgerError::ReadOnly)?;
        let tenant = match event.family {
            Family::Tenant => crate::governance::SYSTEM_TENANT,
            _ => self.tenant.as_str(),
        };
        let mut record = RecordInput::new(event.family.kind(), tenant, event.encode());
        record.slots = slots;
        let offset = match log.append(record, Durability::Sync) {
            Ok(receipt) => receipt.offset,
            Err(Error::Rejected { reason }) => return Err(LedgerError::Conflict { reason }),
            Err(e) => return Err(e.into()),
        };
        if matches!(event.family, Family::Vault | Family::Lineage) {
            self.erase_retired_slots()?;
        }
        Ok(offset)
    }

    /// Erases every retired governance slot still in the log: vault ciphertexts of deleted
    /// secrets and rotated-out versions, and the names and metadata of deleted lineage
    /// subjects. Returns the number of slots erased. Runs after each vault or lineage event
    /// and when a writable ledger opens, so an erasure interrupted by a crash is redone.
    pub fn erase_retired_slots(&self) -> Result<usize, LedgerError> {
        let Some(log) = self.inner.log.as_ref() else {
            return Ok(0);
        };
        let retired: Vec<(String, Vec<(u64, u16)>)> = self.with_governance(|g| {
            g.tenant_ids()
                .map(|t| {
                    let views = g.of(t);
                    let mut slots: Vec<(u64, u16)> =
                        views.vault.retired().iter().map(|o| (*o, 0)).collect();
                    slots.extend_from_slice(views.lineage.retired());
                    (t.to_string(), slots)
                })
                .filter(|(_, r)| !r.is_empty())
                .collect()
        })?;
        let mut erased = 0;
        for (tenant, slots) in retired {
            let mut targets = Vec::new();
            for (offset, slot) in slots {
                if self.read_event_slot(offset, usize::from(slot))?.is_some() {
                    targets.push(crate::format::erasure::SlotRef {
                        offset,
                        slot_index: slot,
                    });
                }
            }
            if targets.is_empty() {
                continue;
            }
            erased += targets.len();
            // Governance checkpoints may hold what is erased now (a subject's name).
            checkpoint::governance::remove_all(&self.inner.dir);
            log.erase(
                &tenant,
                targets,
                br#"{"reason":"governance: a deleted secret's ciphertext or a deleted subject's data"}"#
                    .to_vec(),
            )?;
        }
        Ok(erased)
    }

    /// The content of slot `slot` of the governance record at `offset`; `None` once erased, or
    /// when the record has no such slot.
    pub fn read_event_slot(
        &self,
        offset: u64,
        slot: usize,
    ) -> Result<Option<Vec<u8>>, LedgerError> {
        let view = self.refresh()?;
        let at = view
            .events
            .binary_search_by_key(&offset, |e| e.offset)
            .map_err(|_| LedgerError::NotFound {
                what: format!("governance record at offset {offset}"),
            })?;
        let loc = view.events.get(at).copied().ok_or(LedgerError::NotFound {
            what: format!("governance record at offset {offset}"),
        })?;
        drop(view);
        let snapshot = self.inner.reader.snapshot()?;
        let record = self.inner.reader.read_at_len(
            &snapshot,
            loc.segment_base,
            u64::from(loc.position),
            loc.offset,
            Some(loc.frame_len),
        )?;
        let damaged = |why: String| {
            LedgerError::Log(Error::corrupt(
                crate::format::segment_header::segment_file_name(loc.segment_base),
                u64::from(loc.position),
                Some(offset),
                why,
            ))
        };
        if slot >= record.view().slot_count() {
            // Nodes a fork or an archive added carry no slot: nothing to read or erase.
            return Ok(None);
        }
        match record.view().slot(slot) {
            Ok(crate::format::slot::SlotView::Live { content, .. }) => Ok(Some(content.to_vec())),
            Ok(crate::format::slot::SlotView::Erased { .. }) => Ok(None),
            Err(e) => Err(damaged(format!("slot {slot}: {e:?}"))),
        }
    }

    /// Takes a checkpoint of the runs view now (if it moved since the last one) and appends
    /// its checkpoint-digest event. Writable handles only.
    pub fn checkpoint(&self) -> Result<Option<checkpoint::Binding>, LedgerError> {
        let mut view = self.inner.view.lock().unwrap_or_else(|p| p.into_inner());
        checkpoint_locked(&self.inner, &mut view)
    }

    /// How the runs view was loaded when this ledger opened: from which checkpoint, which
    /// checkpoints were refused and why, and how many records were applied after it.
    pub fn load_report(&self) -> &LoadReport {
        &self.inner.load_report
    }
}

/// What the receipt of a step built from a request needs (its record goes to the log).
#[derive(Debug, Clone)]
pub(crate) struct Built {
    run_id: String,
    step_id: String,
    timestamp: String,
}

impl Built {
    /// The receipt, from the log's receipt and what admission computed (which the ledger's
    /// admission always supplies for a step; its absence is reported, never papered over).
    pub(crate) fn receipt(self, r: &Receipt) -> Result<StepReceipt, LedgerError> {
        let admitted = r.admitted.ok_or_else(|| {
            LedgerError::Log(Error::Poisoned {
                reason: format!(
                    "the step at offset {} was written but admission reported no index for it",
                    r.offset
                ),
            })
        })?;
        Ok(StepReceipt {
            run_id: self.run_id,
            step_id: self.step_id,
            step_index: admitted.index,
            offset: r.offset,
            entry_hash: admitted.hash,
            timestamp: self.timestamp,
        })
    }
}

/// The first field in which a retried request differs from the step written before, comparing
/// only what the caller sent (an engine-assigned timestamp does not make a retry differ).
fn retry_difference(request: &StepRequest, original: &Step) -> Option<&'static str> {
    let f = &original.stored.fields;
    let same_float = |a: f64, b: f64| a == b;
    fn text(v: &FieldValue) -> Option<&str> {
        match v {
            FieldValue::Text(t) => Some(t.as_str()),
            FieldValue::Redacted { .. } => None,
        }
    }
    let [input, output, reason, metadata] = &original.stored.slots;
    let checks: [(&'static str, bool); 15] = [
        ("run_id", request.run_id == f.run_id),
        ("node_id", request.node_id == f.node_id),
        ("node_kind", request.node_kind == f.node_kind),
        ("verdict", request.verdict == f.verdict),
        ("blocked", request.blocked == f.blocked),
        (
            "uncertainty",
            same_float(request.uncertainty, f.uncertainty),
        ),
        ("cost_usd", same_float(request.cost_usd, f.cost_usd)),
        ("tokens_used", request.tokens_used == f.tokens_used),
        (
            "carbon_gco2",
            same_float(request.carbon_gco2, f.carbon_gco2),
        ),
        (
            "duration_ms",
            same_float(request.duration_ms, f.duration_ms),
        ),
        (
            "timestamp",
            request.timestamp.as_ref().is_none_or(|t| *t == f.timestamp),
        ),
        (
            "input_task",
            text(input) == Some(request.input_task.as_str()),
        ),
        (
            "output_content",
            text(output) == Some(request.output_content.as_str()),
        ),
        (
            "block_reason",
            text(reason) == Some(request.block_reason.as_deref().unwrap_or("")),
        ),
        (
            "metadata",
            text(metadata) == Some(request.metadata_json.as_deref().unwrap_or("{}")),
        ),
    ];
    checks.iter().find(|(_, same)| !same).map(|(name, _)| *name)
}
