//! Readers: a snapshot of the durable state from HEAD, and scans over memory-mapped windows of
//! the segments below it. Readers never read past the durable end the writer published, and
//! they work in any process, while a writer appends or after it crashed.

use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
use crate::format::frame;
use crate::format::head::{Head, HEAD_FILE_BYTES};
use crate::format::index::{self, IndexEntry};
use crate::format::segment_header::{segment_file_name, SEGMENT_HEADER_BYTES};
use crate::storage::{FileStorage, Mapped, OpenMode, Storage, StorageFile};

use super::notify::Notify;
use super::options::LogOptions;
pub use super::record::{OwnedSlot, Record};
use super::segments::{self, index_file_name, HEAD_FILE_NAME};

/// Read access to a log, in this process or another.
#[derive(Debug, Clone)]
pub struct LogReader {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) options: LogOptions,
    pub(crate) notify: Option<Arc<Notify>>,
    pub(crate) cache: Arc<ReaderCache>,
}

/// What a reader (and its clones) remembers between lookups: the segment list and the index
/// entries already read, which only ever grow (segments are never deleted and index entries
/// are appended, so a cached entry stays true; entries past a snapshot's durable end are
/// filtered on use), and a few segment files kept open for point reads.
#[derive(Debug, Default)]
pub(crate) struct ReaderCache {
    segments: std::sync::Mutex<Vec<u64>>,
    indexes: std::sync::Mutex<std::collections::HashMap<u64, Arc<Vec<IndexEntry>>>>,
    /// Segment files recently opened by point reads.
    files: std::sync::Mutex<Vec<PointFile>>,
}

/// A segment file kept open for point reads: its base, the file, and its length once sealed.
type PointFile = (u64, Arc<dyn StorageFile>, Option<u64>);

/// Bytes a point read fetches first (a typical frame fits; a larger one takes a second read).
const POINT_READ_BYTES: u64 = 2048;
/// Segment files a reader keeps open for point reads.
const POINT_FILES: usize = 8;

/// The durable state a reader works against: HEAD and the segments it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The published HEAD.
    pub head: Head,
    /// Base offsets of the visible segments, ascending; the last is `head.active_base`.
    pub segments: Vec<u64>,
}

/// Reads the HEAD file of `storage`; `Ok(None)` when it does not exist.
pub(crate) fn read_head(storage: &dyn Storage) -> Result<Option<Head>, Error> {
    let file = match storage.open(HEAD_FILE_NAME, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("opening HEAD", e)),
    };
    let mut buf = [0u8; HEAD_FILE_BYTES];
    for _attempt in 0..8 {
        let len = file.len().map_err(|e| Error::io("reading HEAD", e))?;
        let n = usize::try_from(len.min(HEAD_FILE_BYTES as u64)).unwrap_or(0);
        let dst = buf.get_mut(..n).unwrap_or(&mut []);
        file.read_exact_at(dst, 0)
            .map_err(|e| Error::io("reading HEAD", e))?;
        if let Some(head) = Head::decode_file(buf.get(..n).unwrap_or(&[])) {
            return Ok(Some(head));
        }
        // Both copies unreadable: either damage, or a race with a writer; look again.
        std::thread::yield_now();
    }
    Err(Error::corrupt(
        HEAD_FILE_NAME,
        0,
        None,
        "no valid copy of HEAD",
    ))
}

