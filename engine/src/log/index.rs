//! The writer's side of the sparse index: one entry every `index_interval_bytes` of segment,
//! appended to `<base>.idx` with each flush and never fsynced (it is a rebuildable hint).

use std::sync::Arc;

use crate::error::Error;
use crate::format::frame;
use crate::format::index::{encode_header, IndexEntry};
use crate::format::segment_header::{segment_file_name, SEGMENT_HEADER_BYTES};
use crate::storage::{OpenMode, Storage, StorageFile};

use super::options::{LogOptions, RecoveryReport};
use super::segments::{self, index_file_name};

/// Index state of the active segment.
#[derive(Debug)]
pub struct IndexWriter {
    file: Arc<dyn StorageFile>,
    name: String,
    file_len: u64,
    pending: Vec<u8>,
    last_position: Option<u64>,
    interval_bytes: u64,
}

impl IndexWriter {
    /// Creates (or replaces) the index of segment `base` holding `entries`.
    pub fn create(
        storage: &dyn Storage,
        base: u64,
        entries: &[IndexEntry],
        interval_bytes: u64,
    ) -> Result<IndexWriter, Error> {
        let name = index_file_name(base);
        let file = storage
            .open(&name, OpenMode::CreateOrOpen)
            .map_err(|e| Error::io(format!("opening {name}"), e))?;
        let mut bytes = encode_header().to_vec();
        for e in entries {
            bytes.extend_from_slice(&e.encode());
        }
        file.set_len(0)
            .map_err(|e| Error::io(format!("truncating {name}"), e))?;
        file.write_all_at(&bytes, 0)
            .map_err(|e| Error::io(format!("writing {name}"), e))?;
        Ok(IndexWriter {
            file,
            name,
            file_len: bytes.len() as u64,
            pending: Vec::new(),
            last_position: entries.last().map(|e| e.position),
            interval_bytes,
        })
    }

    /// Offers a record; it gets an entry when it starts a new interval.
    pub fn offer(&mut self, offset: u64, position: u64, timestamp_ns: u64) {
        let due = self
            .last_position
            .is_none_or(|last| position >= last + self.interval_bytes);
        if due {
            self.pending.extend_from_slice(
                &IndexEntry {
                    offset,
                    position,
                    timestamp_ns,
                }
                .encode(),
            );
            self.last_position = Some(position);
        }
    }

    /// Writes pending entries to the file (no fsync).
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&self.pending, self.file_len)
            .map_err(|e| Error::io(format!("writing {}", self.name), e))?;
        self.file_len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// The end of the active segment's recovered prefix.
#[derive(Debug, Clone, Copy)]
struct SegmentEnd {
    base: u64,
    pos: u64,
}

/// The active segment's index entries below `end` = (base, position), checked against the segment; rebuilt by
/// walking the segment's frames when the file is missing or does not match.
pub(super) fn active_index_entries(
    storage: &dyn Storage,
    file: &dyn StorageFile,
    options: &LogOptions,
    end: (u64, u64),
    report: &mut RecoveryReport,
) -> Result<Vec<IndexEntry>, Error> {
    let end = SegmentEnd {
        base: end.0,
        pos: end.1,
    };
    let name = index_file_name(end.base);
    let stored = storage.open(&name, OpenMode::Read).ok().and_then(|f| {
        let len = usize::try_from(f.len().ok()?).ok()?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, 0).ok()?;
        crate::format::index::decode_file(&buf)
    });
    let map = file
        .map(0, end.pos)
        .map_err(|e| Error::io(format!("mapping {}", segment_file_name(end.base)), e))?;
    let frame_at = |pos: u64| {
        usize::try_from(pos)
            .ok()
            .and_then(|p| map.get(p..))
            .and_then(frame::decode_unchecked)
    };
    if let Some(mut entries) = stored {
        entries.retain(|e| e.position < end.pos);
        let consistent = entries
            .last()
            .is_none_or(|e| frame_at(e.position).is_some_and(|v| v.offset() == e.offset));
        let none_missing = !entries.is_empty() || end.pos == SEGMENT_HEADER_BYTES as u64;
        if consistent && none_missing {
            return Ok(entries);
        }
    }
    report.indexes_rebuilt += 1;
    Ok(index_entries_of(
        &map,
        end.pos,
        options.index_interval_bytes,
    ))
}

/// Sparse index entries of the segment bytes `map` (from position 0) up to `end`, one per
/// `interval_bytes`, walking frames without checking them (verify does that); the walk stops
/// at the first frame that does not parse.
fn index_entries_of(map: &[u8], end: u64, interval_bytes: u64) -> Vec<IndexEntry> {
    let mut entries = Vec::new();
    let mut last: Option<u64> = None;
    let mut pos = SEGMENT_HEADER_BYTES as u64;
    while pos < end {
        let frame = usize::try_from(pos).ok().and_then(|p| map.get(p..));
        let Some(v) = frame.and_then(frame::decode_unchecked) else {
            break;
        };
        if last.is_none_or(|l| pos >= l + interval_bytes) {
            entries.push(IndexEntry {
                offset: v.offset(),
                position: pos,
                timestamp_ns: v.timestamp_ns(),
            });
            last = Some(pos);
        }
        pos += v.frame_len().max(8);
    }
    entries
}

/// Rebuilds the index of every sealed segment whose index file is missing or unreadable (the
/// active segment's is handled by `active_index_entries`). Sealed segments are complete, so
/// walking their frames is safe; a frame that does not parse ends the walk (verify reports it).
pub(super) fn rebuild_sealed_indexes(
    storage: &dyn Storage,
    options: &LogOptions,
    bases: &[u64],
    active: u64,
    report: &mut RecoveryReport,
) -> Result<(), Error> {
    let names = storage
        .list()
        .map_err(|e| Error::io("listing the log directory", e))?;
    for base in bases.iter().copied().filter(|b| *b < active) {
        let name = index_file_name(base);
        // Readable means a valid header and at least the segment's first entry: index files
        // are never fsynced, so after a power cut one may hold nothing but its header.
        let readable = names.contains(&name)
            && storage.open(&name, OpenMode::Read).ok().is_some_and(|f| {
                let len = f
                    .len()
                    .ok()
                    .and_then(|l| usize::try_from(l).ok())
                    .unwrap_or(0);
                let mut bytes = vec![0u8; len];
                f.read_exact_at(&mut bytes, 0).is_ok()
                    && crate::format::index::decode_file(&bytes)
                        .is_some_and(|e| e.first().is_some_and(|first| first.offset == base))
            });
        if readable {
            continue;
        }
        let file = segments::open_segment(storage, base, OpenMode::Read)?;
        let len = file.len().map_err(|e| {
            Error::io(
                format!("reading the length of {}", segment_file_name(base)),
                e,
            )
        })?;
        let map = file
            .map(0, len)
            .map_err(|e| Error::io(format!("mapping {}", segment_file_name(base)), e))?;
        let entries = index_entries_of(&map, len, options.index_interval_bytes);
        let mut writer =
            IndexWriter::create(storage, base, &entries, options.index_interval_bytes)?;
        writer.flush()?;
        report.indexes_rebuilt += 1;
    }
    Ok(())
}
