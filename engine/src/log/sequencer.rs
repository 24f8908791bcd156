//! The sequencer thread: the only code that writes segments. It drains the command channel
//! into groups, runs admission, assigns offsets and timestamps, seals frames into one buffer,
//! writes it with one `pwrite`, and when any command in the group needs durability calls
//! `fdatasync` once and publishes HEAD before replying.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::error::Error;
use crate::format::erasure::SlotRef;
use crate::format::frame::{self, SealFields, BATCH_FIRST, BATCH_LAST};
use crate::format::head::{Head, HEAD_FLAG_CLEAN, NONE};
use crate::format::segment_header::{segment_file_name, SEGMENT_HEADER_BYTES};
use crate::storage::{Storage, StorageFile};

use super::admission::{Admission, AdmitDecision, Candidate};
use super::frames::{FrameMeta, Frames};
use super::index::IndexWriter;
use super::notify::Notify;
use super::options::{Durability, LogOptions, Receipt};
use super::segments;

/// A reply to an append: receipts in batch order.
pub type Reply = Result<Vec<Receipt>, Error>;

/// The reply to a pipelined appender's message: the receipts of every accepted batch, flat and
/// in order, and per batch either how many receipts are its own or why it failed. (One flat
/// vector, allocated here and freed by the appender, instead of one per batch: frees across
/// threads contend on the allocator.)
#[derive(Debug, Default)]
pub struct ManyReply {
    pub receipts: Vec<Receipt>,
    pub outcomes: Vec<Result<usize, Error>>,
}

/// Where an append's receipts go.
pub enum ReplyTo {
    /// One atomic batch, one reply.
    One(Sender<Reply>),
    /// Several batches from a pipelined appender: one reply with a result per batch.
    Many(Sender<ManyReply>),
    /// One atomic batch whose reply is handed to a function, called on the sequencer thread
    /// (it must be quick and never block: the writer service wakes an async task with it).
    Call(Box<dyn FnOnce(Reply) + Send>),
}

impl std::fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplyTo::One(_) => "ReplyTo::One",
            ReplyTo::Many(_) => "ReplyTo::Many",
            ReplyTo::Call(_) => "ReplyTo::Call",
        })
    }
}

/// Commands sent to the sequencer.
pub enum Command {
    /// Append one or more atomic batches.
    Append { frames: Frames, reply: ReplyTo },
    /// Make everything durable.
    Sync { reply: Sender<Result<(), Error>> },
    /// Erase slots (see `Log::erase`).
    Erase {
        tenant: String,
        targets: Vec<SlotRef>,
        note: Vec<u8>,
        reply: Sender<Result<Receipt, Error>>,
    },
    /// Install an admission check.
    SetAdmission {
        admission: Box<dyn Admission>,
        reply: Sender<Result<(), Error>>,
    },
    /// Sync, mark HEAD clean, stop.
    Close { reply: Sender<Result<(), Error>> },
}

/// Most commands taken into one group.
const GROUP_COMMANDS_MAX: usize = 1024;
/// Flush the group buffer to the file when it grows past this.
const FLUSH_BYTES: usize = 1024 * 1024;
/// How long the sequencer polls for the next command before it parks.
const POLL_BEFORE_PARK: std::time::Duration = std::time::Duration::from_micros(50);
/// Buffered bytes are written after the channel has been idle this long.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(1);

/// Everything the writer knows; owned by the sequencer thread.
#[derive(Debug)]
pub struct WriterState {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) options: LogOptions,
    pub(super) notify: Arc<Notify>,
    pub(super) active_base: u64,
    pub(super) file: Arc<dyn StorageFile>,
    pub(super) head_file: Arc<dyn StorageFile>,
    pub(super) index: IndexWriter,
    /// Bytes of the active segment that are written or buffered.
    pub(super) written_len: u64,
    /// Bytes of the active segment handed to `pwrite`.
    pub(super) flushed_len: u64,
    /// Bytes of the active segment known durable.
    pub(super) synced_len: u64,
    pub(super) next_offset: u64,
    pub(super) head_hash: [u8; 32],
    pub(super) last_timestamp_ns: u64,
    pub(super) last_frame_pos: u64,
    pub(super) generation: u64,
    pub(super) erase_pending_from: u64,
    pub(super) admission: Option<Box<dyn Admission>>,
    pub(super) buf: Vec<u8>,
    pub(super) counters: Arc<WriterCounters>,
}

