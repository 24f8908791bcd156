//! Governance views as projections of the log (SPEC §6; `docs/governance-events.md`).
//!
//! Every governance store of the reference is a family of events in the log (one critical
//! record kind per family) and a view built from them: [`GovState`] holds every view of one
//! log, partitioned by tenant, and changes only by applying events in offset order, so its
//! state depends on the events alone ("now" is a query argument).
//!
//! The same state is kept twice in a writing process: the sequencer's copy, which checks each
//! new event (unique names, existing rules, tenant status) in offset order before it gets an
//! offset (a refused event uses no offset), and the readers' copy, which applies only durable
//! events. Neither scans the log: the runs view indexes every governance event (its
//! checkpoint carries the index), and a view is rebuilt by reading just those records.
//!
//! Families: `policy`, `sla`, `vault`, `tenant`, `lineage`, `identity`, `canary`, `lock`,
//! `alert`, `flag` (one module each).

pub mod alert;
pub mod canary;
pub mod event;
pub mod flag;
pub mod identity;
pub mod lineage;
pub mod lock;
pub mod policy;
pub mod sla;
pub mod snapshots;
pub mod tenant;
pub mod vault;

use std::collections::BTreeMap;

pub use event::{Event, Family};

use crate::ledger::runs::EventLoc;
use crate::log::{LogReader, Record, Snapshot};
use crate::Error;
use policy::PolicyState;
use sla::SlaState;
use tenant::TenantRegistry;
use vault::VaultState;

/// Past this many events to apply, `catch_up` scans the log instead of reading each event.
const SCAN_THRESHOLD: usize = 256;
/// Decoded events handed from the scanning thread to the applying one at a time.
const DECODE_BATCH: usize = 256;

/// A governance record decoded (on any thread), ready to apply in offset order.
struct Decoded {
    tenant: String,
    event: Event,
    slots: Vec<Option<Vec<u8>>>,
    offset: u64,
    segment_base: u64,
    position: u64,
}

impl Decoded {
    /// The record's event, if it is a governance record; damage is an error naming where.
    fn of(record: &Record) -> Result<Option<Decoded>, Error> {
        let view = record.view();
        let Some(family) = Family::of_kind(view.kind()) else {
            return Ok(None);
        };
        let offset = view.offset();
        let located = |why: String| {
            Error::corrupt(
                crate::format::segment_header::segment_file_name(record.segment_base()),
                record.position(),
                Some(offset),
                why,
            )
        };
        let tenant = std::str::from_utf8(view.tenant())
            .map_err(|_| located("a governance event whose tenant is not UTF-8".to_string()))?
            .to_string();
        let event = Event::decode(family, view.payload()).map_err(&located)?;
        let slots = slot_contents(&view).map_err(&located)?;
        Ok(Some(Decoded {
            tenant,
            event,
            slots,
            offset,
            segment_base: record.segment_base(),
            position: record.position(),
        }))
    }
}

/// A fresh id for a governance record (UUID v4, as the reference's).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Now, in Unix seconds (the reference's `time.time()`), for the events a command builds.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The tenant that owns log-wide registries (the tenant registry).
pub const SYSTEM_TENANT: &str = "_system";

/// The views of one tenant.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TenantViews {
    /// Policy rules, decisions, default.
    pub policy: PolicyState,
    /// SLA contracts, observations, breaches.
    pub sla: SlaState,
    /// Secrets' metadata, where their ciphertexts are, the audit trail.
    pub vault: VaultState,
    /// Agent identities.
    pub identity: identity::IdentityState,
    /// Canary experiments.
    pub canary: canary::CanaryState,
    /// Locks.
    pub lock: lock::LockState,
    /// Alerts.
    pub alert: alert::AlertState,
    /// Feature flags.
    pub flag: flag::FlagState,
    /// The lineage graph.
    pub lineage: lineage::LineageState,
    /// The compliance snapshots taken.
    #[serde(default)]
    pub snapshots: snapshots::SnapshotsState,
}

