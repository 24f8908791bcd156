//! Opening a log for writing: create it, or find where the durable prefix ends.
//!
//! A clean reopen reads HEAD, checks the last durable frame it names and the active segment's
//! length, and is done: O(1). After a crash, recovery validates frames from HEAD's position
//! (the recovery hint) to the end of the last segment. Only a suffix of zeros or garbage is a
//! torn tail: it is cut off and reported. A bad frame followed by a valid frame that was
//! written after the bad frame's bytes were known durable (its `synced_len` is past the bad
//! position) is corruption, never a silent truncation. An incomplete batch at the end is cut.

use std::sync::Arc;

use crate::error::Error;
use crate::format::chain::GENESIS_HASH;
use crate::format::erasure::{self, SlotRef, KIND_ERASE};
use crate::format::frame::{
    self, FrameView, BATCH_FIRST, BATCH_LAST, FRAME_BYTES_STRUCTURAL_MAX, FRAME_HEADER_BYTES,
};
use crate::format::head::{Head, HEAD_FILE_BYTES, NONE};
use crate::format::segment_header::{segment_file_name, SEGMENT_HEADER_BYTES};
use crate::storage::{OpenMode, Storage, StorageFile};

use super::index::IndexWriter;
use super::notify::Notify;
use super::options::{LogOptions, RecoveryReport};
use super::reader::{read_head, LogReader};
use super::segments::{self, index_file_name, HEAD_FILE_NAME};
use super::sequencer::WriterState;

/// The chain position after the last complete batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    base: u64,
    pos: u64,
    next_offset: u64,
    prev_hash: [u8; 32],
    last_timestamp_ns: u64,
    last_frame_pos: u64,
}

/// Opens or creates the writer state.
pub fn recover(
    storage: Arc<dyn Storage>,
    options: LogOptions,
    notify: Arc<Notify>,
) -> Result<(WriterState, RecoveryReport), Error> {
    let mut report = RecoveryReport::default();
    let head = match read_head(storage.as_ref()) {
        Ok(h) => h,
        Err(Error::Corrupt(_)) => None,
        Err(e) => return Err(e),
    };
    let mut bases = segments::list_segments(storage.as_ref())?;
    if head.is_none() && bases.is_empty() {
        report.created = true;
        segments::create_segment(storage.as_ref(), 0, GENESIS_HASH)?;
        bases.push(0);
    }
    let start = match head {
        Some(h) => start_from_head(storage.as_ref(), &h, &bases)?,
        None => {
            report.head_missing = !report.created;
            start_from_last_segment(storage.as_ref(), &mut bases, &mut report)?
        }
    };
    report.clean = head.is_some_and(|h| h.is_clean());
    let mut pending_erasures: Vec<(u64, Vec<SlotRef>)> = Vec::new();
    let end = scan_tail(
        storage.as_ref(),
        start,
        &bases,
        &mut pending_erasures,
        &mut report,
    )?;
    report.records_recovered = end.next_offset - start.next_offset;
    report.next_offset = end.next_offset;
    if let Some(h) = head.filter(|h| h.erase_pending_from != NONE) {
        let reader = LogReader::with_storage(storage.clone(), options);
        collect_erasures(&reader, h.erase_pending_from, &mut pending_erasures)?;
    }
    super::index::rebuild_sealed_indexes(
        storage.as_ref(),
        &options,
        &bases,
        end.base,
        &mut report,
    )?;
    let generation = head.map_or(0, |h| h.generation);
    let mut state = build_state(
        storage.clone(),
        options,
        notify,
        end,
        generation,
        &mut report,
    )?;
    state.erase_pending_from = pending_erasures
        .iter()
        .map(|(o, _)| *o)
        .min()
        .unwrap_or(NONE);
    publish_recovered(&mut state, &storage, &mut report, &pending_erasures)?;
    Ok((state, report))
}

