//! Erasure of runs (SPEC §5.4): `anonymize_run` erases every slot of a run's steps (and of its
//! forks', on request) in place; `delete_run` does the same and marks the run deleted, so that
//! it is "not found" everywhere afterwards. Both are one or more of the log's erasure records
//! (`docs/log-format.md` §7), durable before any byte is overwritten and redone on open if a
//! crash interrupts them; the record's note is the audit entry (who, when, why, which runs).
//! Every chain, per run and global, still verifies: erasure changes slot bytes only.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::{Ledger, LedgerError};
use crate::format::erasure::SlotRef;
use crate::governance::lineage;

/// Slots named by one erasure record at most: 16 bytes each, so the payload stays under the
/// log's default 16 MiB limit. A run of up to ~250,000 steps is erased by one record; a larger
/// one by a series of records whose notes carry `series`, `part` and `parts`. A crash between
/// two parts leaves the series unfinished in the runs view, and the next writable open finishes
/// it ([`Ledger::finish_erasures`]) before anything else is written.
pub const TARGETS_PER_RECORD: usize = 1_000_000;

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReceipt {
    /// The runs erased.
    pub runs: Vec<String>,
    /// Slots erased now (slots already erased are not counted).
    pub slots_erased: u64,
    /// Offsets of the erasure records.
    pub offsets: Vec<u64>,
    /// URIs of the runs' known archives: files outside the data directory that the erasure
    /// does not reach (the operator must).
    pub archives: Vec<String>,
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

/// Sets `key` in a note (an object; anything else is left as it is).
fn set(note: &mut Value, key: &str, value: Value) {
    if let Some(map) = note.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

/// The series id, part number and part count of a run-erasure note (`None` for a note of one
/// record, or any other note).
pub fn series_of(note: &[u8]) -> Option<(String, u32, u32)> {
    let v: Value = serde_json::from_slice(note).ok()?;
    let series = v.get("series")?.as_str()?.to_string();
    let part = u32::try_from(v.get("part")?.as_u64()?).ok()?;
    let parts = u32::try_from(v.get("parts")?.as_u64()?).ok()?;
    (parts > 1).then_some((series, part, parts))
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
        let runs: Vec<String> = self.list_runs()?;
        let mut receipt = if runs.is_empty() {
            ErasureReceipt {
                runs: Vec::new(),
                slots_erased: 0,
                offsets: Vec::new(),
                archives: Vec::new(),
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

    /// Erases every slot of `runs` with one note: one erasure record, or a series of them
    /// when there are more than [`TARGETS_PER_RECORD`] slots. The note lists the runs' known
    /// archives (SPEC §5.4: erasure does not reach them; the operator must).
    fn erase_list(
        &self,
        op: &str,
        runs: Vec<String>,
        by: &str,
        reason: &str,
    ) -> Result<ErasureReceipt, LedgerError> {
        self.inner.log.as_ref().ok_or(LedgerError::ReadOnly)?;
        let (targets, live) = self.slots_of(&runs, u64::MAX)?;
        let targets: Vec<SlotRef> = targets.into_iter().map(|(t, _)| t).collect();
        let archives = self.archives_of(&runs)?;
        let per_record = self.erasure_targets_per_record();
        let parts = targets.len().div_ceil(per_record).max(1);
        let mut note = json!({
            "op": op, "runs": runs, "by": by, "reason": reason,
            "at": super::time::now_iso8601(), "archives": archives,
        });
        if parts > 1 {
            set(
                &mut note,
                "series",
                Value::String(crate::governance::new_id()),
            );
            set(&mut note, "parts", json!(parts));
        }
        let chunks: Vec<Vec<SlotRef>> = if targets.is_empty() {
            vec![Vec::new()]
        } else {
            targets
                .chunks(per_record)
                .map(<[SlotRef]>::to_vec)
                .collect()
        };
        let mut offsets = Vec::with_capacity(parts);
        for (i, chunk) in chunks.into_iter().enumerate() {
            let stop = self.inner.fault_stop_erasure_after.load(Ordering::Relaxed);
            if stop > 0 && i == stop {
                return Err(LedgerError::Invalid {
                    reason: format!("test fault: the erasure stopped after part {stop}"),
                });
            }
            if parts > 1 {
                set(&mut note, "part", json!(i + 1));
            }
            offsets.push(self.erase_record(chunk, &note)?);
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
            archives: archives
                .iter()
                .filter_map(|a| a["uri"].as_str().map(str::to_string))
                .collect(),
        })
    }

    fn erase_record(&self, targets: Vec<SlotRef>, note: &Value) -> Result<u64, LedgerError> {
        let log = self.inner.log.as_ref().ok_or(LedgerError::ReadOnly)?;
        let bytes = note.to_string().into_bytes();
        Ok(log.erase(&self.tenant, targets, bytes)?.offset)
    }

    /// Every slot of `runs`' steps below offset `below` (deleted runs included), each with
    /// whether it is still live, and how many are.
    fn slots_of(
        &self,
        runs: &[String],
        below: u64,
    ) -> Result<(Vec<(SlotRef, bool)>, u64), LedgerError> {
        let locs: Vec<super::runs::StepLoc> = {
            let view = self.refresh()?;
            runs.iter()
                .filter_map(|r| {
                    view.runs.get(&super::admission::run_key(
                        self.tenant.as_bytes(),
                        r.as_bytes(),
                    ))
                })
                .flat_map(|run| run.steps.iter().filter(|s| s.offset < below).copied())
                .collect()
        };
        let snapshot = self.inner.reader.snapshot()?;
        let mut targets = Vec::new();
        let mut live = 0u64;
        for loc in &locs {
            let record = self.read_loc(&snapshot, loc)?;
            let view = record.view();
            for i in 0..view.slot_count() {
                let is_live =
                    matches!(view.slot(i), Ok(crate::format::slot::SlotView::Live { .. }));
                live += u64::from(is_live);
                let slot_ref = SlotRef {
                    offset: loc.offset,
                    slot_index: u16::try_from(i).unwrap_or(u16::MAX),
                };
                targets.push((slot_ref, is_live));
            }
        }
        Ok((targets, live))
    }

    /// The archives recorded for `runs` (lineage `archived_to` edges): `{run_id, uri, sha256}`.
    fn archives_of(&self, runs: &[String]) -> Result<Vec<Value>, LedgerError> {
        self.with_governance(|g| {
            let lineage = &g.of(&self.tenant).lineage;
            let mut out = Vec::new();
            for r in runs {
                for node in lineage.downstream(&lineage::run_node(r)) {
                    if node.node_id.starts_with("archive:") && node.run_id == *r {
                        let sha = node
                            .metadata
                            .as_ref()
                            .and_then(|m| m.get("sha256"))
                            .cloned()
                            .unwrap_or(Value::Null);
                        out.push(json!({"run_id": r, "uri": node.name, "sha256": sha}));
                    }
                }
            }
            out
        })
    }

    /// Finishes every run erasure that a crash left between two of its records: erases the
    /// runs' slots below the series' first record that are still live, in the remaining parts.
    /// A writable open calls it first; it returns the number of parts written.
    pub fn finish_erasures(&self) -> Result<usize, LedgerError> {
        if self.inner.log.is_none() {
            return Ok(0);
        }
        let pending: Vec<super::runs::PendingErasure> = {
            let view = self.refresh()?;
            view.pending_erasures.values().cloned().collect()
        };
        let mut written = 0;
        for p in pending {
            let handle = self.with_tenant(&p.tenant)?;
            let mut note: Value =
                serde_json::from_slice(&p.note).map_err(|e| LedgerError::Invalid {
                    reason: format!(
                        "the erasure note at offset {} is not JSON: {e}",
                        p.first_offset
                    ),
                })?;
            let runs: Vec<String> = note
                .get("runs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let (all, _) = handle.slots_of(&runs, p.first_offset)?;
            let targets: Vec<SlotRef> = all
                .into_iter()
                .filter_map(|(t, live)| live.then_some(t))
                .collect();
            let per_record = self.erasure_targets_per_record();
            let mut chunks: Vec<Vec<SlotRef>> = targets
                .chunks(per_record)
                .map(<[SlotRef]>::to_vec)
                .collect();
            if chunks.is_empty() {
                chunks.push(Vec::new());
            }
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.into_iter().enumerate() {
                let part = if i == last {
                    p.parts
                } else {
                    (p.seen + 1 + u32::try_from(i).unwrap_or(u32::MAX)).min(p.parts - 1)
                };
                set(&mut note, "part", json!(part));
                handle.erase_record(chunk, &note)?;
                written += 1;
            }
        }
        Ok(written)
    }

    fn erasure_targets_per_record(&self) -> usize {
        match self.inner.fault_targets_per_record.load(Ordering::Relaxed) {
            0 => TARGETS_PER_RECORD,
            n => n,
        }
    }

    /// Test hook: erasure records name at most `targets_per_record` slots (0: the default),
    /// and with `stop_after_parts` = k an erasure returns an error after writing k parts, as a
    /// crash between two records would leave it. Not for production use.
    #[doc(hidden)]
    pub fn set_erasure_faults(&self, targets_per_record: usize, stop_after_parts: usize) {
        self.inner
            .fault_targets_per_record
            .store(targets_per_record, Ordering::Relaxed);
        self.inner
            .fault_stop_erasure_after
            .store(stop_after_parts, Ordering::Relaxed);
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