/// Upper bounds of the group-commit size histogram, in records.
pub const GROUP_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// What the writer has done since the log opened, for metrics: counted by the sequencer,
/// read by anyone (relaxed atomics; each value is exact, the set is not a snapshot).
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// Records sequenced.
    pub records: AtomicU64,
    /// Bytes written to segment files.
    pub bytes_written: AtomicU64,
    /// `fdatasync` calls on segment files.
    pub fsyncs: AtomicU64,
    /// Durable group commits, and how many records each made durable (cumulative buckets
    /// of [`GROUP_BOUNDS`], their sum).
    pub groups: AtomicU64,
    /// Cumulative counts: groups of at most `GROUP_BOUNDS[i]` records.
    pub group_records_le: [AtomicU64; GROUP_BOUNDS.len()],
    /// Records in all durable groups.
    pub group_records_sum: AtomicU64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl WriterState {
    fn segment_name(&self) -> String {
        segment_file_name(self.active_base)
    }

    /// Admission, then [`Self::sequence_unchecked`], for the frames `metas` of `bytes`.
    fn sequence(
        &mut self,
        bytes: &mut [u8],
        metas: &[FrameMeta],
        receipts: &mut Vec<Receipt>,
    ) -> Result<(), Error> {
        if let Some(admission) = self.admission.as_mut() {
            let candidates: Vec<_> = metas
                .iter()
                .filter_map(|m| {
                    let frame = frame::decode_unchecked(bytes.get(m.start..m.start + m.len)?)?;
                    Some(Candidate {
                        frame,
                        body_digest: m.body_digest,
                        condition: m.condition,
                    })
                })
                .collect();
            if candidates.len() != metas.len() {
                // Nothing has changed yet: refuse the batch rather than admit a shorter one.
                return Err(Error::Rejected {
                    reason: "malformed prepared frame".to_string(),
                });
            }
            match admission.admit(self.next_offset, &candidates) {
                AdmitDecision::Accept(admitted) => {
                    let first = receipts.len();
                    self.sequence_unchecked(bytes, metas, receipts)?;
                    if admitted.len() == metas.len() {
                        for (receipt, a) in receipts.iter_mut().skip(first).zip(admitted) {
                            receipt.admitted = Some(a);
                        }
                    }
                    return Ok(());
                }
                AdmitDecision::Reject(reason) => return Err(Error::Rejected { reason }),
                AdmitDecision::Duplicate(original) => {
                    receipts.extend(original);
                    return Ok(());
                }
            }
        }
        self.sequence_unchecked(bytes, metas, receipts)
    }

    /// Rolls the segment if the batch does not fit, then seals the batch into the buffer.
    pub(super) fn sequence_unchecked(
        &mut self,
        bytes: &mut [u8],
        metas: &[FrameMeta],
        receipts: &mut Vec<Receipt>,
    ) -> Result<(), Error> {
        let batch_bytes: u64 = metas.iter().map(|m| m.len as u64).sum();
        let header = SEGMENT_HEADER_BYTES as u64;
        if self.written_len > header
            && self.written_len + batch_bytes > self.options.segment_bytes_max
        {
            self.roll()?;
        }
        let now = now_ns();
        let batch_len = u32::try_from(metas.len()).unwrap_or(u32::MAX);
        let last = metas.len().saturating_sub(1);
        for (i, m) in metas.iter().enumerate() {
            let flags =
                if i == 0 { BATCH_FIRST } else { 0 } | if i == last { BATCH_LAST } else { 0 };
            let timestamp_ns = now.max(self.last_timestamp_ns);
            let fields = SealFields {
                offset: self.next_offset,
                timestamp_ns,
                synced_len: self.synced_len,
                batch_flags: flags,
                batch_len,
                prev_hash: self.head_hash,
            };
            let malformed = || Error::InvalidInput {
                reason: "malformed prepared frame".to_string(),
            };
            let frame_bytes = bytes
                .get_mut(m.start..m.start + m.len)
                .ok_or_else(malformed)?;
            let hash = frame::seal(frame_bytes, &m.body_digest, m.crc_tail, &fields)
                .ok_or_else(malformed)?;
            // Pair assertion: what we wrote links to the head we hold.
            assert_eq!(
                crate::format::hash_at(frame_bytes, 48),
                Some(self.head_hash)
            );
            self.index
                .offer(self.next_offset, self.written_len, timestamp_ns);
            self.buf.extend_from_slice(frame_bytes);
            receipts.push(Receipt {
                offset: self.next_offset,
                hash,
                timestamp_ns,
                admitted: None,
            });
            self.last_frame_pos = self.written_len;
            self.written_len += m.len as u64;
            self.next_offset += 1;
            self.head_hash = hash;
            self.last_timestamp_ns = timestamp_ns;
        }
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffer with one pwrite.
    pub(super) fn flush(&mut self) -> Result<(), Error> {
        if !self.buf.is_empty() {
            debug_assert_eq!(self.flushed_len + self.buf.len() as u64, self.written_len);
            let name = self.segment_name();
            self.file
                .write_all_at(&self.buf, self.flushed_len)
                .map_err(|e| Error::io(format!("writing {name}"), e))?;
            self.flushed_len += self.buf.len() as u64;
            self.counters
                .bytes_written
                .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
            self.buf.clear();
        }
        self.index.flush()
    }

    /// Flushes, fsyncs the active segment and publishes HEAD.
    pub(super) fn sync(&mut self) -> Result<(), Error> {
        self.flush()?;
        if self.synced_len < self.flushed_len {
            let name = self.segment_name();
            self.file
                .sync_data()
                .map_err(|e| Error::io(format!("syncing {name}"), e))?;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.synced_len = self.flushed_len;
        }
        self.publish(0)
    }

    /// Writes the durable state to HEAD (no fsync unless `flags` marks a clean close).
    pub(super) fn publish(&mut self, flags: u32) -> Result<(), Error> {
        self.generation += 1;
        let head = Head {
            flags,
            generation: self.generation,
            active_base: self.active_base,
            durable_len: self.synced_len,
            next_offset: self.next_offset,
            head_hash: self.head_hash,
            last_frame_pos: self.last_frame_pos,
            last_timestamp_ns: self.last_timestamp_ns,
            erase_pending_from: self.erase_pending_from,
        };
        debug_assert_eq!(
            self.synced_len, self.written_len,
            "HEAD only publishes durable bytes"
        );
        self.head_file
            .write_all_at(&head.encode(), head.copy_position())
            .map_err(|e| Error::io("writing HEAD", e))?;
        if flags & HEAD_FLAG_CLEAN != 0 {
            self.head_file
                .sync_data()
                .map_err(|e| Error::io("syncing HEAD", e))?;
        }
        self.notify.publish();
        Ok(())
    }

    /// Seals the active segment (fsynced) and starts a new one at the next offset.
    fn roll(&mut self) -> Result<(), Error> {
        self.sync()?;
        let base = self.next_offset;
        let file = segments::create_segment(self.storage.as_ref(), base, self.head_hash)?;
        let index = IndexWriter::create(
            self.storage.as_ref(),
            base,
            &[],
            self.options.index_interval_bytes,
        )?;
        self.active_base = base;
        self.file = file;
        self.index = index;
        let header = SEGMENT_HEADER_BYTES as u64;
        self.written_len = header;
        self.flushed_len = header;
        self.synced_len = header;
        self.last_frame_pos = NONE;
        self.publish(0)
    }

    fn close(&mut self) -> Result<(), Error> {
        self.sync()?;
        self.publish(HEAD_FLAG_CLEAN)
    }
}

/// What one group owes its commands once the group is written.
#[derive(Default)]
struct GroupReplies {
    appends: Vec<(ReplyTo, ManyReply)>,
    syncs: Vec<Sender<Result<(), Error>>>,
    close: Option<Sender<Result<(), Error>>>,
}

/// The sequencer's main loop. Runs until the channel closes or a Close command arrives.
pub fn run(mut state: WriterState, rx: &Receiver<Command>, poisoned: &Arc<Mutex<Option<String>>>) {
    // A panic here is a bug; it must still not leave appenders waiting forever: poison the
    // writer and answer every later command with the error until the handle goes away.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sequence_loop(&mut state, rx, poisoned);
    }));
    if outcome.is_err() {
        let reason = "the sequencer thread panicked".to_string();
        set_poison(
            poisoned,
            &Error::Poisoned {
                reason: reason.clone(),
            },
        );
        for command in rx.iter() {
            reply_poisoned(command, &reason);
        }
    }
}

