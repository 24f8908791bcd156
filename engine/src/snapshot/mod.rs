//! Compliance snapshots (SPEC §7, `docs/snapshot-format.md`): a deterministic ZIP of the
//! governance views' state at one log offset, with a manifest that binds it to the log (offset,
//! global hash, latest checkpoint) and to its own sections (SHA-256 of each).
//!
//! * [`SnapshotBundle`] holds the manifest and the sections' bytes; [`SnapshotBundle::write_zip`]
//!   writes `manifest.json` first, then every section in order, Deflate-compressed, with fixed
//!   entry times, so the same state gives the same bytes.
//! * [`SnapshotExporter`] builds a bundle from a [`Ledger`] at the current offset, a past offset
//!   or a past time; records are sorted by documented keys and every time-dependent field is
//!   computed with now = `created_at`.
//! * [`read_zip`] reads a snapshot back with limits (entry count, sizes, compression ratio), and
//!   [`verify`] checks it alone or against the log.

mod sections;
mod zipfile;

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::path::Path;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::format::hex;
use crate::governance::GovState;
use crate::ledger::{Ledger, LedgerError};

pub use sections::{section_bytes, section_records, SORT_KEYS};
pub use zipfile::{read_zip, ReadLimits, SnapshotFile};

/// The manifest's `format`.
pub const FORMAT: &str = "meshflow-snapshot/1";
/// The sections of a snapshot, in the seed's order (SPEC §7).
pub const SECTIONS: [&str; 13] = [
    "identities",
    "lineage_nodes",
    "lineage_edges",
    "canary_experiments",
    "locks",
    "alerts",
    "feature_flags",
    "policy_rules",
    "sla_contracts",
    "sla_breaches",
    "vault_secrets_metadata",
    "vault_audit",
    "tenants",
];
/// The manifest's entry name (always the first entry).
pub const MANIFEST: &str = "manifest.json";

/// Which tenants a snapshot covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One tenant: its views, and its own record of the tenant registry.
    Tenant(String),
    /// Every tenant (records carry a `tenant` key), and the whole registry.
    All,
}

impl Scope {
    /// The manifest's `tenant_scope`.
    pub fn to_json(&self) -> Value {
        match self {
            Scope::Tenant(t) => serde_json::json!({ "tenant": t }),
            Scope::All => serde_json::json!({ "all_tenants": true }),
        }
    }

    /// The scope a manifest's `tenant_scope` names.
    pub fn from_json(v: &Value) -> Option<Scope> {
        if v.get("all_tenants").and_then(Value::as_bool) == Some(true) {
            return Some(Scope::All);
        }
        v.get("tenant")
            .and_then(Value::as_str)
            .map(|t| Scope::Tenant(t.to_string()))
    }
}

/// The state a snapshot is taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The log's durable end.
    Now,
    /// Just before this log offset.
    Offset(u64),
    /// Just before the first record written at or after this time (Unix ns).
    TimeNs(u64),
}

/// A snapshot's manifest: the reference's fields (snapshot_id, created_at, created_by,
/// description, sections, record_counts), then meshflow's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotManifest {
    /// UUID (or the id pinned with `--snapshot-id`).
    pub snapshot_id: String,
    /// Unix seconds; also "now" for every time-dependent field.
    pub created_at: f64,
    /// Who took it.
    pub created_by: String,
    /// Free text (default `Compliance snapshot <first 8 characters of the id>`).
    pub description: String,
    /// Section names, in ZIP order.
    pub sections: Vec<String>,
    /// Records per section.
    pub record_counts: Map<String, Value>,
    /// [`FORMAT`].
    pub format: String,
    /// The engine that wrote it.
    pub engine_version: String,
    /// `{"tenant": …}` or `{"all_tenants": true}`.
    pub tenant_scope: Value,
    /// The state covers every record below this offset.
    pub log_offset: u64,
    /// Global chain hash of record `log_offset − 1`, hex (empty when `log_offset` is 0).
    pub global_hash_at: String,
    /// SHA-256 of every section file, hex, by section name.
    pub section_sha256: Map<String, Value>,
    /// The latest checkpoint note covering at most `log_offset` records, if any.
    pub checkpoint: Option<String>,
}

