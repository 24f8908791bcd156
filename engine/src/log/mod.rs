//! The log: one writer (a sequencer thread fed by a channel, doing group commit), any number
//! of readers, crash recovery, verification and in-place slot erasure.
//!
//! Appending threads build whole frames (salts, slot commitments, body digest, most of the
//! CRC) before they hand them to the sequencer, which only assigns offsets and timestamps,
//! hashes a few fixed-size blocks per record and writes groups with one `pwrite` and, when any
//! appender asked for it, one `fdatasync`. After each durable group it publishes `HEAD`.

mod admission;
mod erase;
mod follow;
mod frames;
mod index;
mod notify;
mod options;
mod reader;
mod record;
mod recovery;
mod segments;
mod sequencer;
mod verify;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::Error;
use crate::format::erasure::SlotRef;
use crate::storage::{FileStorage, LockError, Storage, WriterLock};

pub use admission::{Admission, AdmitDecision, Candidate};
pub use follow::Follower;
pub use notify::Notify;
pub use options::{
    check_tenant, Admitted, Durability, Limits, LogOptions, Receipt, RecordInput, RecoveryReport,
    KIND_USER_MIN,
};
pub use reader::{LogReader, LogStats, OwnedSlot, Record, Scan, Snapshot};
pub use segments::HEAD_FILE_NAME;
pub use sequencer::{WriterCounters, GROUP_BOUNDS};
pub use verify::VerifyReport;

use frames::Frames;
use sequencer::{Command, ManyReply, Reply, ReplyTo};

/// Commands queued for the sequencer before appenders block (back-pressure).
const CHANNEL_CAPACITY: usize = 4096;

/// The writer handle of an open log. `Log` is `Sync`: share it between appending threads.
#[derive(Debug)]
pub struct Log {
    tx: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    storage: Arc<dyn Storage>,
    options: LogOptions,
    notify: Arc<Notify>,
    poisoned: Arc<Mutex<Option<String>>>,
    reader_cache: Arc<reader::ReaderCache>,
    counters: Arc<sequencer::WriterCounters>,
    _lock: Box<dyn WriterLock>,
}

impl Log {
    /// Opens (creating if missing) the log in `dir` for writing, taking the writer lock and
    /// recovering from a crash if the last writer did not close cleanly.
    pub fn open(dir: &Path, options: LogOptions) -> Result<(Log, RecoveryReport), Error> {
        let storage = FileStorage::create_dir(dir)
            .map_err(|e| Error::io(format!("creating the log directory {}", dir.display()), e))?;
        Log::open_with_storage(Arc::new(storage), options)
    }

    /// Opens a log on any storage (the fault-injecting one in tests).
    pub fn open_with_storage(
        storage: Arc<dyn Storage>,
        options: LogOptions,
    ) -> Result<(Log, RecoveryReport), Error> {
        options.validate()?;
        let lock = storage.lock_writer().map_err(|e| match e {
            LockError::Held(pid) => Error::Locked { pid },
            LockError::Io(e) => Error::io("taking the writer lock", e),
        })?;
        let notify = Arc::new(Notify::default());
        let (state, report) = recovery::recover(storage.clone(), options, notify.clone())?;
        let counters = state.counters.clone();
        let poisoned = Arc::new(Mutex::new(None));
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let thread_poison = poisoned.clone();
        let thread = std::thread::Builder::new()
            .name("meshflow-sequencer".to_string())
            .spawn(move || sequencer::run(state, &rx, &thread_poison))
            .map_err(|e| Error::io("starting the sequencer thread", e))?;
        let log = Log {
            tx: Some(tx),
            thread: Some(thread),
            storage,
            options,
            notify,
            poisoned,
            reader_cache: Arc::default(),
            counters,
            _lock: lock,
        };
        Ok((log, report))
    }

    /// Why the writer stopped, if an earlier write failed (the log must then be reopened).
    pub fn poisoned(&self) -> Option<String> {
        self.poisoned.lock().ok().and_then(|p| p.clone())
    }