fn sequence_loop(
    state: &mut WriterState,
    rx: &Receiver<Command>,
    poisoned: &Arc<Mutex<Option<String>>>,
) {
    let mut group: Vec<Command> = Vec::with_capacity(GROUP_COMMANDS_MAX);
    // Whether the last group ended with an fsync. Its appenders were just woken and need a
    // CPU to send their next records: polling would take that CPU from them (on a two-core
    // machine, measured: B64 and the service's S64 both lose), so the sequencer parks at once.
    let mut synced = false;
    loop {
        let polled = if synced { None } else { poll_briefly(rx) };
        let first = if let Some(c) = polled {
            c
        } else if state.buf.is_empty() {
            match rx.recv() {
                Ok(c) => c,
                Err(_) => break,
            }
        } else {
            // Buffered bytes wait at most IDLE_FLUSH for more company before they are written.
            match rx.recv_timeout(IDLE_FLUSH) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    if poison_reason(poisoned).is_some() {
                        // A stopped writer writes nothing more; its buffer is dropped.
                        state.buf.clear();
                    } else if let Err(e) = state.flush() {
                        set_poison(poisoned, &e);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        group.push(first);
        while group.len() < GROUP_COMMANDS_MAX {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let fsyncs = state.counters.fsyncs.load(Ordering::Relaxed);
        let stop = process_group(state, &mut group, poisoned);
        if stop {
            break;
        }
        synced = state.counters.fsyncs.load(Ordering::Relaxed) != fsyncs;
    }
}

/// Polls the channel for up to `POLL_BEFORE_PARK` before the caller blocks on it. An appender
/// that just got its reply usually sends its next record within microseconds; catching it
/// while still running saves parking and waking this thread (on a virtual machine, waking an
/// idle CPU costs tens of microseconds).
fn poll_briefly(rx: &Receiver<Command>) -> Option<Command> {
    let started = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(c) => return Some(c),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if started.elapsed() >= POLL_BEFORE_PARK {
            return None;
        }
        std::hint::spin_loop();
    }
}

fn poison_reason(poisoned: &Arc<Mutex<Option<String>>>) -> Option<String> {
    poisoned.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn set_poison(poisoned: &Arc<Mutex<Option<String>>>, error: &Error) {
    let mut p = poisoned.lock().unwrap_or_else(|p| p.into_inner());
    if p.is_none() {
        *p = Some(error.to_string());
    }
}

/// Processes one group; returns true when the sequencer should stop.
/// Sequences every batch of one append command; returns the per-batch results and whether an
/// accepted batch asked for durability.
fn sequence_frames(
    state: &mut WriterState,
    frames: &mut Frames,
    poisoned: &Arc<Mutex<Option<String>>>,
    failure: &mut Option<Error>,
) -> (ManyReply, bool) {
    let mut results = ManyReply {
        receipts: Vec::with_capacity(frames.metas.len()),
        outcomes: Vec::with_capacity(frames.batch_count()),
    };
    let mut durable = false;
    let mut first = 0;
    for batch in &frames.batches {
        let metas = frames
            .metas
            .get(first..first + batch.frame_count)
            .unwrap_or(&[]);
        first += batch.frame_count;
        let before = results.receipts.len();
        let result = sequence_one(
            state,
            &mut frames.bytes,
            metas,
            &mut results.receipts,
            poisoned,
            failure,
        );
        durable |= batch.durability == Durability::Sync && result.is_ok();
        results
            .outcomes
            .push(result.map(|()| results.receipts.len() - before));
    }
    (results, durable)
}

fn process_group(
    state: &mut WriterState,
    group: &mut Vec<Command>,
    poisoned: &Arc<Mutex<Option<String>>>,
) -> bool {
    let mut replies = GroupReplies::default();
    let mut failure: Option<Error> = None;
    let mut needs_sync = false;
    let pending_before = state.written_len;
    let records_before = state.next_offset;
    for command in group.drain(..) {
        if let Some(reason) = poison_reason(poisoned) {
            reply_poisoned(command, &reason);
            continue;
        }
        match command {
            Command::Append { mut frames, reply } => {
                let (results, durable) =
                    sequence_frames(state, &mut frames, poisoned, &mut failure);
                needs_sync |= durable;
                replies.appends.push((reply, results));
            }
            Command::Sync { reply } => replies.syncs.push(reply),
            Command::SetAdmission { admission, reply } => {
                state.admission = Some(admission);
                let _ = reply.send(Ok(()));
            }
            Command::Erase {
                tenant,
                targets,
                note,
                reply,
            } => {
                let result = super::erase::erase(state, &tenant, &targets, &note);
                // Only a failed write or sync stops the writer; a refused request (bad
                // targets, limits, a damaged target record) wrote nothing.
                if let Err(e @ (Error::Io { .. } | Error::Poisoned { .. })) = &result {
                    set_poison(poisoned, e);
                }
                let _ = reply.send(result);
            }
            Command::Close { reply } => replies.close = Some(reply),
        }
    }
    needs_sync |= !replies.syncs.is_empty() || replies.close.is_some();
    // Buffered-only groups are not written here: the buffer is written when it fills, when a
    // durable command arrives, or when the channel stays idle (see `run`), so a stream of
    // small buffered appends costs one pwrite per megabyte, not one per group.
    // A writer poisoned during this group (an erasure's fsync failed, say) must not sync
    // again and acknowledge: a second fsync after a failed one proves nothing.
    let written = if failure.is_some() || poison_reason(poisoned).is_some() {
        Err(())
    } else if needs_sync {
        state.sync().map_err(|e| set_poison(poisoned, &e))
    } else {
        Ok(())
    };
    let counters = &state.counters;
    let records = state.next_offset.saturating_sub(records_before);
    counters.records.fetch_add(records, Ordering::Relaxed);
    if needs_sync && written.is_ok() && (state.written_len != pending_before || records > 0) {
        counters.groups.fetch_add(1, Ordering::Relaxed);
        counters
            .group_records_sum
            .fetch_add(records, Ordering::Relaxed);
        for (bound, bucket) in GROUP_BOUNDS.iter().zip(&counters.group_records_le) {
            if records <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    finish_group(state, replies, written.is_ok(), poisoned)
}

fn finish_group(
    state: &mut WriterState,
    replies: GroupReplies,
    written: bool,
    poisoned: &Arc<Mutex<Option<String>>>,
) -> bool {
    let failed = || Error::Poisoned {
        reason: poison_reason(poisoned).unwrap_or_default(),
    };
    for (reply, mut results) in replies.appends {
        if !written {
            results.receipts.clear();
            results.outcomes.iter_mut().for_each(|o| *o = Err(failed()));
        }
        match reply {
            ReplyTo::One(tx) => {
                let outcome = results.outcomes.pop().unwrap_or(Err(Error::Closed));
                let _ = tx.send(outcome.map(|_| results.receipts));
            }
            ReplyTo::Many(tx) => {
                let _ = tx.send(results);
            }
            ReplyTo::Call(call) => {
                let outcome = results.outcomes.pop().unwrap_or(Err(Error::Closed));
                call(outcome.map(|_| results.receipts));
            }
        }
    }
    for reply in replies.syncs {
        let _ = reply.send(if written { Ok(()) } else { Err(failed()) });
    }
    if let Some(reply) = replies.close {
        let result = if written && poison_reason(poisoned).is_none() {
            state.close()
        } else {
            Err(failed())
        };
        let _ = reply.send(result);
        return true;
    }
    false
}

/// Sequences one batch; an I/O failure poisons the writer.
fn sequence_one(
    state: &mut WriterState,
    bytes: &mut [u8],
    metas: &[FrameMeta],
    receipts: &mut Vec<Receipt>,
    poisoned: &Arc<Mutex<Option<String>>>,
    failure: &mut Option<Error>,
) -> Result<(), Error> {
    if failure.is_some() {
        return Err(Error::Poisoned {
            reason: poison_reason(poisoned).unwrap_or_default(),
        });
    }
    match state.sequence(bytes, metas, receipts) {
        Ok(()) => Ok(()),
        // Only a refusal by admission leaves the writer's state untouched; any other failure
        // (I/O, or a malformed prepared frame met halfway through a batch) may leave part of
        // the batch sealed and admission's state ahead of the log, so the writer stops.
        Err(e @ Error::Rejected { .. }) => Err(e),
        Err(e) => {
            set_poison(poisoned, &e);
            let reason = e.to_string();
            *failure = Some(e);
            Err(Error::Poisoned { reason })
        }
    }
}

fn reply_poisoned(command: Command, reason: &str) {
    let err = || Error::Poisoned {
        reason: reason.to_string(),
    };
    match command {
        Command::Append { frames, reply } => match reply {
            ReplyTo::One(tx) => {
                let _ = tx.send(Err(err()));
            }
            ReplyTo::Call(call) => call(Err(err())),
            ReplyTo::Many(tx) => {
                let outcomes = frames.batches.iter().map(|_| Err(err())).collect();
                let _ = tx.send(ManyReply {
                    receipts: Vec::new(),
                    outcomes,
                });
            }
        },
        Command::Sync { reply }
        | Command::SetAdmission { reply, .. }
        | Command::Close { reply } => {
            let _ = reply.send(Err(err()));
        }
        Command::Erase { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
    }
}