impl LogReader {
    /// Opens the log in `dir` for reading. A missing log is [`Error::NotFound`]; nothing is
    /// ever created.
    pub fn open(dir: &Path, options: LogOptions) -> Result<LogReader, Error> {
        if !dir.is_dir() {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
            });
        }
        let storage: Arc<dyn Storage> = Arc::new(FileStorage::new(dir));
        let reader = LogReader {
            storage,
            options,
            notify: None,
            cache: Arc::default(),
        };
        let has_head = reader.storage.exists(HEAD_FILE_NAME).unwrap_or(false);
        if !has_head && segments::list_segments(reader.storage.as_ref())?.is_empty() {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
            });
        }
        Ok(reader)
    }

    /// A reader over any storage.
    pub fn with_storage(storage: Arc<dyn Storage>, options: LogOptions) -> LogReader {
        LogReader {
            storage,
            options,
            notify: None,
            cache: Arc::default(),
        }
    }

    /// The options the reader uses.
    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    /// The durable state as published now.
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        let head = read_head(self.storage.as_ref())?.ok_or_else(|| {
            Error::corrupt(
                HEAD_FILE_NAME,
                0,
                None,
                "HEAD is missing; open the log for writing to recover it",
            )
        })?;
        let mut segments = {
            let mut cached = self
                .cache
                .segments
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !cached.contains(&head.active_base) {
                *cached = segments::list_segments(self.storage.as_ref())?;
            }
            cached.clone()
        };
        segments.retain(|b| *b <= head.active_base);
        if segments.last() != Some(&head.active_base) {
            return Err(Error::corrupt(
                segment_file_name(head.active_base),
                0,
                None,
                "the active segment named by HEAD is missing",
            ));
        }
        Ok(Snapshot { head, segments })
    }

    /// Scans records from `from` up to the durable end of the current snapshot.
    pub fn scan(&self, from: u64) -> Result<Scan, Error> {
        let snapshot = self.snapshot()?;
        Scan::new(self.clone(), snapshot, from)
    }

    /// Scans records from `from` within a given snapshot.
    pub fn scan_snapshot(&self, snapshot: Snapshot, from: u64) -> Result<Scan, Error> {
        Scan::new(self.clone(), snapshot, from)
    }

    /// The record at `offset`, or `Ok(None)` past the durable end.
    pub fn get(&self, offset: u64) -> Result<Option<Record>, Error> {
        self.scan(offset)?.next().transpose()
    }

    /// The record at a place an earlier scan reported ([`Record::segment_base`],
    /// [`Record::position`]), which must hold `offset`: one `pread` of the frame (two when it is
    /// larger than 2 KiB) and one CRC-checked decode, with no index lookup and no scan. Used by
    /// projections that remember where each record lives.
    pub fn read_at(
        &self,
        snapshot: &Snapshot,
        base: u64,
        position: u64,
        offset: u64,
    ) -> Result<Record, Error> {
        self.read_at_len(snapshot, base, position, offset, None)
    }

    /// [`LogReader::read_at`] when the frame's length is known too: one `pread` of exactly the
    /// frame (a wrong length is reported as damage by the decode).
    pub fn read_at_len(
        &self,
        snapshot: &Snapshot,
        base: u64,
        position: u64,
        offset: u64,
        frame_len: Option<u32>,
    ) -> Result<Record, Error> {
        let name = || segment_file_name(base);
        if offset >= snapshot.head.next_offset || !snapshot.segments.contains(&base) {
            return Err(Error::corrupt(
                name(),
                position,
                Some(offset),
                "a projection points past the durable log",
            ));
        }
        let (map, window_start) = self.point_window(snapshot, base, position, frame_len)?;
        let start = usize::try_from(position - window_start).unwrap_or(usize::MAX);
        let bytes = map.get(start..).unwrap_or(&[]);
        let view = frame::decode(bytes, frame::FRAME_BYTES_STRUCTURAL_MAX)
            .map_err(|e| Error::corrupt(name(), position, Some(offset), e.to_string()))?;
        if view.offset() != offset {
            return Err(Error::corrupt(
                name(),
                position,
                Some(offset),
                format!("expected offset {offset}, found {}", view.offset()),
            ));
        }
        let len = view.bytes().len();
        Ok(Record {
            window: map,
            start,
            len,
            segment_base: base,
            position,
            storage: self.storage.clone(),
        })
    }

    /// The bytes of the frame at `position` of segment `base`, read with `pread` into memory
    /// this reader owns (at most two reads): point reads pin no mapped pages, so memory stays
    /// flat however much of the log they touch.
    fn point_window(
        &self,
        snapshot: &Snapshot,
        base: u64,
        position: u64,
        frame_len: Option<u32>,
    ) -> Result<(Mapped, u64), Error> {
        let name = || segment_file_name(base);
        let header = frame::FRAME_HEADER_BYTES as u64;
        let active = base == snapshot.head.active_base;
        let (file, end) = {
            let mut cache = self.cache.files.lock().unwrap_or_else(|p| p.into_inner());
            let i = match cache.iter().position(|(b, _, _)| *b == base) {
                Some(i) => i,
                None => {
                    let f = segments::open_segment(self.storage.as_ref(), base, OpenMode::Read)?;
                    cache.push((base, f, None));
                    if cache.len() > POINT_FILES {
                        cache.remove(0);
                    }
                    cache.len() - 1
                }
            };
            let (_, file, sealed_len) = cache.get_mut(i).ok_or(Error::Closed)?;
            // The active segment is read only below HEAD's durable end; a sealed one's length
            // is final, so it is asked for once.
            let end = match (active, *sealed_len) {
                (true, _) => snapshot.head.durable_len,
                (false, Some(len)) => len,
                (false, None) => {
                    let len = file
                        .len()
                        .map_err(|e| Error::io(format!("reading the length of {}", name()), e))?;
                    *sealed_len = Some(len);
                    len
                }
            };
            (file.clone(), end)
        };
        let io = |e| Error::io(format!("reading {}", name()), e);
        let first = frame_len
            .map_or(POINT_READ_BYTES, u64::from)
            .min(end.saturating_sub(position));
        let mut buf = vec![0u8; usize::try_from(first).unwrap_or(0)];
        file.read_exact_at(&mut buf, position).map_err(io)?;
        let frame_len = crate::format::u32_at(&buf, 0).map_or(0, u64::from);
        if frame_len < header || position + frame_len > end {
            return Err(Error::corrupt(
                name(),
                position,
                None,
                format!("no whole frame at this position (length {frame_len})"),
            ));
        }
        let frame_len = usize::try_from(frame_len).map_err(|_| {
            Error::corrupt(name(), position, None, "frame length overflows".to_string())
        })?;
        if buf.len() < frame_len {
            let have = buf.len();
            buf.resize(frame_len, 0);
            let rest = buf.get_mut(have..).unwrap_or(&mut []);
            file.read_exact_at(rest, position + have as u64)
                .map_err(io)?;
        }
        buf.truncate(frame_len);
        Ok((Mapped::owned(buf), position))
    }

    /// Sparse index entries of segment `base` that lie below `end` bytes (empty when the
    /// index is missing or damaged; scans then start at the segment's first frame).
    pub fn index_entries(&self, base: u64, end: u64) -> Vec<IndexEntry> {
        self.read_index(base, end)
    }

    /// Index entries of segment `base` below `end` that can locate `target`: from the cache
    /// when it already reaches `target` (or the segment is sealed), else read again.
    fn cached_index(&self, base: u64, end: u64, sealed: bool, target: u64) -> Arc<Vec<IndexEntry>> {
        let mut cache = self.cache.indexes.lock().unwrap_or_else(|p| p.into_inner());
        let fresh_enough =
            |e: &Arc<Vec<IndexEntry>>| sealed || e.last().is_some_and(|l| l.offset >= target);
        let entries = match cache.get(&base).filter(|e| fresh_enough(e)) {
            Some(e) => e.clone(),
            None => {
                let e = Arc::new(self.read_index(base, u64::MAX));
                cache.insert(base, e.clone());
                e
            }
        };
        if entries.last().is_some_and(|l| l.position >= end) {
            return Arc::new(
                entries
                    .iter()
                    .copied()
                    .filter(|e| e.position < end)
                    .collect(),
            );
        }
        entries
    }

    fn read_index(&self, base: u64, end: u64) -> Vec<IndexEntry> {
        let name = index_file_name(base);
        let Ok(file) = self.storage.open(&name, OpenMode::Read) else {
            return Vec::new();
        };
        let Ok(len) = file.len() else {
            return Vec::new();
        };
        let Ok(n) = usize::try_from(len) else {
            return Vec::new();
        };
        let mut buf = vec![0u8; n];
        if file.read_exact_at(&mut buf, 0).is_err() {
            return Vec::new();
        }
        let mut entries = index::decode_file(&buf).unwrap_or_default();
        entries.retain(|e| e.position < end);
        entries
    }

    /// The first offset whose frame timestamp is at or after `timestamp_ns`, or `None` when
    /// every durable record is older.
    pub fn offset_at_time(&self, timestamp_ns: u64) -> Result<Option<u64>, Error> {
        let snapshot = self.snapshot()?;
        // Find the last segment whose first record is not newer than the target.
        let mut start = snapshot.segments.first().copied().unwrap_or(0);
        for base in &snapshot.segments {
            let end = segment_end(self.storage.as_ref(), &snapshot, *base)?;
            let entries = self.index_entries(*base, end);
            // The segment's first timestamp: from its index when the index starts at its first
            // record, else from the record itself (an index is only a hint).
            let first_ts = match entries.first() {
                Some(first) if first.offset == *base => Some(first.timestamp_ns),
                _ => self
                    .scan_snapshot(snapshot.clone(), *base)?
                    .next()
                    .transpose()?
                    .filter(|r| r.offset() == *base)
                    .map(|r| r.view().timestamp_ns()),
            };
            match first_ts {
                Some(ts) if ts > timestamp_ns => break,
                Some(_) => start = *base,
                None => break,
            }
            if let Some(e) = entries.iter().rev().find(|e| e.timestamp_ns < timestamp_ns) {
                start = start.max(e.offset);
            }
        }
        for record in self.scan_snapshot(snapshot, start)? {
            let record = record?;
            if record.view().timestamp_ns() >= timestamp_ns {
                return Ok(Some(record.offset()));
            }
        }
        Ok(None)
    }
}