/// Publishes the recovered state, then redoes interrupted erasures.
///
/// HEAD is rewritten to clear the clean flag; it is fsynced only when recovery changed
/// something, so a clean reopen costs no fsync (a stale clean flag is harmless: recovery scans
/// from HEAD's position whatever the flag says).
fn publish_recovered(
    state: &mut WriterState,
    storage: &Arc<dyn Storage>,
    report: &mut RecoveryReport,
    pending_erasures: &[(u64, Vec<SlotRef>)],
) -> Result<(), Error> {
    let sync_head = |state: &WriterState| {
        state
            .head_file
            .sync_data()
            .map_err(|e| Error::io("syncing HEAD", e))
    };
    state.publish(0)?;
    let changed = report.created
        || report.head_missing
        || report.records_recovered > 0
        || report.torn_bytes_truncated > 0
        || report.segments_removed > 0
        || report.indexes_rebuilt > 0
        || !pending_erasures.is_empty();
    if changed {
        sync_head(state)?;
    }
    if report.created || report.head_missing {
        storage
            .sync_dir()
            .map_err(|e| Error::io("syncing the log directory", e))?;
    }
    if !pending_erasures.is_empty() {
        let reader = LogReader::with_storage(storage.clone(), state.options);
        for (offset, targets) in pending_erasures {
            super::erase::redo(storage, &reader, *offset, targets)?;
            report.erasures_redone += 1;
        }
        state.erase_pending_from = NONE;
        state.publish(0)?;
        sync_head(state)?;
    }
    Ok(())
}

fn start_from_head(storage: &dyn Storage, head: &Head, bases: &[u64]) -> Result<Cursor, Error> {
    let name = segment_file_name(head.active_base);
    if !bases.contains(&head.active_base) {
        return Err(Error::corrupt(
            &name,
            0,
            None,
            "the active segment named by HEAD is missing",
        ));
    }
    let file = segments::open_segment(storage, head.active_base, OpenMode::Read)?;
    let header = segments::read_header(storage, file.as_ref(), head.active_base)?;
    let len = file
        .len()
        .map_err(|e| Error::io(format!("reading the length of {name}"), e))?;
    if len < head.durable_len {
        return Err(Error::corrupt(
            &name,
            len,
            None,
            format!(
                "segment is {len} bytes, shorter than the durable end {} that HEAD published",
                head.durable_len
            ),
        ));
    }
    if head.last_frame_pos == NONE {
        let empty =
            head.durable_len == SEGMENT_HEADER_BYTES as u64 && head.next_offset == head.active_base;
        if !empty || header.base_prev_hash != head.head_hash {
            return Err(Error::corrupt(
                HEAD_FILE_NAME,
                0,
                None,
                "HEAD disagrees with its active segment",
            ));
        }
    } else {
        check_last_frame(file.as_ref(), &name, head)?;
    }
    Ok(Cursor {
        base: head.active_base,
        pos: head.durable_len,
        next_offset: head.next_offset,
        prev_hash: head.head_hash,
        last_timestamp_ns: head.last_timestamp_ns,
        last_frame_pos: head.last_frame_pos,
    })
}

/// The frame HEAD names as the last durable one must be there, intact, with HEAD's hash.
fn check_last_frame(file: &dyn StorageFile, name: &str, head: &Head) -> Result<(), Error> {
    let len = head.durable_len.saturating_sub(head.last_frame_pos);
    let map = file
        .map(head.last_frame_pos, len)
        .map_err(|e| Error::io(format!("mapping {name}"), e))?;
    let offset = head.next_offset.checked_sub(1);
    let view = frame::decode(&map, FRAME_BYTES_STRUCTURAL_MAX).map_err(|e| {
        Error::corrupt(
            name,
            head.last_frame_pos,
            offset,
            format!("last durable frame: {e}"),
        )
    })?;
    let matches = view.frame_len() == len
        && Some(view.offset()) == offset
        && view.timestamp_ns() == head.last_timestamp_ns
        && view.hash() == head.head_hash
        && view.compute_hash() == head.head_hash;
    if !matches {
        return Err(Error::verify(
            name,
            head.last_frame_pos,
            view.offset(),
            "the last durable frame does not match HEAD's offset and head hash",
        ));
    }
    Ok(())
}

