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
mod index;
mod notify;
mod options;
mod reader;
mod recovery;
mod segments;
mod sequencer;
mod verify;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rand::RngCore;

use crate::error::Error;
use crate::format::erasure::SlotRef;
use crate::format::frame::{self, Prepared};
use crate::storage::{FileStorage, LockError, Storage, WriterLock};

pub use admission::{Admission, AdmitDecision};
pub use follow::Follower;
pub use notify::Notify;
pub use options::{
    check_tenant, Durability, Limits, LogOptions, Receipt, RecordInput, RecoveryReport,
    KIND_USER_MIN,
};
pub use reader::{LogReader, LogStats, OwnedSlot, Record, Scan, Snapshot};
pub use segments::HEAD_FILE_NAME;
pub use verify::VerifyReport;

use sequencer::{Command, Reply};

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
            _lock: lock,
        };
        Ok((log, report))
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

    /// A pipelined appender: submit many records without waiting, collect receipts later.
    pub fn appender(&self) -> Appender<'_> {
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
        Appender {
            log: self,
            reply_tx,
            reply_rx,
            outstanding: 0,
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
    /// No offset, length, commitment or hash changes. Redone on open if interrupted.
    pub fn erase(
        &self,
        tenant: &str,
        targets: Vec<SlotRef>,
        note: Vec<u8>,
    ) -> Result<Receipt, Error> {
        check_tenant(tenant)?;
        if targets.is_empty() {
            return Err(Error::InvalidInput {
                reason: "an erasure names no slots".to_string(),
            });
        }
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
            Ok(())
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

    /// Builds the frames on the calling thread and queues them for the sequencer.
    fn submit(
        &self,
        records: Vec<RecordInput>,
        durability: Durability,
        reply: Sender<Reply>,
    ) -> Result<(), Error> {
        let limits = &self.options.limits;
        if records.is_empty() {
            return Err(Error::InvalidInput {
                reason: "an empty batch".to_string(),
            });
        }
        if records.len() as u64 > limits.batch_records_max {
            return Err(Error::LimitExceeded {
                what: "batch records",
                actual: records.len() as u64,
                max: limits.batch_records_max,
            });
        }
        let mut prepared = Vec::with_capacity(records.len());
        let mut batch_bytes = 0u64;
        for record in &records {
            let p = prepare(record, limits)?;
            batch_bytes += p.bytes.len() as u64;
            prepared.push(p);
        }
        if batch_bytes > limits.batch_bytes_max {
            return Err(Error::LimitExceeded {
                what: "batch bytes",
                actual: batch_bytes,
                max: limits.batch_bytes_max,
            });
        }
        self.send(Command::Append {
            frames: prepared,
            durability,
            reply,
        })
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Checks a record against the limits and builds its frame (salts from a userspace CSPRNG).
fn prepare(record: &RecordInput, limits: &Limits) -> Result<Prepared, Error> {
    let kind_base = record.kind & !frame::KIND_CRITICAL;
    if kind_base < KIND_USER_MIN {
        return Err(Error::InvalidInput {
            reason: format!("record kind {:#06x} is reserved for the log", record.kind),
        });
    }
    let slot_lens: Vec<u64> = record.slots.iter().map(|s| s.len() as u64).collect();
    let frame_bytes = frame::frame_bytes(
        record.tenant.len() as u64,
        record.payload.len() as u64,
        &slot_lens,
    );
    limits.check_record(record, frame_bytes)?;
    let mut rng = rand::rng();
    let salts: Vec<[u8; 32]> = record
        .slots
        .iter()
        .map(|_| {
            let mut salt = [0u8; 32];
            rng.fill_bytes(&mut salt);
            salt
        })
        .collect();
    frame::prepare(
        record.kind,
        record.tenant.as_bytes(),
        &record.payload,
        &record.slots,
        &salts,
    )
    .ok_or_else(|| Error::InvalidInput {
        reason: "record does not fit a frame".to_string(),
    })
}

/// A pipelined appender: `submit` returns as soon as the frame is queued; receipts come back
/// in submission order from `next_receipts`.
#[derive(Debug)]
pub struct Appender<'a> {
    log: &'a Log,
    reply_tx: Sender<Reply>,
    reply_rx: Receiver<Reply>,
    outstanding: usize,
}

impl Appender<'_> {
    /// Queues one record.
    pub fn submit(&mut self, record: RecordInput, durability: Durability) -> Result<(), Error> {
        self.submit_batch(vec![record], durability)
    }

    /// Queues an atomic batch.
    pub fn submit_batch(
        &mut self,
        records: Vec<RecordInput>,
        durability: Durability,
    ) -> Result<(), Error> {
        self.log
            .submit(records, durability, self.reply_tx.clone())?;
        self.outstanding += 1;
        Ok(())
    }

    /// Submissions whose receipts have not been collected yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Waits for the receipts of the oldest outstanding submission.
    pub fn next_receipts(&mut self) -> Result<Vec<Receipt>, Error> {
        if self.outstanding == 0 {
            return Err(Error::InvalidInput {
                reason: "no submission is outstanding".to_string(),
            });
        }
        let reply = self.reply_rx.recv().map_err(|_| self.log.closed_error())?;
        self.outstanding -= 1;
        reply
    }
}