/// Durable end (bytes) of segment `base` within `snapshot`.
pub(crate) fn segment_end(
    storage: &dyn Storage,
    snapshot: &Snapshot,
    base: u64,
) -> Result<u64, Error> {
    if base == snapshot.head.active_base {
        return Ok(snapshot.head.durable_len);
    }
    let file = segments::open_segment(storage, base, OpenMode::Read)?;
    file.len().map_err(|e| {
        Error::io(
            format!("reading the length of {}", segment_file_name(base)),
            e,
        )
    })
}

/// A forward scan over durable records, through mapped windows of bounded size.
#[derive(Debug)]
pub struct Scan {
    reader: LogReader,
    snapshot: Snapshot,
    segment_index: usize,
    file: Option<Arc<dyn StorageFile>>,
    segment_end: u64,
    window: Option<Mapped>,
    window_start: u64,
    pos: u64,
    next_offset: u64,
    from: u64,
    done: bool,
}

impl Scan {
    fn new(reader: LogReader, snapshot: Snapshot, from: u64) -> Result<Scan, Error> {
        let segment_index = snapshot
            .segments
            .iter()
            .rposition(|b| *b <= from)
            .unwrap_or(0);
        let mut scan = Scan {
            reader,
            snapshot,
            segment_index,
            file: None,
            segment_end: 0,
            window: None,
            window_start: 0,
            pos: SEGMENT_HEADER_BYTES as u64,
            next_offset: 0,
            from,
            done: false,
        };
        scan.open_segment(true)?;
        Ok(scan)
    }

