//! `verify()`: walks every durable record and checks frames (CRC, structure), the global chain
//! (each stored hash recomputed, each `prev_hash` linked), every slot (CRC; live content
//! against its commitment) and every erased slot (covered by an erasure record after it).
//!
//! Recomputing hashes is independent per record, so the scanning thread hands chunks of
//! records to worker threads; linking is a comparison and stays on the scanning thread.

use std::collections::HashMap;

use crate::error::Error;
use crate::format::erasure::{self, SlotRef, KIND_ERASE};
use crate::format::frame::{FrameView, BATCH_FIRST, BATCH_LAST};
use crate::format::hex;
use crate::format::segment_header::segment_file_name;
use crate::format::slot::SlotView;
use crate::storage::OpenMode;

use super::reader::{LogReader, Record};
use super::segments;

/// What a successful verification saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub record_count: u64,
    /// Segments checked.
    pub segment_count: u64,
    /// Frame bytes checked.
    pub frame_bytes: u64,
    /// Slots whose content matched its commitment.
    pub slots_live: u64,
    /// Erased slots, each covered by an erasure record.
    pub slots_erased: u64,
    /// Erasure records seen.
    pub erasure_records: u64,
    /// Offset the next record gets (records below it were checked).
    pub next_offset: u64,
    /// Hex hash of the last record (the global head).
    pub head_hash: String,
    /// Timestamp of the first record, ns.
    pub first_timestamp_ns: Option<u64>,
    /// Timestamp of the last record, ns.
    pub last_timestamp_ns: Option<u64>,
}

/// Records per chunk handed to a worker.
const CHUNK_RECORDS: usize = 1024;

/// What a worker found in its chunk.
#[derive(Debug, Default)]
struct ChunkResult {
    slots_live: u64,
    erased: Vec<(SlotRef, u64, u64)>,
    error: Option<(u64, Error)>,
}

/// A check the layer above runs on each record during [`LogReader::verify_with`], on the
/// worker threads, given the record's body digest (already computed for its chain hash).
pub type RecordHook<'a> = dyn Fn(&Record, &FrameView<'_>, &[u8; 32]) + Sync + 'a;

fn check_chunk(chunk: &[Record], hook: &RecordHook<'_>) -> ChunkResult {
    let mut out = ChunkResult::default();
    for record in chunk {
        let view = record.view();
        if let Err(e) = check_record(record, &view, &mut out, hook) {
            out.error = Some((view.offset(), e));
            break;
        }
    }
    out
}

/// The per-record work: recompute the chain hash and check every slot.
fn check_record(
    record: &Record,
    view: &FrameView<'_>,
    out: &mut ChunkResult,
    hook: &RecordHook<'_>,
) -> Result<(), Error> {
    let name = || segment_file_name(record.segment_base());
    let body = view.body_digest();
    if view.compute_hash_with_body(&body) != view.hash() {
        return Err(Error::verify(
            name(),
            record.position(),
            view.offset(),
            "stored hash does not match the recomputed chain hash",
        ));
    }
    for index in 0..view.slot_count() {
        let slot = view.slot(index).map_err(|e| {
            Error::corrupt(
                name(),
                record.position(),
                Some(view.offset()),
                format!("slot {index}: {e}"),
            )
        })?;
        match slot {
            SlotView::Live { salt, content } => {
                // The slot was just decoded (its CRC checked): hash it once, not decode again.
                let slot_index = u16::try_from(index).unwrap_or(u16::MAX);
                let expected =
                    crate::format::chain::slot_commitment(view.kind(), slot_index, salt, content);
                if view.slot_commitment(index) != Some(expected) {
                    return Err(Error::verify(
                        name(),
                        record.position(),
                        view.offset(),
                        format!("slot {index} content does not match its commitment"),
                    ));
                }
                out.slots_live += 1;
            }
            SlotView::Erased { .. } => {
                let slot = SlotRef {
                    offset: view.offset(),
                    slot_index: u16::try_from(index).unwrap_or(u16::MAX),
                };
                out.erased
                    .push((slot, record.segment_base(), record.position()));
            }
        }
    }
    hook(record, view, &body);
    Ok(())
}

