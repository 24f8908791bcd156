//! The register of compliance snapshots taken (SPEC §7): each `snapshot export` with a
//! writable log records the snapshot's id, the SHA-256 of its manifest and the offset it was
//! taken at, so `snapshot verify --db` can tell a tampered manifest (its free-text fields
//! included) from the one that was exported. The snapshot's own sections never include this
//! view: it records snapshots, it is not evidence in them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::event::{check_name, Event, Family, Fields};

/// One snapshot taken.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Taken {
    /// The snapshot's id (its manifest's `snapshot_id`).
    pub snapshot_id: String,
    /// SHA-256 of its `manifest.json` bytes, lower-case hex.
    pub manifest_sha256: String,
    /// The offset it was taken at (the state covers every record below it).
    pub log_offset: u64,
    /// Its manifest's `created_at`.
    pub created_at: f64,
    /// Its manifest's `created_by`.
    pub created_by: String,
    /// When it was recorded (Unix seconds).
    pub ts: f64,
}

impl Taken {
    /// The JSON shape of `snapshot list --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "snapshot_id": self.snapshot_id, "manifest_sha256": self.manifest_sha256,
            "log_offset": self.log_offset, "created_at": self.created_at,
            "created_by": self.created_by, "ts": self.ts,
        })
    }
}

/// The snapshots a tenant took (an all-tenant snapshot is recorded under the tenant that
/// exported it).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotsState {
    taken: BTreeMap<String, Taken>,
}

impl SnapshotsState {
    /// The snapshot `snapshot_id`, if recorded.
    pub fn get(&self, snapshot_id: &str) -> Option<&Taken> {
        self.taken.get(snapshot_id)
    }

    /// Every recorded snapshot, oldest first.
    pub fn list(&self) -> Vec<&Taken> {
        let mut out: Vec<&Taken> = self.taken.values().collect();
        out.sort_by(|a, b| {
            a.ts.total_cmp(&b.ts)
                .then(a.snapshot_id.cmp(&b.snapshot_id))
        });
        out
    }

    /// Checks an event against the state.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let taken = taken_of(event)?;
        if self.taken.contains_key(&taken.snapshot_id) {
            return Err(format!(
                "snapshot '{}' is already recorded",
                taken.snapshot_id
            ));
        }
        Ok(())
    }

    /// Applies a checked event.
    pub fn apply(&mut self, event: &Event) -> Result<(), String> {
        self.check(event)?;
        let taken = taken_of(event)?;
        self.taken.insert(taken.snapshot_id.clone(), taken);
        Ok(())
    }
}

fn taken_of(event: &Event) -> Result<Taken, String> {
    let f = Fields(&event.body);
    if event.op() != "taken" {
        return Err(format!("unknown snapshot op '{}'", event.op()));
    }
    let snapshot_id = f.str("snapshot_id")?;
    check_name("a snapshot id", snapshot_id)?;
    let manifest_sha256 = f.str("manifest_sha256")?;
    if manifest_sha256.len() != 64 || !manifest_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("manifest_sha256 is not 64 hex digits".to_string());
    }
    let log_offset =
        u64::try_from(f.i64("log_offset")?).map_err(|_| "log_offset is negative".to_string())?;
    Ok(Taken {
        snapshot_id: snapshot_id.to_string(),
        manifest_sha256: manifest_sha256.to_ascii_lowercase(),
        log_offset,
        created_at: f.f64("created_at")?,
        created_by: f.str("created_by")?.to_string(),
        ts: f.f64("ts")?,
    })
}

/// Events of this view.
pub mod events {
    use super::*;

    /// A snapshot was taken: its id, manifest digest, offset and author.
    pub fn taken(
        snapshot_id: &str,
        manifest_sha256: &str,
        log_offset: u64,
        created_at: f64,
        created_by: &str,
        now: f64,
    ) -> Event {
        Event::from_value(
            Family::Snapshot,
            json!({
                "op": "taken", "snapshot_id": snapshot_id, "manifest_sha256": manifest_sha256,
                "log_offset": log_offset, "created_at": created_at, "created_by": created_by,
                "ts": now,
            }),
        )
    }
}