static EMPTY_VIEWS: std::sync::LazyLock<TenantViews> =
    std::sync::LazyLock::new(TenantViews::default);

/// Every governance view of one log.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GovState {
    tenants_views: BTreeMap<String, TenantViews>,
    tenants: TenantRegistry,
    /// How many indexed events (of the runs view's list) are applied.
    applied: usize,
    /// The state covers every record below this offset.
    next_offset: u64,
}

impl GovState {
    /// One tenant's views (empty for a tenant with no events).
    pub fn of(&self, tenant: &str) -> &TenantViews {
        self.tenants_views.get(tenant).unwrap_or(&EMPTY_VIEWS)
    }

    /// The tenants that have governance events, in order.
    pub fn tenant_ids(&self) -> impl Iterator<Item = &str> {
        self.tenants_views.keys().map(String::as_str)
    }

    /// One tenant's policy view.
    pub fn policy(&self, tenant: &str) -> &PolicyState {
        &self.of(tenant).policy
    }

    /// One tenant's vault view.
    pub fn vault(&self, tenant: &str) -> &VaultState {
        &self.of(tenant).vault
    }

    /// One tenant's SLA view.
    pub fn sla(&self, tenant: &str) -> &SlaState {
        &self.of(tenant).sla
    }

    /// The tenant registry.
    pub fn tenants(&self) -> &TenantRegistry {
        &self.tenants
    }

    /// The state covers every record below this offset.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Checks `event`, appended by `tenant` with these slot contents (`None`: erased),
    /// against the state: `Err` is the refusal.
    pub fn check(
        &self,
        tenant: &str,
        event: &Event,
        slots: &[Option<Vec<u8>>],
    ) -> Result<(), String> {
        match event.family {
            Family::Lineage => self.of(tenant).lineage.check(event, slots),
            Family::Policy => self.policy(tenant).check(event),
            Family::Sla => self.sla(tenant).check(event),
            Family::Vault => self.vault(tenant).check(event),
            Family::Identity => self.of(tenant).identity.check(event),
            Family::Canary => self.of(tenant).canary.check(event),
            Family::Lock => self.of(tenant).lock.check(event),
            Family::Alert => self.of(tenant).alert.check(event),
            Family::Flag => self.of(tenant).flag.check(event),
            Family::Snapshot => self.of(tenant).snapshots.check(event),
            Family::Tenant => {
                if tenant != SYSTEM_TENANT {
                    return Err(format!(
                        "tenant registry events belong to '{SYSTEM_TENANT}', not '{tenant}'"
                    ));
                }
                self.tenants.check(event)
            }
        }
    }

    /// Applies `event` of `tenant` at `offset` (checked again; a refusal changes nothing).
    pub fn apply(
        &mut self,
        tenant: &str,
        event: &Event,
        slots: &[Option<Vec<u8>>],
        offset: u64,
    ) -> Result<(), String> {
        if event.family == Family::Tenant {
            // The views' own `apply` checks the event; only the registry's owner is checked
            // here.
            self.check(tenant, event, slots)?;
            self.tenants.apply(event, offset)?;
        } else {
            let views = self.tenants_views.entry(tenant.to_string()).or_default();
            match event.family {
                Family::Policy => views.policy.apply(event, offset)?,
                Family::Sla => views.sla.apply(event)?,
                Family::Vault => views.vault.apply(event, offset)?,
                Family::Identity => views.identity.apply(event, offset)?,
                Family::Canary => views.canary.apply(event)?,
                Family::Lock => views.lock.apply(event)?,
                Family::Alert => views.alert.apply(event, offset)?,
                Family::Flag => views.flag.apply(event, offset)?,
                Family::Snapshot => views.snapshots.apply(event)?,
                Family::Lineage => views.lineage.apply(event, slots, offset)?,
                Family::Tenant => {}
            }
        }
        self.next_offset = self.next_offset.max(offset + 1);
        Ok(())
    }