/// State of the sequential checks on the scanning thread.
#[derive(Debug, Default)]
struct Linker {
    prev_hash: Option<[u8; 32]>,
    segment: Option<u64>,
    batch_remaining: u32,
    last_timestamp_ns: u64,
    erasure_targets: HashMap<SlotRef, u64>,
    report: VerifyReport,
}

impl Linker {
    fn link(&mut self, reader: &LogReader, record: &Record) -> Result<(), Error> {
        let view = record.view();
        let name = || segment_file_name(record.segment_base());
        let fail = |why: String| Error::verify(name(), record.position(), view.offset(), why);
        if self.segment != Some(record.segment_base()) {
            self.enter_segment(reader, record)?;
        }
        if self.prev_hash.is_some() && view.offset() != self.report.next_offset {
            return Err(Error::corrupt(
                name(),
                record.position(),
                Some(view.offset()),
                format!(
                    "records {}..{} are missing (a segment is missing)",
                    self.report.next_offset,
                    view.offset()
                ),
            ));
        }
        if self.prev_hash.is_none() && view.offset() != 0 {
            return Err(Error::corrupt(
                name(),
                0,
                Some(view.offset()),
                "the log does not start at offset 0: a segment is missing",
            ));
        }
        if let Some(prev) = self.prev_hash {
            if view.prev_hash() != prev {
                return Err(fail(
                    "prev_hash does not link to the previous record".to_string(),
                ));
            }
        } else if view.prev_hash() != crate::format::chain::GENESIS_HASH && view.offset() == 0 {
            return Err(fail(
                "the first record does not link to the genesis hash".to_string(),
            ));
        }
        if view.timestamp_ns() < self.last_timestamp_ns {
            return Err(fail("frame timestamp goes backwards".to_string()));
        }
        self.check_batch(&view).map_err(fail)?;
        let kind_base = view.kind() & !crate::format::frame::KIND_CRITICAL;
        let critical = view.kind() & crate::format::frame::KIND_CRITICAL != 0;
        if kind_base < crate::log::KIND_USER_MIN && critical && view.kind() != KIND_ERASE {
            return Err(Error::corrupt(
                name(),
                record.position(),
                Some(view.offset()),
                format!("unknown critical log kind {:#06x}", view.kind()),
            ));
        }
        if view.kind() == KIND_ERASE && view.slot_count() != 0 {
            return Err(Error::corrupt(
                name(),
                record.position(),
                Some(view.offset()),
                "an erasure record carries slots",
            ));
        }
        if view.kind() == KIND_ERASE {
            let (targets, _) = erasure::decode(view.payload()).ok_or_else(|| {
                Error::corrupt(
                    name(),
                    record.position(),
                    Some(view.offset()),
                    "malformed erasure record",
                )
            })?;
            for t in targets {
                if t.offset >= view.offset() {
                    return Err(fail(format!(
                        "erasure names offset {} at or after itself",
                        t.offset
                    )));
                }
                self.erasure_targets.entry(t).or_insert(view.offset());
            }
            self.report.erasure_records += 1;
        }
        self.prev_hash = Some(view.hash());
        self.last_timestamp_ns = view.timestamp_ns();
        let r = &mut self.report;
        r.record_count += 1;
        r.frame_bytes += view.frame_len();
        r.next_offset = view.offset() + 1;
        r.first_timestamp_ns.get_or_insert(view.timestamp_ns());
        r.last_timestamp_ns = Some(view.timestamp_ns());
        Ok(())
    }

