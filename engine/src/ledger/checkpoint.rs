//! Checkpoints of the runs view: immutable files, any process may read them, each bound to a
//! log offset, the global chain hash there, the view's logic version and a digest of the state.
//! A checkpoint that disagrees with the log on any of these is refused and the view is rebuilt
//! from the log (which loses nothing: the log is the source of truth).
//!
//! File `checkpoints/runs-<offset, 20 digits>.ckpt`, all integers little-endian:
//!
//! ```text
//! [8]  magic "MESHCKPT"
//! u32  file format version (1)
//! u32  view logic version (VIEW_LOGIC_VERSION)
//! [16] view name, zero-padded ("runs")
//! u64  offset: the state covers every record below it
//! [32] global chain hash of record offset − 1 (zeros when offset is 0)
//! [32] state digest: BLAKE3 (256-bit) of the state bytes
//! u64  state length
//! ...  state bytes (below)
//! u32  CRC-32C of everything before it
//! ```
//!
//! State bytes: `u64 run_count`, then per run in key order (tenant, 0, run id): `u8 tenant_len ‖
//! tenant ‖ u32 run_id_len ‖ run_id ‖ u64 last_offset ‖ u8 deleted (v3) ‖ u64 step_count`, then per step
//! `u64 offset ‖ u64 segment_base ‖ u32 position ‖ u32 frame_len ‖ [32] entry_hash ‖
//! [16] step_key`; then (logic version 2) `u64 event_count` and per governance event, in
//! offset order, `u64 offset ‖ u64 segment_base ‖ u32 position ‖ u32 frame_len`; then (logic
//! version 4) `u32 pending_count` and per unfinished run-erasure series, in series-id order,
//! `u32 series_len ‖ series ‖ u8 tenant_len ‖ tenant ‖ u64 first_offset ‖ u32 seen ‖ u32 parts
//! ‖ u32 note_len ‖ note`.
//!
//! After writing a checkpoint the writer appends a checkpoint-digest event (kind
//! [`KIND_CHECKPOINT_DIGEST`], tenant `_system`) carrying the same offset, hash and digest, so
//! state digests are chained into the log; a checkpoint whose digest differs from the event for
//! its offset is refused.

use super::runs::{EventLoc, RunState, RunsView, StepLoc};

/// Magic at the start of a checkpoint file.
pub const MAGIC: [u8; 8] = *b"MESHCKPT";
/// Checkpoint file format version.
pub const FILE_VERSION: u32 = 1;
/// Version of the runs view's logic: a checkpoint from other logic is rebuilt. Version 2 adds
/// the index of governance events, version 3 a deleted flag per run, version 4 unfinished
/// run-erasure series.
pub const VIEW_LOGIC_VERSION: u32 = 4;
/// Name of the runs view in checkpoints and digest events.
pub const VIEW_NAME: &str = "runs";
/// Record kind of a checkpoint-digest event (not critical: readers may skip it).
pub const KIND_CHECKPOINT_DIGEST: u16 = 0x0180;
/// Tenant of the engine's own events.
pub const SYSTEM_TENANT: &str = "_system";
/// Directory of checkpoint files inside the log directory.
pub const DIR: &str = "checkpoints";

const HEADER_BYTES: usize = 8 + 4 + 4 + 16 + 8 + 32 + 32 + 8;
const STEP_BYTES: usize = 8 + 8 + 8 + 32 + 16;
const EVENT_BYTES: usize = 8 + 8 + 4 + 4;

/// What a checkpoint is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The state covers every record below this offset.
    pub offset: u64,
    /// The global chain hash of record `offset − 1`.
    pub global_hash: [u8; 32],
    /// BLAKE3 of the state bytes.
    pub state_digest: [u8; 32],
}

/// The file name of the checkpoint at `offset`.
pub fn file_name(offset: u64) -> String {
    format!("{VIEW_NAME}-{offset:020}.ckpt")
}

/// The offset in a checkpoint file name, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("runs-")?.strip_suffix(".ckpt")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