    /// What the writer has done since the log opened (records, bytes, fsyncs, group commits).
    pub fn counters(&self) -> &sequencer::WriterCounters {
        &self.counters
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    /// A reader sharing this log's storage; it sees what the writer has made durable.
    pub fn reader(&self) -> LogReader {
        LogReader {
            storage: self.storage.clone(),
            options: self.options,
            notify: Some(self.notify.clone()),
            cache: self.reader_cache.clone(),
        }
    }

    /// Appends one record. With [`Durability::Sync`] it returns once the record is durable.
    pub fn append(&self, record: RecordInput, durability: Durability) -> Result<Receipt, Error> {
        let mut receipts = self.append_batch(vec![record], durability)?;
        receipts.pop().ok_or(Error::Closed)
    }

    /// Appends records as one atomic batch: after a crash all of them are present or none.
    pub fn append_batch(
        &self,
        records: Vec<RecordInput>,
        durability: Durability,
    ) -> Result<Vec<Receipt>, Error> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.submit(records, durability, reply_tx)?;
        reply_rx.recv().map_err(|_| self.closed_error())?
    }

    /// Appends records as one atomic batch without waiting: the frames are built on the
    /// calling thread and queued, and `done` is called with the receipts (once durable, for
    /// [`Durability::Sync`]) or the error. `done` runs on the sequencer thread, so it must be
    /// quick and must not block; the writer service uses it to wake an async task. When the
    /// batch is refused before it is queued, the error is returned and `done` is not called.
    pub fn append_batch_then(
        &self,
        records: Vec<RecordInput>,
        durability: Durability,
        done: impl FnOnce(Result<Vec<Receipt>, Error>) + Send + 'static,
    ) -> Result<(), Error> {
        let mut frames = Frames::default();
        frames.push_batch(&records, durability, &self.options.limits)?;
        self.send(Command::Append {
            frames,
            reply: ReplyTo::Call(Box::new(done)),
        })
    }

    /// A pipelined appender: submit many records without waiting, collect receipts later.
    pub fn appender(&self) -> Appender<'_> {
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
        Appender {
            log: self,
            reply_tx,
            reply_rx,
            pending: Frames::default(),
            ready: std::collections::VecDeque::new(),
            in_flight: 0,
        }
    }

    /// Makes every record appended so far durable and published.
    pub fn sync(&self) -> Result<(), Error> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.send(Command::Sync { reply: reply_tx })?;
        reply_rx.recv().map_err(|_| self.closed_error())?
    }

    /// Erases slots in place: appends a durable erasure record naming them (with `note`, the
    /// caller's who/when/why), overwrites each slot with zeros and an erased mark, and fsyncs.
    /// No offset, length, commitment or hash changes. Redone on open if interrupted. A record
    /// naming no slot is a note only (the ledger deletes a run without steps with one).
    pub fn erase(
        &self,
        tenant: &str,
        targets: Vec<SlotRef>,
        note: Vec<u8>,
    ) -> Result<Receipt, Error> {
        check_tenant(tenant)?;
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.send(Command::Erase {
            tenant: tenant.to_string(),
            targets,
            note,
            reply: reply_tx,
        })?;
        reply_rx.recv().map_err(|_| self.closed_error())?
    }

    /// Installs the admission check that the sequencer runs on every batch, in offset order.
    pub fn set_admission(&self, admission: Box<dyn Admission>) -> Result<(), Error> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.send(Command::SetAdmission {
            admission,
            reply: reply_tx,
        })?;
        reply_rx.recv().map_err(|_| self.closed_error())?
    }

    /// Syncs, marks HEAD clean and stops the sequencer.
    pub fn close(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let sent = tx.send(Command::Close { reply: reply_tx }).is_ok();
        drop(tx);
        let result = if sent {
            reply_rx.recv().unwrap_or(Err(Error::Closed))
        } else {
            Err(self.closed_error())
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        result
    }

    fn closed_error(&self) -> Error {
        match self
            .poisoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(reason) => Error::Poisoned { reason },
            None => Error::Closed,
        }
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        tx.send(command).map_err(|_| self.closed_error())
    }

    /// Builds the frames on the calling thread (salts, commitments, digests, most of the CRC)
    /// and queues them for the sequencer.
    fn submit(
        &self,
        records: Vec<RecordInput>,
        durability: Durability,
        reply: Sender<Reply>,
    ) -> Result<(), Error> {
        let mut frames = Frames::default();
        frames.push_batch(&records, durability, &self.options.limits)?;
        self.send(Command::Append {
            frames,
            reply: ReplyTo::One(reply),
        })
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Submissions a pipelined appender gathers before it sends them to the sequencer in one
/// message.
const TRANSPORT_BATCH: usize = 256;

/// A pipelined appender: `submit` returns as soon as the frame is built; receipts come back in
/// submission order from `next_receipts`.
///
/// Submissions are sent to the sequencer in groups of up to 256 (one channel message, one
/// reply), at once for a [`Durability::Sync`] submission, and whenever receipts are asked for.
/// Call [`Appender::sync`] (not `Log::sync`) to make this appender's submissions durable;
/// dropping the appender sends whatever it still holds.
#[derive(Debug)]
pub struct Appender<'a> {
    log: &'a Log,
    reply_tx: Sender<ManyReply>,
    reply_rx: Receiver<ManyReply>,
    pending: Frames,
    ready: std::collections::VecDeque<Reply>,
    in_flight: usize,
}