/// Without HEAD: drop a last segment whose creation was interrupted, then start at the first
/// frame of the last segment (its header carries the chain position at its base).
fn start_from_last_segment(
    storage: &dyn Storage,
    bases: &mut Vec<u64>,
    report: &mut RecoveryReport,
) -> Result<Cursor, Error> {
    while let Some(base) = bases.last().copied() {
        let file = segments::open_segment(storage, base, OpenMode::Read)?;
        match segments::read_header(storage, file.as_ref(), base) {
            Ok(header) => {
                return Ok(Cursor {
                    base,
                    pos: SEGMENT_HEADER_BYTES as u64,
                    next_offset: header.base_offset,
                    prev_hash: header.base_prev_hash,
                    last_timestamp_ns: 0,
                    last_frame_pos: NONE,
                });
            }
            Err(Error::Corrupt(c)) if bases.len() > 1 || base == 0 => {
                if !holds_nothing(file.as_ref())? {
                    return Err(Error::Corrupt(c));
                }
                remove_segment(storage, base)?;
                report.segments_removed += 1;
                bases.pop();
                if bases.is_empty() {
                    segments::create_segment(storage, 0, GENESIS_HASH)?;
                    bases.push(0);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::corrupt("", 0, None, "no segment left to recover"))
}

/// Whether a segment whose header does not decode holds nothing but its header space: only
/// then was its creation interrupted (headers are fsynced before any frame is written), and
/// only then may it be removed. A damaged header in front of frames is corruption.
fn holds_nothing(file: &dyn StorageFile) -> Result<bool, Error> {
    let len = file
        .len()
        .map_err(|e| Error::io("reading a segment's length", e))?;
    if len <= SEGMENT_HEADER_BYTES as u64 {
        return Ok(true);
    }
    let rest = file
        .map(
            SEGMENT_HEADER_BYTES as u64,
            len - SEGMENT_HEADER_BYTES as u64,
        )
        .map_err(|e| Error::io("reading a segment", e))?;
    Ok(rest.iter().all(|b| *b == 0))
}

fn remove_segment(storage: &dyn Storage, base: u64) -> Result<(), Error> {
    let name = segment_file_name(base);
    storage
        .remove(&name)
        .map_err(|e| Error::io(format!("removing {name}"), e))?;
    let _ = storage.remove(&index_file_name(base));
    storage
        .sync_dir()
        .map_err(|e| Error::io("syncing the log directory", e))
}

/// Validates frames from `start` to the end of the last segment and cuts a torn tail.
fn scan_tail(
    storage: &dyn Storage,
    start: Cursor,
    bases: &[u64],
    erasures: &mut Vec<(u64, Vec<SlotRef>)>,
    report: &mut RecoveryReport,
) -> Result<Cursor, Error> {
    let mut committed = start;
    let later: Vec<u64> = bases.iter().copied().filter(|b| *b >= start.base).collect();
    for (i, base) in later.iter().copied().enumerate() {
        let is_last = i + 1 == later.len();
        let name = segment_file_name(base);
        let file = segments::open_segment(storage, base, OpenMode::ReadWrite)?;
        if base != start.base {
            match segments::read_header(storage, file.as_ref(), base) {
                Ok(h)
                    if h.base_offset == committed.next_offset
                        && h.base_prev_hash == committed.prev_hash => {}
                Ok(_) => {
                    return Err(Error::corrupt(
                        &name,
                        0,
                        None,
                        "segment does not continue the chain",
                    ))
                }
                Err(Error::Corrupt(c)) if is_last => {
                    if !holds_nothing(file.as_ref())? {
                        return Err(Error::Corrupt(c));
                    }
                    remove_segment(storage, base)?;
                    report.segments_removed += 1;
                    break;
                }
                Err(e) => return Err(e),
            }
            committed = Cursor {
                base,
                pos: SEGMENT_HEADER_BYTES as u64,
                last_frame_pos: NONE,
                ..committed
            };
        }
        let len = file
            .len()
            .map_err(|e| Error::io(format!("reading the length of {name}"), e))?;
        let end = scan_segment(file.as_ref(), &name, committed, len, erasures)?;
        let torn = len - end.pos;
        if torn > 0 && !is_last {
            return Err(Error::corrupt(
                &name,
                end.pos,
                Some(end.next_offset),
                "damaged frame in a sealed segment",
            ));
        }
        let kept_unsynced = end.pos > committed.pos;
        committed = end;
        if kept_unsynced && torn == 0 {
            // Frames past the recovery point may never have been fsynced (a killed writer's
            // page cache): make them durable before a HEAD that covers them is published.
            file.sync_data()
                .map_err(|e| Error::io(format!("syncing {name}"), e))?;
        }
        if torn > 0 {
            file.set_len(end.pos)
                .map_err(|e| Error::io(format!("truncating {name}"), e))?;
            file.sync_data()
                .map_err(|e| Error::io(format!("syncing {name}"), e))?;
            report.torn_bytes_truncated += torn;
        }
    }
    Ok(committed)
}

/// Walks one segment from `from`; returns the cursor after its last complete batch.
fn scan_segment(
    file: &dyn StorageFile,
    name: &str,
    from: Cursor,
    len: u64,
    erasures: &mut Vec<(u64, Vec<SlotRef>)>,
) -> Result<Cursor, Error> {
    let map = file
        .map(from.pos, len.saturating_sub(from.pos))
        .map_err(|e| Error::io(format!("mapping {name}"), e))?;
    let mut committed = from;
    let mut cursor = from;
    let mut batch_erasures: Vec<(u64, Vec<SlotRef>)> = Vec::new();
    // Recovery decodes against the format's own maximum, not the configured limits: a
    // smaller limit today must not turn yesterday's durable frames into a "torn tail".
    let limit = FRAME_BYTES_STRUCTURAL_MAX;
    while cursor.pos < len {
        let rel = usize::try_from(cursor.pos - from.pos).unwrap_or(usize::MAX);
        let bytes = map.get(rel..).unwrap_or(&[]);
        let view = match frame::decode(bytes, limit) {
            Ok(v) => v,
            Err(e) => {
                if let Some(witness) =
                    find_witness(&map, from.pos, cursor.pos, cursor.next_offset, limit)
                {
                    return Err(Error::corrupt(
                        name,
                        cursor.pos,
                        Some(cursor.next_offset),
                        format!("{e}; a valid frame written after these bytes were durable follows at byte {witness}"),
                    ));
                }
                break;
            }
        };
        check_link(&view, &cursor, name)?;
        if view.batch_flags() & BATCH_FIRST != 0 {
            committed = cursor;
            batch_erasures.clear();
        }
        if view.kind() == KIND_ERASE {
            let (targets, _) = erasure::decode(view.payload()).ok_or_else(|| {
                Error::corrupt(
                    name,
                    cursor.pos,
                    Some(view.offset()),
                    "malformed erasure record",
                )
            })?;
            batch_erasures.push((view.offset(), targets));
        }
        cursor = Cursor {
            base: cursor.base,
            pos: cursor.pos + view.frame_len(),
            next_offset: cursor.next_offset + 1,
            prev_hash: view.hash(),
            last_timestamp_ns: view.timestamp_ns(),
            last_frame_pos: cursor.pos,
        };
        if view.batch_flags() & BATCH_LAST != 0 {
            committed = cursor;
            erasures.append(&mut batch_erasures);
        }
    }
    Ok(committed)
}

fn check_link(view: &FrameView<'_>, cursor: &Cursor, name: &str) -> Result<(), Error> {
    let why = if view.offset() != cursor.next_offset {
        Some(format!(
            "expected offset {}, found {}",
            cursor.next_offset,
            view.offset()
        ))
    } else if view.prev_hash() != cursor.prev_hash {
        Some("prev_hash does not link to the previous record".to_string())
    } else if view.compute_hash() != view.hash() {
        Some("stored hash does not match the recomputed chain hash".to_string())
    } else if view.timestamp_ns() < cursor.last_timestamp_ns {
        Some("frame timestamp goes backwards".to_string())
    } else {
        None
    };
    match why {
        Some(reason) => Err(Error::verify(name, cursor.pos, view.offset(), reason)),
        None => Ok(()),
    }
}

/// Looks past a bad frame at `bad_pos` for a valid frame that proves the bad bytes had been
/// durable: one with an offset at or after the expected one and `synced_len > bad_pos`.
fn find_witness(
    map: &[u8],
    map_pos: u64,
    bad_pos: u64,
    next_offset: u64,
    limit: u64,
) -> Option<u64> {
    let mut pos = bad_pos + 8;
    let end = map_pos + map.len() as u64;
    while pos + FRAME_HEADER_BYTES as u64 <= end {
        let rel = usize::try_from(pos - map_pos).ok()?;
        let bytes = map.get(rel..)?;
        if let Ok(v) = frame::decode(bytes, limit) {
            if v.offset() >= next_offset && v.synced_len() > bad_pos {
                return Some(pos);
            }
        }
        pos += 8;
    }
    None
}

/// Erasure records at or after `from` in the durable prefix.
fn collect_erasures(
    reader: &LogReader,
    from: u64,
    out: &mut Vec<(u64, Vec<SlotRef>)>,
) -> Result<(), Error> {
    for record in reader.scan(from)? {
        let record = record?;
        let view = record.view();
        if view.kind() != KIND_ERASE || out.iter().any(|(o, _)| *o == view.offset()) {
            continue;
        }
        let (targets, _) = erasure::decode(view.payload()).ok_or_else(|| {
            Error::corrupt(
                segment_file_name(record.segment_base()),
                record.position(),
                Some(view.offset()),
                "malformed erasure record",
            )
        })?;
        out.push((view.offset(), targets));
    }
    Ok(())
}

/// Builds the writer state at `end`, loading or rebuilding the active segment's index.
fn build_state(
    storage: Arc<dyn Storage>,
    options: LogOptions,
    notify: Arc<Notify>,
    end: Cursor,
    generation: u64,
    report: &mut RecoveryReport,
) -> Result<WriterState, Error> {
    let file = segments::open_segment(storage.as_ref(), end.base, OpenMode::ReadWrite)?;
    let head_file = storage
        .open(HEAD_FILE_NAME, OpenMode::CreateOrOpen)
        .map_err(|e| Error::io("opening HEAD", e))?;
    let head_len = head_file.len().map_err(|e| Error::io("reading HEAD", e))?;
    if head_len < HEAD_FILE_BYTES as u64 {
        head_file
            .set_len(HEAD_FILE_BYTES as u64)
            .map_err(|e| Error::io("sizing HEAD", e))?;
    }
    let entries = super::index::active_index_entries(
        storage.as_ref(),
        file.as_ref(),
        &options,
        (end.base, end.pos),
        report,
    )?;
    let index = IndexWriter::create(
        storage.as_ref(),
        end.base,
        &entries,
        options.index_interval_bytes,
    )?;
    Ok(WriterState {
        storage,
        options,
        notify,
        active_base: end.base,
        file,
        head_file,
        index,
        written_len: end.pos,
        flushed_len: end.pos,
        synced_len: end.pos,
        next_offset: end.next_offset,
        head_hash: end.prev_hash,
        last_timestamp_ns: end.last_timestamp_ns,
        last_frame_pos: end.last_frame_pos,
        generation,
        erase_pending_from: NONE,
        admission: None,
        buf: Vec::with_capacity(1 << 20),
        counters: Arc::default(),
    })
}