    /// Base offset of the segment the scan is in.
    fn current_base(&self) -> u64 {
        self.snapshot
            .segments
            .get(self.segment_index)
            .copied()
            .unwrap_or(0)
    }

    /// Where the scan stands: the segment and the byte position after the last record returned.
    pub fn position(&self) -> (u64, u64) {
        (self.current_base(), self.pos)
    }

    /// The snapshot this scan reads.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    fn open_segment(&mut self, seek: bool) -> Result<(), Error> {
        let Some(base) = self.snapshot.segments.get(self.segment_index).copied() else {
            self.done = true;
            return Ok(());
        };
        let storage = self.reader.storage.as_ref();
        let file = segments::open_segment(storage, base, OpenMode::Read)?;
        segments::read_header(storage, file.as_ref(), base)?;
        self.segment_end = segment_end(storage, &self.snapshot, base)?;
        let len = file.len().map_err(|e| {
            Error::io(
                format!("reading the length of {}", segment_file_name(base)),
                e,
            )
        })?;
        if len < self.segment_end {
            return Err(Error::corrupt(
                segment_file_name(base),
                len,
                None,
                format!(
                    "segment is {len} bytes, shorter than its durable end {}",
                    self.segment_end
                ),
            ));
        }
        self.file = Some(file);
        self.window = None;
        self.pos = SEGMENT_HEADER_BYTES as u64;
        self.next_offset = base;
        if seek && self.from > base {
            let sealed = base < self.snapshot.head.active_base;
            let entries = self
                .reader
                .cached_index(base, self.segment_end, sealed, self.from);
            let at = entries.partition_point(|e| e.offset <= self.from);
            if let Some(entry) = at.checked_sub(1).and_then(|i| entries.get(i)) {
                if self.frame_at_has_offset(entry.position, entry.offset) {
                    self.pos = entry.position;
                    self.next_offset = entry.offset;
                }
            }
        }
        Ok(())
    }

    fn frame_at_has_offset(&mut self, position: u64, offset: u64) -> bool {
        let saved = (self.pos, self.window.clone(), self.window_start);
        self.pos = position;
        let ok = matches!(self.decode_at(), Ok(Some((_, _, found))) if found == offset);
        (self.pos, self.window, self.window_start) = saved;
        ok
    }

    /// Ensures the window covers `[pos, pos + need)`, remapping when it does not.
    fn ensure_window(&mut self, need: u64) -> Result<(), Error> {
        let covered = self.window.as_ref().is_some_and(|w| {
            self.pos >= self.window_start && self.pos + need <= self.window_start + w.len() as u64
        });
        if covered {
            return Ok(());
        }
        let file = self.file.as_ref().ok_or(Error::Closed)?;
        let len = self
            .reader
            .options
            .read_window_bytes
            .max(need)
            .min(self.segment_end - self.pos);
        let name = || segment_file_name(self.current_base());
        let map = file
            .map(self.pos, len)
            .map_err(|e| Error::io(format!("mapping {}", name()), e))?;
        self.window = Some(map);
        self.window_start = self.pos;
        Ok(())
    }

    /// Decodes the frame at `pos`; returns its range inside the window and its offset, or
    /// `None` at the end of the segment.
    fn decode_at(&mut self) -> Result<Option<(usize, usize, u64)>, Error> {
        if self.pos >= self.segment_end {
            return Ok(None);
        }
        let base = self.current_base();
        let remaining = self.segment_end - self.pos;
        let expected = Some(self.next_offset);
        let corrupt =
            |pos, why: String| Error::corrupt(segment_file_name(base), pos, expected, why);
        if remaining < frame::FRAME_HEADER_BYTES as u64 {
            return Err(corrupt(
                self.pos,
                format!("{remaining} stray bytes at the end of the segment"),
            ));
        }
        self.ensure_window(frame::FRAME_HEADER_BYTES as u64)?;
        let start = usize::try_from(self.pos - self.window_start).unwrap_or(usize::MAX);
        let frame_len = self
            .window
            .as_ref()
            .and_then(|w| crate::format::u32_at(w, start))
            .map_or(0, u64::from);
        if frame_len > remaining {
            return Err(corrupt(
                self.pos,
                format!("frame length {frame_len} runs past the durable end"),
            ));
        }
        self.ensure_window(frame_len.max(frame::FRAME_HEADER_BYTES as u64))?;
        let start = usize::try_from(self.pos - self.window_start).unwrap_or(usize::MAX);
        let window = self.window.as_ref().ok_or(Error::Closed)?;
        let bytes = window.get(start..).unwrap_or(&[]);
        let view = frame::decode(bytes, frame::FRAME_BYTES_STRUCTURAL_MAX)
            .map_err(|e| corrupt(self.pos, e.to_string()))?;
        Ok(Some((start, view.bytes().len(), view.offset())))
    }

    fn advance(&mut self) -> Result<Option<(usize, usize, u64, u64)>, Error> {
        while !self.done {
            if self.next_offset >= self.snapshot.head.next_offset {
                self.done = true;
                break;
            }
            let Some((start, len, offset)) = self.decode_at()? else {
                self.segment_index += 1;
                self.open_segment(false)?;
                continue;
            };
            let base = self.current_base();
            let position = self.pos;
            if offset != self.next_offset {
                self.done = true;
                return Err(Error::verify(
                    segment_file_name(base),
                    position,
                    offset,
                    format!("expected offset {}, found {offset}", self.next_offset),
                ));
            }
            self.pos += len as u64;
            self.next_offset += 1;
            if offset < self.from {
                continue;
            }
            return Ok(Some((start, len, base, position)));
        }
        Ok(None)
    }
}