    fn check_batch(&mut self, view: &FrameView<'_>) -> Result<(), String> {
        let first = view.batch_flags() & BATCH_FIRST != 0;
        let last = view.batch_flags() & BATCH_LAST != 0;
        if first != (self.batch_remaining == 0) {
            return Err("batch flags break the batch structure".to_string());
        }
        if first {
            self.batch_remaining = view.batch_len();
        }
        self.batch_remaining = self.batch_remaining.saturating_sub(1);
        if last != (self.batch_remaining == 0) {
            return Err("batch length disagrees with its last flag".to_string());
        }
        Ok(())
    }

    fn enter_segment(&mut self, reader: &LogReader, record: &Record) -> Result<(), Error> {
        let base = record.segment_base();
        let storage = reader.storage.as_ref();
        let file = segments::open_segment(storage, base, OpenMode::Read)?;
        let header = segments::read_header(storage, file.as_ref(), base)?;
        let expected_prev = self.prev_hash.unwrap_or(crate::format::chain::GENESIS_HASH);
        let name = segment_file_name(base);
        if (self.prev_hash.is_some() || base == 0) && header.base_prev_hash != expected_prev {
            {
                return Err(Error::verify(
                    &name,
                    24,
                    base,
                    "segment header does not continue the chain",
                ));
            }
        }
        if self.batch_remaining != 0 {
            return Err(Error::verify(&name, 64, base, "a batch spans two segments"));
        }
        self.segment = Some(base);
        self.report.segment_count += 1;
        Ok(())
    }
}

impl LogReader {
    /// The records must end exactly where HEAD says the durable bytes end: nothing hidden
    /// between the last record and the durable length, and no segment holding bytes after it.
    fn check_end(
        &self,
        head: &crate::format::head::Head,
        (base, pos): (u64, u64),
    ) -> Result<(), Error> {
        let storage = self.storage.as_ref();
        if base == head.active_base {
            if pos != head.durable_len {
                return Err(Error::verify(
                    segment_file_name(base),
                    pos,
                    head.next_offset,
                    format!(
                        "the records end at byte {pos}, HEAD's durable length is {}",
                        head.durable_len
                    ),
                ));
            }
            return Ok(());
        }
        let file = segments::open_segment(storage, base, OpenMode::Read)?;
        let len = file
            .len()
            .map_err(|e| Error::io("reading a segment's length", e))?;
        if pos != len {
            return Err(Error::corrupt(
                segment_file_name(base),
                pos,
                None,
                "stray bytes after the last record",
            ));
        }
        let active = segments::open_segment(storage, head.active_base, OpenMode::Read)?;
        segments::read_header(storage, active.as_ref(), head.active_base)?;
        if head.durable_len != crate::format::segment_header::SEGMENT_HEADER_BYTES as u64 {
            return Err(Error::verify(
                segment_file_name(head.active_base),
                head.durable_len,
                head.next_offset,
                "HEAD's durable length covers bytes after its last record",
            ));
        }
        Ok(())
    }