fn name_bytes(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.as_bytes()) {
        *o = *b;
    }
    out
}

/// A checkpoint file of view `name` (the layout above, whatever the state bytes are), bound
/// to `offset` and the global hash of record `offset − 1`.
pub fn seal(
    name: &str,
    logic: u32,
    offset: u64,
    global_hash: &[u8; 32],
    state: &[u8],
) -> (Vec<u8>, Binding) {
    let digest: [u8; 32] = blake3::hash(state).into();
    let mut out = Vec::with_capacity(HEADER_BYTES + state.len() + 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FILE_VERSION.to_le_bytes());
    out.extend_from_slice(&logic.to_le_bytes());
    out.extend_from_slice(&name_bytes(name));
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(global_hash);
    out.extend_from_slice(&digest);
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(state);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    (
        out,
        Binding {
            offset,
            global_hash: *global_hash,
            state_digest: digest,
        },
    )
}

/// Checks a checkpoint file of view `name` written by logic version `logic` (magic, versions,
/// name, CRC, state digest) and returns its binding and state bytes.
pub fn unseal<'a>(bytes: &'a [u8], name: &str, logic: u32) -> Result<(Binding, &'a [u8]), String> {
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or("shorter than a checkpoint")?;
    if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
        return Err("CRC mismatch".to_string());
    }
    let mut r = Reader {
        bytes: body,
        pos: 0,
    };
    if r.array::<8>()? != MAGIC {
        return Err("not a checkpoint file (magic)".to_string());
    }
    let version = r.u32()?;
    if version != FILE_VERSION {
        return Err(format!(
            "file format version {version}, expected {FILE_VERSION}"
        ));
    }
    let found = r.u32()?;
    if found != logic {
        return Err(format!(
            "written by view logic version {found}, this build has {logic}"
        ));
    }
    if r.array::<16>()? != name_bytes(name) {
        return Err("checkpoint of another view".to_string());
    }
    let offset = r.u64()?;
    let global_hash = r.array::<32>()?;
    let state_digest = r.array::<32>()?;
    let state_len = usize::try_from(r.u64()?).map_err(|_| "state length")?;
    let state = r.take(state_len)?;
    if r.pos != body.len() {
        return Err("trailing bytes".to_string());
    }
    let digest: [u8; 32] = blake3::hash(state).into();
    if digest != state_digest {
        return Err("state digest mismatch".to_string());
    }
    Ok((
        Binding {
            offset,
            global_hash,
            state_digest,
        },
        state,
    ))
}