impl SnapshotManifest {
    /// The manifest as a JSON object.
    pub fn to_dict(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The `manifest.json` bytes (pretty JSON, fields in declaration order).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// SHA-256 of [`SnapshotManifest::to_bytes`], lower-case hex: what the log records.
    pub fn sha256_hex(&self) -> String {
        hex(&Sha256::digest(self.to_bytes()))
    }

    /// The snapshot register's event recording this snapshot (`docs/snapshot-format.md` §5).
    pub fn taken_event(&self) -> crate::governance::Event {
        crate::governance::snapshots::events::taken(
            &self.snapshot_id,
            &self.sha256_hex(),
            self.log_offset,
            self.created_at,
            &self.created_by,
            crate::governance::now_secs(),
        )
    }
}

/// A snapshot in memory: its manifest and its sections, each held compressed (a one-entry ZIP
/// of `<name>.json`), in order. Building a section serialises it, hashes it and compresses it;
/// its records and uncompressed bytes are dropped at once, so memory holds one section at a
/// time, plus the compressed ones.
#[derive(Debug, Clone)]
pub struct SnapshotBundle {
    /// The manifest (sections, counts and hashes follow [`SnapshotBundle::add_section`]).
    pub manifest: SnapshotManifest,
    sections: Vec<Section>,
}

/// One section, ready for the ZIP.
#[derive(Debug, Clone)]
pub struct Section {
    name: String,
    records: u64,
    sha256: String,
    /// A ZIP holding the one entry `<name>.json`, compressed as the snapshot stores it.
    staged: Vec<u8>,
}

impl Section {
    /// Serialises `records` (a pretty-printed JSON array and a newline), hashes and
    /// compresses them.
    pub fn build(name: &str, records: &[Value]) -> Result<Section, LedgerError> {
        let mut bytes = serde_json::to_vec_pretty(records).unwrap_or_else(|_| b"[]".to_vec());
        bytes.push(b'\n');
        Section::from_bytes(name, records.len() as u64, &bytes)
    }

    /// A section from its file bytes (a JSON array of `records` records), hashed and
    /// compressed.
    pub fn from_bytes(name: &str, records: u64, bytes: &[u8]) -> Result<Section, LedgerError> {
        let sha256 = hex(&Sha256::digest(bytes));
        let entry = format!("{name}.json");
        let staged =
            zipfile::write(std::io::Cursor::new(Vec::new()), &[(entry, bytes)])?.into_inner();
        Ok(Section {
            name: name.to_string(),
            records,
            sha256,
            staged,
        })
    }

    /// The section's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its uncompressed bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, LedgerError> {
        zipfile::read_one(&self.staged)
    }
}

impl SnapshotBundle {
    /// An empty bundle with this manifest's identity fields (its section lists are reset).
    pub fn new(mut manifest: SnapshotManifest) -> SnapshotBundle {
        manifest.sections.clear();
        manifest.record_counts.clear();
        manifest.section_sha256.clear();
        SnapshotBundle {
            manifest,
            sections: Vec::new(),
        }
    }

    /// Adds (or replaces) section `name` holding `records`: a pretty-printed JSON array.
    pub fn add_section(&mut self, name: &str, records: &[Value]) -> Result<(), LedgerError> {
        self.add_built(Section::build(name, records)?);
        Ok(())
    }

    /// Adds (or replaces) a section built with [`Section::build`].
    pub fn add_built(&mut self, section: Section) {
        let name = section.name.clone();
        self.manifest
            .record_counts
            .insert(name.clone(), Value::from(section.records));
        self.manifest
            .section_sha256
            .insert(name.clone(), Value::String(section.sha256.clone()));
        match self.sections.iter_mut().find(|s| s.name == name) {
            Some(existing) => *existing = section,
            None => {
                self.sections.push(section);
                self.manifest.sections.push(name);
            }
        }
    }

    /// The records of every section.
    pub fn total_records(&self) -> u64 {
        self.manifest
            .record_counts
            .values()
            .filter_map(Value::as_u64)
            .sum()
    }