impl Appender<'_> {
    /// Queues one record.
    pub fn submit(&mut self, record: RecordInput, durability: Durability) -> Result<(), Error> {
        self.submit_batch(vec![record], durability)
    }

    /// Queues an atomic batch. Limits are checked here: a refused batch queues nothing.
    pub fn submit_batch(
        &mut self,
        records: Vec<RecordInput>,
        durability: Durability,
    ) -> Result<(), Error> {
        self.pending
            .push_batch(&records, durability, &self.log.options.limits)?;
        if self.pending.batch_count() >= TRANSPORT_BATCH || durability == Durability::Sync {
            self.send_pending()?;
        }
        Ok(())
    }

    /// Sends the gathered submissions to the sequencer.
    pub fn send_pending(&mut self) -> Result<(), Error> {
        if self.pending.batch_count() == 0 {
            return Ok(());
        }
        let frames = std::mem::take(&mut self.pending);
        let count = frames.batch_count();
        self.log.send(Command::Append {
            frames,
            reply: ReplyTo::Many(self.reply_tx.clone()),
        })?;
        self.in_flight += count;
        Ok(())
    }

    /// Submissions whose receipts have not been collected yet.
    pub fn outstanding(&self) -> usize {
        self.pending.batch_count() + self.in_flight + self.ready.len()
    }

    /// Waits for the receipts of the oldest outstanding submission.
    pub fn next_receipts(&mut self) -> Result<Vec<Receipt>, Error> {
        if self.ready.is_empty() {
            if self.in_flight == 0 {
                self.send_pending()?;
            }
            if self.in_flight == 0 {
                return Err(Error::InvalidInput {
                    reason: "no submission is outstanding".to_string(),
                });
            }
            let reply = self.wait_reply()?;
            self.take_reply(reply);
        }
        self.ready.pop_front().unwrap_or(Err(Error::Closed))
    }

    /// The receipts of the oldest outstanding submission if they are already back; never
    /// waits (and never sends gathered submissions).
    pub fn try_next_receipts(&mut self) -> Option<Result<Vec<Receipt>, Error>> {
        if self.ready.is_empty() {
            let reply = self.reply_rx.try_recv().ok()?;
            self.take_reply(reply);
        }
        self.ready.pop_front()
    }

    /// Waits for the next reply. A poisoned writer answers queued work at once, so a poisoned
    /// writer that stays silent for 100 ms has lost this reply (its thread panicked): give up
    /// with the writer's error instead of waiting forever.
    fn wait_reply(&self) -> Result<ManyReply, Error> {
        loop {
            match self
                .reply_rx
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                Ok(reply) => return Ok(reply),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(self.log.closed_error());
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.log.poisoned.lock().is_ok_and(|p| p.is_some()) {
                        return self
                            .reply_rx
                            .try_recv()
                            .map_err(|_| self.log.closed_error());
                    }
                }
            }
        }
    }

    fn take_reply(&mut self, reply: ManyReply) {
        self.in_flight = self.in_flight.saturating_sub(reply.outcomes.len());
        let mut receipts = reply.receipts.into_iter();
        for outcome in reply.outcomes {
            self.ready
                .push_back(outcome.map(|n| receipts.by_ref().take(n).collect()));
        }
    }

    /// Sends what is gathered and makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.send_pending()?;
        self.log.sync()
    }
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        let _ = self.send_pending();
    }
}