/// The state bytes of a view (deterministic: runs in key order).
pub fn encode_state(view: &RunsView) -> Vec<u8> {
    let mut keys: Vec<&Vec<u8>> = view.runs.keys().collect();
    keys.sort_unstable();
    let steps: usize = view.runs.values().map(|r| r.steps.len()).sum();
    let mut out = Vec::with_capacity(8 + keys.len() * 64 + steps * STEP_BYTES);
    out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    for key in keys {
        let Some(run) = view.runs.get(key) else {
            continue;
        };
        out.push(u8::try_from(run.tenant.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(run.tenant.as_bytes());
        out.extend_from_slice(
            &u32::try_from(run.run_id.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(run.run_id.as_bytes());
        out.extend_from_slice(&run.last_offset.to_le_bytes());
        out.push(u8::from(run.deleted));
        out.extend_from_slice(&(run.steps.len() as u64).to_le_bytes());
        for s in &run.steps {
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&s.segment_base.to_le_bytes());
            out.extend_from_slice(&s.position.to_le_bytes());
            out.extend_from_slice(&s.frame_len.to_le_bytes());
            out.extend_from_slice(&s.entry_hash);
            out.extend_from_slice(&s.step_key);
        }
    }
    out.extend_from_slice(&(view.events.len() as u64).to_le_bytes());
    for e in &view.events {
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.segment_base.to_le_bytes());
        out.extend_from_slice(&e.position.to_le_bytes());
        out.extend_from_slice(&e.frame_len.to_le_bytes());
    }
    let u32_of = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&u32_of(view.pending_erasures.len()));
    for (series, p) in &view.pending_erasures {
        out.extend_from_slice(&u32_of(series.len()));
        out.extend_from_slice(series.as_bytes());
        out.push(u8::try_from(p.tenant.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(p.tenant.as_bytes());
        out.extend_from_slice(&p.first_offset.to_le_bytes());
        out.extend_from_slice(&p.seen.to_le_bytes());
        out.extend_from_slice(&p.parts.to_le_bytes());
        out.extend_from_slice(&u32_of(p.note.len()));
        out.extend_from_slice(&p.note);
    }
    out
}

/// A whole checkpoint file for `view`, bound to the global hash of record `next_offset − 1`.
pub fn encode(view: &RunsView, global_hash: &[u8; 32]) -> (Vec<u8>, Binding) {
    seal(
        VIEW_NAME,
        VIEW_LOGIC_VERSION,
        view.next_offset,
        global_hash,
        &encode_state(view),
    )
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let out = self.bytes.get(self.pos..end).ok_or("truncated")?;
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(*self.take(1)?.first().ok_or("truncated")?)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "truncated")?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "truncated")?;
        Ok(u64::from_le_bytes(b))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        self.take(N)?
            .try_into()
            .map_err(|_| "truncated".to_string())
    }
    fn text(&mut self, len: usize) -> Result<String, String> {
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "text is not UTF-8".to_string())
    }
}

/// Decodes a checkpoint file: checks magic, versions, view name, CRC and state digest. The
/// binding to the log is the caller's to check.
pub fn decode(bytes: &[u8]) -> Result<(RunsView, Binding), String> {
    let (binding, state) = unseal(bytes, VIEW_NAME, VIEW_LOGIC_VERSION)?;
    Ok((decode_state(state, binding.offset)?, binding))
}

fn decode_state(state: &[u8], next_offset: u64) -> Result<RunsView, String> {
    let mut r = Reader {
        bytes: state,
        pos: 0,
    };
    let mut view = RunsView {
        next_offset,
        data_end: next_offset,
        ..RunsView::default()
    };
    let runs = r.u64()?;
    if runs > state.len() as u64 {
        return Err("run count larger than the state".to_string());
    }
    for _ in 0..runs {
        let tenant_len = usize::from(r.u8()?);
        let tenant = r.text(tenant_len)?;
        let run_len = usize::try_from(r.u32()?).map_err(|_| "run id length")?;
        let run_id = r.text(run_len)?;
        let last_offset = r.u64()?;
        let deleted = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err("a deleted flag that is not 0 or 1".to_string()),
        };
        let count = usize::try_from(r.u64()?).map_err(|_| "step count")?;
        if count > state.len() / STEP_BYTES {
            return Err("step count larger than the state".to_string());
        }
        let mut steps = Vec::with_capacity(count);
        for _ in 0..count {
            let loc = StepLoc {
                offset: r.u64()?,
                segment_base: r.u64()?,
                position: r.u32()?,
                frame_len: r.u32()?,
                entry_hash: r.array::<32>()?,
                step_key: r.array::<16>()?,
            };
            if loc.offset >= next_offset
                || steps
                    .last()
                    .is_some_and(|p: &StepLoc| p.offset >= loc.offset)
            {
                return Err("step offsets out of order".to_string());
            }
            steps.push(loc);
        }
        let key = super::admission::run_key(tenant.as_bytes(), run_id.as_bytes());
        view.runs.insert(
            key,
            RunState {
                tenant,
                run_id,
                steps,
                last_offset,
                deleted,
            },
        );
    }
    let events = usize::try_from(r.u64()?).map_err(|_| "event count")?;
    if events > state.len() / EVENT_BYTES {
        return Err("event count larger than the state".to_string());
    }
    view.events.reserve(events);
    for _ in 0..events {
        let loc = EventLoc {
            offset: r.u64()?,
            segment_base: r.u64()?,
            position: r.u32()?,
            frame_len: r.u32()?,
        };
        if loc.offset >= next_offset || view.events.last().is_some_and(|p| p.offset >= loc.offset) {
            return Err("event offsets out of order".to_string());
        }
        view.events.push(loc);
    }
    let pending = r.u32()?;
    for _ in 0..pending {
        let series_len = usize::try_from(r.u32()?).map_err(|_| "series length")?;
        let series = r.text(series_len)?;
        let tenant_len = usize::from(r.u8()?);
        let tenant = r.text(tenant_len)?;
        let first_offset = r.u64()?;
        let seen = r.u32()?;
        let parts = r.u32()?;
        let note_len = usize::try_from(r.u32()?).map_err(|_| "note length")?;
        let note = r.take(note_len)?.to_vec();
        if first_offset >= next_offset || seen >= parts {
            return Err("an unfinished erasure series that is out of range".to_string());
        }
        view.pending_erasures.insert(
            series,
            super::runs::PendingErasure {
                tenant,
                first_offset,
                seen,
                parts,
                note,
            },
        );
    }
    if r.pos != state.len() {
        return Err("trailing state bytes".to_string());
    }
    Ok(view)
}

