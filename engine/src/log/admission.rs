//! The admission step: preconditions that need the log's current state (unique ids, expected
//! run heads, unique names, lock ownership) are checked on the sequencer thread, in offset
//! order, before offsets are assigned. A rejected batch uses no offset and writes nothing.

use crate::format::frame::FrameView;

use super::options::{Admitted, Receipt};

/// What the admission step decides for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitDecision {
    /// Sequence and write the batch; when the list has one entry per record, each record's
    /// receipt carries its entry.
    Accept(Vec<Admitted>),
    /// Refuse it; the appender gets [`crate::Error::Rejected`] with this reason.
    Reject(String),
    /// The batch is an identical retry of records already in the log: return their receipts
    /// and write nothing.
    Duplicate(Vec<Receipt>),
}

/// One record of a batch as the admission step sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The prepared frame (offset, timestamp and chain hash not filled in yet).
    pub frame: FrameView<'a>,
    /// The frame's body digest, already computed by the appending thread.
    pub body_digest: [u8; 32],
    /// The record's [`crate::log::RecordInput::condition`].
    pub condition: Option<u64>,
}

/// A state machine the sequencer consults before sequencing each batch.
///
/// `admit` sees the batch's frames before their offsets, timestamps and hashes are filled in
/// (those header fields read as zero); `first_offset` is the offset the first record will get
/// if accepted. An implementation that accepts must update its own state as if the batch were
/// written: if the write then fails, the writer stops (poisoned) and the log must be reopened.
pub trait Admission: Send + std::fmt::Debug {
    /// Decides whether the batch may be written.
    fn admit(&mut self, first_offset: u64, batch: &[Candidate<'_>]) -> AdmitDecision;
}
