//! Erasure of runs (SPEC §5.4): `anonymize_run` erases every slot of a run's steps (and of its
//! forks', on request) in place; `delete_run` does the same and marks the run deleted, so that
//! it is "not found" everywhere afterwards. Both are one or more of the log's erasure records
//! (`docs/log-format.md` §7), durable before any byte is overwritten and redone on open if a
//! crash interrupts them; the record's note is the audit entry (who, when, why, which runs).
//! Every chain, per run and global, still verifies: erasure changes slot bytes only.

use serde_json::{json, Value};

use super::{Ledger, LedgerError};
use crate::format::erasure::SlotRef;
use crate::governance::lineage;

/// Slots named by one erasure record at most: 16 bytes each, so the payload stays under the
/// log's default 16 MiB limit. A run of up to ~250,000 steps is erased by one record, which a
/// crash leaves either complete or redone on open; a larger one takes several, and a crash
/// between two of them leaves the later ones to a repeated command (idempotent).
const TARGETS_PER_RECORD: usize = 1_000_000;

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReceipt {
    /// The runs erased.
    pub runs: Vec<String>,
    /// Slots erased now (slots already erased are not counted).
    pub slots_erased: u64,
    /// Offsets of the erasure records.
    pub offsets: Vec<u64>,
}

/// One erasure as `meshflow audit erasures` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ErasureEntry {
    /// Offset of the erasure record.
    pub offset: u64,
    /// Slots it named.
    pub slots: u64,
    /// Its note: `{op, runs, by, reason, at}` for run erasures, or whatever the writer noted.
    pub note: Value,
}

/// The runs a delete-run note names (`None` for any other note).
pub fn deleted_runs(note: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(note).ok()?;
    if v.get("op")?.as_str()? != "delete-run" {
        return None;
    }
    v.get("runs")?
        .as_array()?
        .iter()
        .map(|r| r.as_str().map(str::to_string))
        .collect()
}

impl Ledger {
    /// Erases every slot of `run`'s steps in place (and of its forks' and their forks', with
    /// `with_forks`): fields read `[REDACTED]`, exports carry their commitments, every chain
    /// verifies. `by` and `reason` are recorded with the erasure.
    pub fn anonymize_run(
        &self,
        run: &str,
        with_forks: bool,
        by: &str,
        reason: &str,
    ) -> Result<ErasureReceipt, LedgerError> {
        self.erase_runs("anonymize", run, with_forks, by, reason)
    }

    /// Erases `run` as `anonymize_run` does and deletes it: afterwards it is "not found" in
    /// every read, and a step for it is refused.
    pub fn delete_run(
        &self,
        run: &str,
        by: &str,
        reason: &str,
    ) -> Result<ErasureReceipt, LedgerError> {
        self.erase_runs("delete-run", run, false, by, reason)
    }

    /// Purges this handle's tenant: deletes every run (as `delete_run`), deletes every lineage
    /// node (erasing names and metadata) and every vault secret (erasing ciphertexts), and
    /// marks the tenant deleted in the registry when it is registered there. Other tenants are
    /// untouched.
    pub fn purge_tenant(&self, by: &str, reason: &str) -> Result<ErasureReceipt, LedgerError> {
        self.inner.log.as_ref().ok_or(LedgerError::ReadOnly)?;
        let runs: Vec<String> = self
            .list_runs()?
            .into_iter()
            .filter(|r| self.run_len(r).is_ok_and(|(_, n)| n > 0))
            .collect();
        let mut receipt = if runs.is_empty() {
            ErasureReceipt {
                runs: Vec::new(),
                slots_erased: 0,
                offsets: Vec::new(),
            }
        } else {
            self.erase_list("delete-run", runs, by, reason)?
        };
        let now = crate::governance::now_secs();
        let (nodes, secrets, registered) = self.with_governance(|g| {
            let views = g.of(&self.tenant);
            let nodes: Vec<String> = views
                .lineage
                .nodes()
                .iter()
                .map(|n| n.node_id.clone())
                .collect();
            let secrets: Vec<String> = views
                .vault
                .list("")
                .iter()
                .map(|s| s.name.clone())
                .collect();
            let registered = g
                .tenants()
                .get(&self.tenant)
                .is_some_and(|t| t.tenant_id == self.tenant && t.status != "deleted");
            (nodes, secrets, registered)
        })?;
        if !nodes.is_empty() {
            let (event, slots) = lineage::events::delete_subject("tenant purge", &nodes, now);
            receipt
                .offsets
                .push(self.append_event_with_slots(&event, slots)?);
        }
        for name in secrets {
            let event = crate::governance::vault::events::delete(
                &name,
                by,
                &crate::governance::new_id(),
                now,
            );
            receipt.offsets.push(self.append_event(&event)?);
        }
        if registered {
            let event = crate::governance::tenant::events::status(&self.tenant, "deleted")
                .map_err(|reason| LedgerError::Invalid { reason })?;
            receipt.offsets.push(self.append_event(&event)?);
        }
        Ok(receipt)
    }