    /// Verifies the whole durable log (see the module docs). Returns the first problem by
    /// offset: [`Error::Corrupt`] for damaged bytes, [`Error::Verify`] for mismatched hashes.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let snapshot = self.snapshot()?;
        self.verify_with(snapshot, &|_, _, _| {})
    }

    /// [`LogReader::verify`] of `snapshot`, running `hook` on every record whose frame, chain
    /// hash and slots checked out (on worker threads, in no particular order).
    pub fn verify_with(
        &self,
        snapshot: super::reader::Snapshot,
        hook: &RecordHook<'_>,
    ) -> Result<VerifyReport, Error> {
        let head = snapshot.head;
        let mut scan = self.scan_snapshot(snapshot, 0)?;
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let mut linker = Linker::default();
        let mut results: Vec<ChunkResult> = Vec::new();
        let mut scan_error: Option<Error> = None;
        std::thread::scope(|scope| {
            let (work_tx, work_rx) = crossbeam_channel::bounded::<Vec<Record>>(workers * 2);
            let (done_tx, done_rx) = crossbeam_channel::unbounded::<ChunkResult>();
            for _ in 0..workers {
                let work_rx = work_rx.clone();
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    for chunk in work_rx {
                        if done_tx.send(check_chunk(&chunk, hook)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
            for record in scan.by_ref() {
                let linked = record.and_then(|r| linker.link(self, &r).map(|()| r));
                match linked {
                    Ok(r) => chunk.push(r),
                    Err(e) => {
                        scan_error = Some(e);
                        break;
                    }
                }
                if chunk.len() == CHUNK_RECORDS {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
                    if work_tx.send(full).is_err() {
                        break;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = work_tx.send(chunk);
            }
            drop(work_tx);
            results.extend(done_rx.iter());
        });
        if scan_error.is_none() && linker.report.next_offset == head.next_offset {
            scan_error = self.check_end(&head, scan.position()).err();
        }
        finish(linker, results, scan_error, &head)
    }
}

fn finish(
    linker: Linker,
    results: Vec<ChunkResult>,
    scan_error: Option<Error>,
    head: &crate::format::head::Head,
) -> Result<VerifyReport, Error> {
    let mut report = linker.report;
    let mut worst: Option<(u64, Error)> = None;
    let mut erased: Vec<(SlotRef, u64, u64)> = Vec::new();
    for r in results {
        report.slots_live += r.slots_live;
        erased.extend(r.erased);
        if let Some((offset, e)) = r.error {
            if worst.as_ref().is_none_or(|(o, _)| offset < *o) {
                worst = Some((offset, e));
            }
        }
    }
    let scan_offset = report.next_offset;
    match (worst, scan_error) {
        (Some((offset, e)), _) if offset <= scan_offset => return Err(e),
        (_, Some(e)) => return Err(e),
        (Some((_, e)), None) => return Err(e),
        (None, None) => {}
    }
    erased.sort_unstable();
    erased.dedup();
    let uncovered = erased
        .iter()
        .find(|(s, _, _)| !linker.erasure_targets.contains_key(s));
    if let Some((slot, base, position)) = uncovered {
        return Err(Error::verify(
            segment_file_name(*base),
            *position,
            slot.offset,
            format!(
                "slot {} of record {} is erased but no erasure record covers it",
                slot.slot_index, slot.offset
            ),
        ));
    }
    report.slots_erased = erased.len() as u64;
    if linker.batch_remaining != 0 {
        return Err(Error::verify(
            "",
            0,
            report.next_offset,
            "the last batch is incomplete",
        ));
    }
    let erased_set: std::collections::HashSet<SlotRef> =
        erased.iter().map(|(s, _, _)| *s).collect();
    let mut targets: Vec<(&SlotRef, &u64)> = linker.erasure_targets.iter().collect();
    targets.sort_unstable();
    for (slot, erasure_offset) in targets {
        let in_progress = head.erase_pending_from != crate::format::head::NONE
            && *erasure_offset >= head.erase_pending_from;
        if !erased_set.contains(slot) && !in_progress {
            return Err(Error::verify(
                "",
                0,
                *erasure_offset,
                format!(
                    "the erasure record at offset {erasure_offset} names slot {} of record {}, which is not erased",
                    slot.slot_index, slot.offset
                ),
            ));
        }
    }
    if report.next_offset != head.next_offset {
        return Err(Error::verify(
            "HEAD",
            0,
            report.next_offset,
            format!(
                "HEAD publishes {} records, the segments hold {}",
                head.next_offset, report.next_offset
            ),
        ));
    }
    let last_hash = linker
        .prev_hash
        .unwrap_or(crate::format::chain::GENESIS_HASH);
    if last_hash != head.head_hash && report.record_count > 0 {
        return Err(Error::verify(
            "HEAD",
            0,
            report.next_offset.saturating_sub(1),
            "HEAD's head hash differs from the last record's hash",
        ));
    }
    report.head_hash = hex(&last_hash);
    Ok(report)
}