    /// Applies one governance record read from the log. A record the view cannot apply was
    /// admitted by an engine with other rules, or damaged: an error naming where it is.
    pub fn apply_record(&mut self, record: &Record) -> Result<(), Error> {
        match Decoded::of(record)? {
            Some(decoded) => self.apply_decoded(decoded),
            None => Ok(()),
        }
    }

    fn apply_decoded(&mut self, d: Decoded) -> Result<(), Error> {
        let Decoded {
            tenant,
            event,
            slots,
            offset,
            segment_base,
            position,
        } = d;
        self.apply(&tenant, &event, &slots, offset).map_err(|why| {
            Error::corrupt(
                crate::format::segment_header::segment_file_name(segment_base),
                position,
                Some(offset),
                format!("a {} event that does not apply: {why}", event.family.name()),
            )
        })
    }

    /// Applies the indexed events not applied yet (those below `end` only), reading each
    /// from the log; then the state covers every record below `end`.
    pub fn catch_up(
        &mut self,
        reader: &LogReader,
        snapshot: &Snapshot,
        events: &[EventLoc],
        end: u64,
    ) -> Result<(), Error> {
        let pending = events
            .get(self.applied..)
            .unwrap_or(&[])
            .iter()
            .take_while(|loc| loc.offset < end);
        let (count, first) = pending.fold((0usize, None), |(n, first), loc| {
            (n + 1, first.or(Some(loc.offset)))
        });
        if let (true, Some(first)) = (count > SCAN_THRESHOLD, first) {
            // Many events (a rebuild): one sequential scan reads them faster than a `pread`
            // each, and a second thread scans and decodes while this one applies (in order).
            let scan = reader.scan_snapshot(snapshot.clone(), first)?;
            let (tx, rx) = crossbeam_channel::bounded::<Vec<Result<Decoded, Error>>>(8);
            let result = std::thread::scope(|scope| -> Result<(), Error> {
                scope.spawn(move || {
                    let mut batch = Vec::with_capacity(DECODE_BATCH);
                    for record in scan {
                        let decoded = match record {
                            Ok(r) if r.view().offset() >= end => break,
                            Ok(r) => Decoded::of(&r).transpose(),
                            Err(e) => Some(Err(e)),
                        };
                        let failed = matches!(decoded, Some(Err(_)));
                        batch.extend(decoded);
                        if failed {
                            // The error goes with the events before it; nothing after it.
                            let _ = tx.send(std::mem::take(&mut batch));
                            return;
                        }
                        if batch.len() >= DECODE_BATCH
                            && tx.send(std::mem::take(&mut batch)).is_err()
                        {
                            return;
                        }
                    }
                    let _ = tx.send(batch);
                });
                for batch in rx {
                    for decoded in batch {
                        self.apply_decoded(decoded?)?;
                        self.applied += 1;
                    }
                }
                Ok(())
            });
            result?;
            self.next_offset = self.next_offset.max(end);
            return Ok(());
        }
        for loc in events.iter().skip(self.applied) {
            if loc.offset >= end {
                break;
            }
            let record = reader.read_at_len(
                snapshot,
                loc.segment_base,
                u64::from(loc.position),
                loc.offset,
                Some(loc.frame_len),
            )?;
            self.apply_record(&record)?;
            self.applied += 1;
        }
        self.next_offset = self.next_offset.max(end);
        Ok(())
    }
}

/// The contents of a frame's slots (`None` for an erased one).
pub(crate) fn slot_contents(
    frame: &crate::format::frame::FrameView<'_>,
) -> Result<Vec<Option<Vec<u8>>>, String> {
    (0..frame.slot_count())
        .map(|i| match frame.slot(i) {
            Ok(crate::format::slot::SlotView::Live { content, .. }) => Ok(Some(content.to_vec())),
            Ok(crate::format::slot::SlotView::Erased { .. }) => Ok(None),
            Err(e) => Err(format!("slot {i}: {e:?}")),
        })
        .collect()
}