impl Iterator for Scan {
    type Item = Result<Record, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(Some((start, len, segment_base, position))) => Some(Ok(Record {
                window: self.window.clone()?,
                start,
                len,
                segment_base,
                position,
                storage: self.reader.storage.clone(),
            })),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Size facts about the durable log, gathered in O(segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStats {
    /// The published HEAD.
    pub head: Head,
    /// `(base offset, durable bytes)` of every visible segment.
    pub segments: Vec<(u64, u64)>,
    /// Timestamp of record 0, when there is one.
    pub first_timestamp_ns: Option<u64>,
}

impl LogReader {
    /// Segments, sizes and the durable state, without reading records (except record 0).
    pub fn stats(&self) -> Result<LogStats, Error> {
        let snapshot = self.snapshot()?;
        let mut segments = Vec::with_capacity(snapshot.segments.len());
        for base in &snapshot.segments {
            segments.push((*base, segment_end(self.storage.as_ref(), &snapshot, *base)?));
        }
        let head = snapshot.head;
        let first_timestamp_ns = if head.next_offset > 0 {
            self.scan_snapshot(snapshot, 0)?
                .next()
                .transpose()?
                .map(|r| r.view().timestamp_ns())
        } else {
            None
        };
        Ok(LogStats {
            head,
            segments,
            first_timestamp_ns,
        })
    }
}