/// The payload of a checkpoint-digest event: view name, logic version and the binding.
pub fn digest_event_payload(binding: &Binding) -> Vec<u8> {
    digest_event_payload_for(VIEW_NAME, VIEW_LOGIC_VERSION, binding)
}

/// The payload of a checkpoint-digest event of view `name`.
pub fn digest_event_payload_for(name: &str, logic: u32, binding: &Binding) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 + 8 + 64);
    out.extend_from_slice(&name_bytes(name));
    out.extend_from_slice(&logic.to_le_bytes());
    out.extend_from_slice(&binding.offset.to_le_bytes());
    out.extend_from_slice(&binding.global_hash);
    out.extend_from_slice(&binding.state_digest);
    out
}

/// Decodes a checkpoint-digest event payload of the runs view (`None` for other views or
/// malformed payloads).
pub fn parse_digest_event(payload: &[u8]) -> Option<(u32, Binding)> {
    parse_digest_event_for(VIEW_NAME, payload)
}

/// Decodes a checkpoint-digest event payload of view `name`.
pub fn parse_digest_event_for(name: &str, payload: &[u8]) -> Option<(u32, Binding)> {
    let mut r = Reader {
        bytes: payload,
        pos: 0,
    };
    if r.array::<16>().ok()? != name_bytes(name) {
        return None;
    }
    let logic = r.u32().ok()?;
    let binding = Binding {
        offset: r.u64().ok()?,
        global_hash: r.array::<32>().ok()?,
        state_digest: r.array::<32>().ok()?,
    };
    (r.pos == payload.len()).then_some((logic, binding))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunsView {
        let mut view = RunsView {
            next_offset: 10,
            ..RunsView::default()
        };
        for (tenant, run) in [("acme", "r1"), ("default", "r2")] {
            let steps = (0..3)
                .map(|i| StepLoc {
                    offset: i * 3 + u64::from(run == "r2"),
                    segment_base: 0,
                    position: 64 + i as u32 * 100,
                    frame_len: 100,
                    entry_hash: [i as u8; 32],
                    step_key: [7; 16],
                })
                .collect();
            view.runs.insert(
                super::super::admission::run_key(tenant.as_bytes(), run.as_bytes()),
                RunState {
                    tenant: tenant.to_string(),
                    run_id: run.to_string(),
                    steps,
                    last_offset: 7,
                    deleted: run == "r2",
                },
            );
        }
        view.pending_erasures.insert(
            "series-1".to_string(),
            super::super::runs::PendingErasure {
                tenant: "acme".to_string(),
                first_offset: 8,
                seen: 2,
                parts: 5,
                note: br#"{"op":"delete-run"}"#.to_vec(),
            },
        );
        view
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        // Proves encode/decode round-trips every part of the state (runs, deleted flags,
        // unfinished erasure series) and encoding is deterministic.
        let view = sample();
        let (bytes, binding) = encode(&view, &[9; 32]);
        let (again, b2) = decode(&bytes).unwrap();
        assert_eq!(binding, b2);
        assert_eq!(again.runs, view.runs);
        assert_eq!(again.pending_erasures, view.pending_erasures);
        assert_eq!(again.next_offset, 10);
        assert_eq!(encode(&again, &[9; 32]).0, bytes, "same state, same bytes");
        let event = digest_event_payload(&binding);
        assert_eq!(
            parse_digest_event(&event),
            Some((VIEW_LOGIC_VERSION, binding))
        );
    }

    #[test]
    fn any_damage_is_refused() {
        let (bytes, _) = encode(&sample(), &[9; 32]);
        for i in [0, 9, 13, 40, 100, bytes.len() - 5, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "byte {i}");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[]).is_err());
    }
}