    /// A section's uncompressed bytes.
    pub fn section(&self, name: &str) -> Option<Vec<u8>> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.bytes().ok())
    }

    /// Writes the ZIP: `manifest.json`, then each section as `<name>.json`, Deflate, fixed
    /// entry times and permissions (the sections' compressed data copied as it is).
    pub fn write_zip<W: Write + Seek>(&self, out: W) -> Result<W, LedgerError> {
        let manifest = self.manifest.to_bytes();
        let staged: Vec<&[u8]> = self.sections.iter().map(|s| s.staged.as_slice()).collect();
        zipfile::write_with_staged(out, &manifest, &staged)
    }

    /// The ZIP's bytes.
    pub fn to_zip_bytes(&self) -> Result<Vec<u8>, LedgerError> {
        Ok(self
            .write_zip(std::io::Cursor::new(Vec::new()))?
            .into_inner())
    }

    /// Writes the ZIP to `path` safely: a temporary file beside it, fsynced, then renamed
    /// (hard-linked when `force` is off, so an existing file is never replaced; it is a
    /// `Conflict`). A failure leaves no partial file under `path`.
    pub fn write_file(&self, path: &Path, force: bool) -> Result<(), LedgerError> {
        zipfile::write_file(path, force, |file| {
            self.write_zip(std::io::BufWriter::new(file)).and_then(|w| {
                w.into_inner().map(|_| ()).map_err(|e| {
                    LedgerError::Log(crate::Error::io(
                        "writing a snapshot".to_string(),
                        e.into_error(),
                    ))
                })
            })
        })
    }
}

/// What to take a snapshot of, and its identity.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// One tenant or all.
    pub scope: Scope,
    /// Which state.
    pub at: At,
    /// Pinned id (default: a fresh UUID v4).
    pub snapshot_id: Option<String>,
    /// Pinned creation time, Unix seconds (default: now).
    pub created_at: Option<f64>,
    /// Who takes it.
    pub created_by: String,
    /// Free text (default `Compliance snapshot <first 8 characters of the id>`).
    pub description: Option<String>,
}

/// Builds snapshots from a ledger's governance views.
#[derive(Debug)]
pub struct SnapshotExporter<'a> {
    ledger: &'a Ledger,
}

impl<'a> SnapshotExporter<'a> {
    /// An exporter reading `ledger` (any handle: the scope decides the tenants).
    pub fn new(ledger: &'a Ledger) -> SnapshotExporter<'a> {
        SnapshotExporter { ledger }
    }

    /// The log offset `at` names (checked against the durable end).
    pub fn resolve(&self, at: At) -> Result<u64, LedgerError> {
        let end = self.ledger.reader().snapshot()?.head.next_offset;
        match at {
            At::Now => Ok(end),
            At::Offset(offset) if offset <= end => Ok(offset),
            At::Offset(offset) => Err(LedgerError::Invalid {
                reason: format!("offset {offset} is past the log's durable end ({end})"),
            }),
            At::TimeNs(ns) => Ok(self.ledger.reader().offset_at_time(ns)?.unwrap_or(end)),
        }
    }

    /// Builds the snapshot. A view that cannot be built fails the export, naming it.
    pub fn export(&self, options: &SnapshotOptions) -> Result<SnapshotBundle, LedgerError> {
        let offset = self.resolve(options.at)?;
        let snapshot_id = options
            .snapshot_id
            .clone()
            .unwrap_or_else(crate::governance::new_id);
        crate::governance::event::check_name("a snapshot id", &snapshot_id)
            .map_err(|reason| LedgerError::Invalid { reason })?;
        let created_at = options
            .created_at
            .unwrap_or_else(crate::governance::now_secs);
        if !created_at.is_finite() || created_at < 0.0 {
            return Err(LedgerError::Invalid {
                reason: format!("created_at {created_at} is not a time"),
            });
        }
        let description = options.description.clone().unwrap_or_else(|| {
            format!(
                "Compliance snapshot {}",
                snapshot_id.chars().take(8).collect::<String>()
            )
        });
        let manifest = SnapshotManifest {
            snapshot_id,
            created_at,
            created_by: options.created_by.clone(),
            description,
            sections: Vec::new(),
            record_counts: Map::new(),
            format: FORMAT.to_string(),
            engine_version: env!("CARGO_PKG_VERSION").to_string(),
            tenant_scope: options.scope.to_json(),
            log_offset: offset,
            global_hash_at: global_hash_at(self.ledger, offset)?,
            section_sha256: Map::new(),
            checkpoint: crate::ledger::anchor::latest_note(self.ledger.dir(), offset),
        };
        let mut bundle = SnapshotBundle::new(manifest);
        // At the durable end the handle's own views serve (no rebuild); a past offset is
        // rebuilt from the events below it. A view that cannot be built fails the export:
        // the error names the record and the view's family (`a policy event that does not
        // apply: …`) or the damaged frame.
        let built = self.ledger.with_governance(|g| {
            (g.next_offset() == offset).then(|| build_sections(g, &options.scope, created_at))
        })?;
        let sections = match built {
            Some(sections) => sections?,
            None => build_sections(
                &self.ledger.governance_at(offset)?,
                &options.scope,
                created_at,
            )?,
        };
        for section in sections {
            bundle.add_built(section);
        }
        Ok(bundle)
    }
}

/// Every section of `state` for `scope`, in order, built on two threads (each takes the next
/// section not taken yet; one section's records are in memory per thread at a time).
fn build_sections(state: &GovState, scope: &Scope, now: f64) -> Result<Vec<Section>, LedgerError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> Result<Vec<(usize, Section)>, LedgerError> {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(name) = SECTIONS.get(i) else {
                return Ok(done);
            };
            let (records, bytes) = section_bytes(state, scope, name, now);
            done.push((i, Section::from_bytes(name, records, &bytes)?));
        }
    };
    let (mine, theirs) = std::thread::scope(|scope| {
        let other = scope.spawn(work);
        let mine = work();
        let theirs = other.join().unwrap_or_else(|_| {
            Err(LedgerError::Invalid {
                reason: "a snapshot section's thread failed".to_string(),
            })
        });
        (mine, theirs)
    });
    let mut all: Vec<(usize, Section)> = mine?;
    all.extend(theirs?);
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, s)| s).collect())
}