    fn erase_runs(
        &self,
        op: &str,
        run: &str,
        with_forks: bool,
        by: &str,
        reason: &str,
    ) -> Result<ErasureReceipt, LedgerError> {
        self.inner.log.as_ref().ok_or(LedgerError::ReadOnly)?;
        self.run_len(run)?;
        let mut runs = vec![run.to_string()];
        if with_forks {
            let forks: Vec<String> = self.with_governance(|g| {
                g.of(&self.tenant)
                    .lineage
                    .downstream(&lineage::run_node(run))
                    .iter()
                    .filter(|n| n.kind == "run")
                    .map(|n| n.run_id.clone())
                    .collect()
            })?;
            for f in forks {
                if self.run_len(&f).is_ok() && !runs.contains(&f) {
                    runs.push(f);
                }
            }
        }
        self.erase_list(op, runs, by, reason)
    }

    /// Erases every slot of `runs` with one note (several records when there are many slots).
    fn erase_list(
        &self,
        op: &str,
        runs: Vec<String>,
        by: &str,
        reason: &str,
    ) -> Result<ErasureReceipt, LedgerError> {
        let log = self.inner.log.as_ref().ok_or(LedgerError::ReadOnly)?;
        let run = runs.first().cloned().unwrap_or_default();
        let mut targets = Vec::new();
        let mut live = 0u64;
        for r in &runs {
            for step in self.get_run(r)? {
                for (i, value) in step.stored.slots.iter().enumerate() {
                    if matches!(value, super::record::FieldValue::Text(_)) {
                        live += 1;
                    }
                    targets.push(SlotRef {
                        offset: step.stored.offset,
                        slot_index: u16::try_from(i).unwrap_or(u16::MAX),
                    });
                }
            }
        }
        let note = json!({
            "op": op, "runs": runs, "by": by, "reason": reason,
            "at": super::time::now_iso8601(),
        })
        .to_string()
        .into_bytes();
        let mut offsets = Vec::new();
        // The log's erasure record names at least one slot: a run without steps (an empty
        // fork) cannot be erased or deleted this way.
        if targets.is_empty() {
            return Err(LedgerError::Invalid {
                reason: format!("run '{run}' has no step: there is nothing to erase"),
            });
        }
        for chunk in targets.chunks(TARGETS_PER_RECORD) {
            let receipt = log.erase(&self.tenant, chunk.to_vec(), note.clone())?;
            offsets.push(receipt.offset);
        }
        if op == "delete-run" {
            if let Some(writer) = &self.inner.writer {
                let mut state = writer.lock().unwrap_or_else(|p| p.into_inner());
                for r in &runs {
                    state.deleted.insert(super::admission::run_key(
                        self.tenant.as_bytes(),
                        r.as_bytes(),
                    ));
                }
            }
        }
        Ok(ErasureReceipt {
            runs,
            slots_erased: live,
            offsets,
        })
    }

    /// The tenant's erasure records, oldest first.
    pub fn erasures(&self) -> Result<Vec<ErasureEntry>, LedgerError> {
        let reader = &self.inner.reader;
        let snapshot = reader.snapshot()?;
        let mut out = Vec::new();
        for record in reader.scan_snapshot(snapshot, 0)? {
            let record = record?;
            let view = record.view();
            if view.kind() != crate::format::erasure::KIND_ERASE
                || view.tenant() != self.tenant.as_bytes()
            {
                continue;
            }
            if let Some((targets, note)) = crate::format::erasure::decode(view.payload()) {
                out.push(ErasureEntry {
                    offset: view.offset(),
                    slots: targets.len() as u64,
                    note: serde_json::from_slice(note).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(note).into_owned())
                    }),
                });
            }
        }
        Ok(out)
    }
}