/// Checkpoint files on disk: listing, loading against the log, writing atomically.
pub mod store {
    use std::io::Write;
    use std::path::Path;

    use super::{decode, encode, file_name, parse_file_name, Binding, DIR};
    use crate::error::Error;
    use crate::ledger::runs::RunsView;
    use crate::log::LogReader;

    /// Creates `dir` (and its parents) with mode 0700, as the log directory is.
    pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)
    }

    /// Creates (truncating) `path` with mode 0600, as the log's files are.
    pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(path)
    }

    /// How the view was loaded when the ledger opened.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct LoadReport {
        /// Offset of the checkpoint loaded (`None`: rebuilt from the start of the log).
        pub checkpoint_offset: Option<u64>,
        /// Checkpoints refused, with why (they are left in place, never used).
        pub rejected: Vec<String>,
        /// Records applied after the checkpoint (or from 0) to reach the durable end.
        pub tail_records: u64,
    }

    /// Checkpoint offsets present in `dir`, newest first.
    pub fn list(dir: &Path) -> Vec<u64> {
        list_by(dir, parse_file_name)
    }

    /// Offsets of the files in `dir`'s checkpoint directory that `parse` names, newest first.
    pub(crate) fn list_by(dir: &Path, parse: fn(&str) -> Option<u64>) -> Vec<u64> {
        let mut out: Vec<u64> = std::fs::read_dir(dir.join(DIR))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().to_str().and_then(parse))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }

    /// Loads the newest checkpoint that agrees with the log (offset durable, global hash
    /// equal), collecting why others were refused; an empty view when none does.
    pub fn load(dir: &Path, reader: &LogReader) -> Result<(RunsView, LoadReport), Error> {
        let mut report = LoadReport::default();
        let snapshot = reader.snapshot()?;
        for offset in list(dir) {
            let name = file_name(offset);
            let refuse = |why: String| format!("{DIR}/{name}: {why}");
            let bytes = match std::fs::read(dir.join(DIR).join(&name)) {
                Ok(b) => b,
                Err(e) => {
                    report.rejected.push(refuse(format!("unreadable: {e}")));
                    continue;
                }
            };
            let (mut view, binding) = match decode(&bytes) {
                Ok(v) => v,
                Err(why) => {
                    report.rejected.push(refuse(why));
                    continue;
                }
            };
            if binding.offset != offset {
                report
                    .rejected
                    .push(refuse(format!("holds offset {}", binding.offset)));
                continue;
            }
            if offset > snapshot.head.next_offset {
                report.rejected.push(refuse(format!(
                    "offset {offset} is past the durable end {}",
                    snapshot.head.next_offset
                )));
                continue;
            }
            let log_hash = match offset.checked_sub(1) {
                None => [0; 32],
                Some(last) => match reader.get(last)? {
                    Some(record) => record.view().hash(),
                    None => [0xff; 32],
                },
            };
            if log_hash != binding.global_hash {
                report.rejected.push(refuse(format!(
                    "its global hash differs from the log's at offset {offset}"
                )));
                continue;
            }
            view.loaded_from = Some(binding);
            report.checkpoint_offset = Some(offset);
            return Ok((view, report));
        }
        Ok((RunsView::default(), report))
    }

    /// Writes a checkpoint of `view` (bound to `global_hash`, the hash of record
    /// `view.next_offset − 1`) as a new immutable file: temporary file, fsync, rename, fsync of
    /// the directory. Keeps the newest `keep` checkpoints and removes older ones.
    pub fn write(
        dir: &Path,
        view: &RunsView,
        global_hash: &[u8; 32],
        keep: usize,
    ) -> Result<Binding, Error> {
        let (bytes, binding) = encode(view, global_hash);
        install(
            dir,
            &bytes,
            binding.offset,
            file_name,
            parse_file_name,
            keep,
        )?;
        Ok(binding)
    }

    /// Writes a checkpoint file's `bytes` for `offset` into `dir`'s checkpoint directory
    /// (created 0700 when missing) with [`write_atomic`], then keeps only the newest `keep`
    /// files that `parse` recognises.
    pub(crate) fn install(
        dir: &Path,
        bytes: &[u8],
        offset: u64,
        name: fn(u64) -> String,
        parse: fn(&str) -> Option<u64>,
        keep: usize,
    ) -> Result<(), Error> {
        let cdir = dir.join(DIR);
        let io = |what: &str, e| Error::io(format!("{what} in {}", cdir.display()), e);
        create_private_dir(&cdir).map_err(|e| io("creating the checkpoint directory", e))?;
        write_atomic(&cdir, &name(offset), bytes).map_err(|e| io("writing a checkpoint", e))?;
        for old in list_by(dir, parse).into_iter().skip(keep) {
            let _ = std::fs::remove_file(cdir.join(name(old)));
        }
        Ok(())
    }

    /// Writes `bytes` as `cdir/name`: temporary file, fsync, rename, fsync of the directory.
    pub(crate) fn write_atomic(cdir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = cdir.join(format!(".{name}.tmp-{}", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let mut f = create_private_file(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, cdir.join(name))?;
            std::fs::File::open(cdir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// The global hash of record `offset − 1` (zeros for offset 0; all ones when missing).
    pub(crate) fn hash_before(reader: &LogReader, offset: u64) -> Result<[u8; 32], Error> {
        Ok(match offset.checked_sub(1) {
            None => [0; 32],
            Some(last) => match reader.get(last)? {
                Some(record) => record.view().hash(),
                None => [0xff; 32],
            },
        })
    }
}

/// Checkpoints of the governance views (`crate::governance::GovState`): files
/// `checkpoints/governance-<offset>.ckpt` in the layout above, view name `governance`, the
/// state bytes the views' JSON (maps in key order, so the same state gives the same bytes).
/// They are written with the runs view's checkpoints, at the same offsets, each followed by
/// its own checkpoint-digest event (view name `governance`), so their digests are chained in
/// the log and a checkpoint rewritten consistently is refused; a writer that erases
/// governance slots removes them all (they may hold what was erased).
pub mod governance {
    use std::path::Path;

    use super::store::{hash_before, install};
    use super::{seal, unseal, Binding, DIR};
    use crate::error::Error;
    use crate::governance::GovState;
    use crate::log::LogReader;

    /// The view name in the file header.
    pub const VIEW: &str = "governance";
    /// Version of the governance views' logic and state layout (2: lineage archives and the
    /// snapshot register).
    pub const LOGIC_VERSION: u32 = 2;

    /// The file name of the checkpoint at `offset`.
    pub fn file_name(offset: u64) -> String {
        format!("{VIEW}-{offset:020}.ckpt")
    }

    fn parse_file_name(name: &str) -> Option<u64> {
        let digits = name.strip_prefix("governance-")?.strip_suffix(".ckpt")?;
        (digits.len() == 20).then(|| digits.parse().ok()).flatten()
    }

    /// Offsets of the governance checkpoints in `dir`, newest first.
    pub fn list(dir: &Path) -> Vec<u64> {
        super::store::list_by(dir, parse_file_name)
    }

    /// Writes `state` (covering every record below its `next_offset`) as a checkpoint bound
    /// to `global_hash`; keeps the newest `keep`.
    pub fn write(
        dir: &Path,
        state: &GovState,
        global_hash: &[u8; 32],
        keep: usize,
    ) -> Result<Binding, Error> {
        let json = serde_json::to_vec(state).map_err(|e| Error::InvalidInput {
            reason: format!("the governance state does not serialise: {e}"),
        })?;
        let (bytes, binding) = seal(VIEW, LOGIC_VERSION, state.next_offset(), global_hash, &json);
        install(
            dir,
            &bytes,
            binding.offset,
            file_name,
            parse_file_name,
            keep,
        )?;
        Ok(binding)
    }

    /// The newest governance checkpoint at or below `max_offset` that agrees with the log,
    /// and why others were refused.
    pub fn load(
        dir: &Path,
        reader: &LogReader,
        max_offset: u64,
    ) -> Result<(Option<GovState>, Vec<String>), Error> {
        let mut rejected = Vec::new();
        for offset in list(dir).into_iter().filter(|o| *o <= max_offset) {
            let name = file_name(offset);
            let refuse = |why: String| format!("{DIR}/{name}: {why}");
            let bytes = match std::fs::read(dir.join(DIR).join(&name)) {
                Ok(b) => b,
                Err(e) => {
                    rejected.push(refuse(format!("unreadable: {e}")));
                    continue;
                }
            };
            let (binding, json) = match unseal(&bytes, VIEW, LOGIC_VERSION) {
                Ok(v) => v,
                Err(why) => {
                    rejected.push(refuse(why));
                    continue;
                }
            };
            if binding.offset != offset || hash_before(reader, offset)? != binding.global_hash {
                rejected.push(refuse(format!(
                    "it does not agree with the log at offset {offset}"
                )));
                continue;
            }
            if let Some(at) = digest_disagrees(reader, &binding)? {
                rejected.push(refuse(format!(
                    "it disagrees with the checkpoint-digest event at offset {at}"
                )));
                continue;
            }
            match serde_json::from_slice::<GovState>(json) {
                Ok(state) if state.next_offset() == offset => return Ok((Some(state), rejected)),
                Ok(_) => rejected.push(refuse("its state covers another offset".to_string())),
                Err(e) => rejected.push(refuse(format!("its state does not parse: {e}"))),
            }
        }
        Ok((None, rejected))
    }

    /// Records after a checkpoint's offset searched for its digest event (the writer appends
    /// it right after the runs view's, other appends may come between).
    const DIGEST_SEARCH: usize = 64;

    /// The offset of a digest event for this checkpoint's offset whose binding differs, if
    /// any (none found: a crash lost it, and the checkpoint stands on its own checks).
    fn digest_disagrees(reader: &LogReader, binding: &Binding) -> Result<Option<u64>, Error> {
        for record in reader.scan(binding.offset)?.take(DIGEST_SEARCH) {
            let record = record?;
            let view = record.view();
            if view.kind() != super::KIND_CHECKPOINT_DIGEST
                || view.tenant() != super::SYSTEM_TENANT.as_bytes()
            {
                continue;
            }
            if let Some((logic, event)) = super::parse_digest_event_for(VIEW, view.payload()) {
                if logic == LOGIC_VERSION && event.offset == binding.offset {
                    return Ok((event != *binding).then_some(view.offset()));
                }
            }
        }
        Ok(None)
    }

    /// Removes every governance checkpoint (after an erasure of governance slots).
    pub fn remove_all(dir: &Path) {
        for offset in list(dir) {
            let _ = std::fs::remove_file(dir.join(DIR).join(file_name(offset)));
        }
    }
}