/// The global chain hash of record `offset − 1`, hex (empty for offset 0).
fn global_hash_at(ledger: &Ledger, offset: u64) -> Result<String, LedgerError> {
    let Some(last) = offset.checked_sub(1) else {
        return Ok(String::new());
    };
    let record = ledger
        .reader()
        .get(last)?
        .ok_or_else(|| LedgerError::Invalid {
            reason: format!("offset {offset} is past the log's durable end"),
        })?;
    Ok(hex(&record.view().hash()))
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// The snapshot's id.
    pub snapshot_id: String,
    /// Sections whose hash and count were checked.
    pub sections: usize,
    /// Records in them.
    pub records: u64,
    /// The log offset it claims.
    pub log_offset: u64,
    /// Checked against the log: sections equal the views' state at the offset.
    pub checked_against_log: bool,
    /// The manifest's digest matches the one the log recorded when it was exported.
    pub manifest_recorded: Option<bool>,
    /// Every problem found, each naming the section or field.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// No problem found.
    pub fn valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies a snapshot read with [`read_zip`]: the manifest's format, the entries against its
/// section list, each section's SHA-256 and record count; and, with a ledger, the offset and
/// global hash against the log, every section against the views' state at that offset, the
/// embedded checkpoint against the log, and the manifest's digest against the one recorded at
/// export (which anchors its free-text fields).
pub fn verify(file: &SnapshotFile, ledger: Option<&Ledger>) -> Result<VerifyReport, LedgerError> {
    let m = &file.manifest;
    let mut report = VerifyReport {
        snapshot_id: m.snapshot_id.clone(),
        log_offset: m.log_offset,
        ..VerifyReport::default()
    };
    let problems = &mut report.problems;
    if m.format != FORMAT {
        problems.push(format!(
            "manifest field 'format' is '{}', not '{FORMAT}'",
            m.format
        ));
    }
    let names: Vec<&str> = file.sections.iter().map(|(n, _)| n.as_str()).collect();
    if names != m.sections.iter().map(String::as_str).collect::<Vec<_>>() {
        problems.push(format!(
            "manifest field 'sections' lists {:?}, the ZIP holds {:?}",
            m.sections, names
        ));
    }
    let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, bytes) in &file.sections {
        let digest = hex(&Sha256::digest(bytes));
        match m.section_sha256.get(name).and_then(Value::as_str) {
            Some(claimed) if claimed == digest => {}
            Some(_) => problems.push(format!(
                "section '{name}': its SHA-256 differs from the manifest's"
            )),
            None => problems.push(format!("section '{name}': no SHA-256 in the manifest")),
        }
        let count = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(records)) => records.len() as u64,
            _ => {
                problems.push(format!("section '{name}': not a JSON array"));
                continue;
            }
        };
        counted.insert(name, count);
        if m.record_counts.get(name).and_then(Value::as_u64) != Some(count) {
            problems.push(format!(
                "section '{name}': {count} record(s), the manifest's record_counts says {}",
                m.record_counts
                    .get(name)
                    .map_or("nothing".to_string(), Value::to_string)
            ));
        }
        report.sections += 1;
        report.records += count;
    }
    for name in m.record_counts.keys() {
        if !counted.contains_key(name.as_str()) && !names.contains(&name.as_str()) {
            problems.push(format!(
                "manifest field 'record_counts' names section '{name}', which the ZIP lacks"
            ));
        }
    }
    let Some(ledger) = ledger else {
        return Ok(report);
    };
    report.checked_against_log = true;
    let Some(scope) = Scope::from_json(&m.tenant_scope) else {
        report
            .problems
            .push("manifest field 'tenant_scope' names no tenant".to_string());
        return Ok(report);
    };
    let end = ledger.reader().snapshot()?.head.next_offset;
    if m.log_offset > end {
        report.problems.push(format!(
            "manifest field 'log_offset' is {}, past the log's end ({end})",
            m.log_offset
        ));
        return Ok(report);
    }
    if global_hash_at(ledger, m.log_offset)? != m.global_hash_at {
        report.problems.push(format!(
            "manifest field 'global_hash_at' differs from the log's hash at offset {}",
            m.log_offset
        ));
    }
    if let Some(note) = &m.checkpoint {
        match crate::format::note::parse_text(note) {
            Err(why) => report
                .problems
                .push(format!("manifest field 'checkpoint' is not a note: {why}")),
            Ok(c) if c.size > m.log_offset => report.problems.push(format!(
                "manifest field 'checkpoint' covers {} records, more than log_offset",
                c.size
            )),
            Ok(c) => {
                if let Err(why) = crate::ledger::anchor::check_log(ledger.reader(), &c)? {
                    report
                        .problems
                        .push(format!("manifest field 'checkpoint': {why}"));
                }
            }
        }
    }
    let state = ledger.governance_at(m.log_offset)?;
    for (name, bytes) in &file.sections {
        if !SECTIONS.contains(&name.as_str()) {
            continue;
        }
        let (_, expected) = section_bytes(&state, &scope, name, m.created_at);
        if expected != *bytes {
            report.problems.push(format!(
                "section '{name}' differs from the log's state at offset {}",
                m.log_offset
            ));
        }
    }
    for name in SECTIONS {
        if !names.contains(&name) {
            report
                .problems
                .push(format!("section '{name}' is missing from the ZIP"));
        }
    }
    // A snapshot is recorded under the tenant that exported it: for a one-tenant snapshot
    // that tenant, for an all-tenant one whichever tenant took it.
    let recorded = ledger.with_governance(|g| {
        let tenants: Vec<&str> = match &scope {
            Scope::Tenant(t) => vec![t.as_str()],
            Scope::All => g.tenant_ids().collect(),
        };
        tenants
            .into_iter()
            .find_map(|t| g.of(t).snapshots.get(&m.snapshot_id))
            .map(|t| t.manifest_sha256.clone())
    })?;
    if let Some(recorded) = recorded {
        // The bytes as stored, not a re-serialisation of the parsed manifest.
        let ok = recorded == hex(&Sha256::digest(&file.manifest_bytes));
        report.manifest_recorded = Some(ok);
        if !ok {
            report.problems.push(format!(
                "manifest.json differs from the one recorded in the log for snapshot '{}'",
                m.snapshot_id
            ));
        }
    }
    Ok(report)
}
