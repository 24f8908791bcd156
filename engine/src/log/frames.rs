//! Frames built by an appending thread, back to back in one buffer, on their way to the
//! sequencer. One buffer carries one or many atomic batches, so a pipelined appender allocates
//! (and the sequencer frees) one buffer per 256 batches instead of one per record: frees of
//! memory another thread allocated contend on the allocator's locks.

use rand::RngCore;

use crate::error::Error;
use crate::format::frame;

use super::options::{Durability, Limits, RecordInput, KIND_USER_MIN};

/// Where one frame sits in the buffer, and what the sequencer needs to seal it.
#[derive(Debug, Clone, Copy)]
pub struct FrameMeta {
    pub start: usize,
    pub len: usize,
    pub body_digest: [u8; 32],
    pub crc_tail: u32,
    pub condition: Option<u64>,
}

/// One atomic batch: a run of consecutive frames.
#[derive(Debug, Clone, Copy)]
pub struct BatchMeta {
    pub frame_count: usize,
    pub durability: Durability,
}

/// Frames of one or more atomic batches.
#[derive(Debug, Default)]
pub struct Frames {
    pub bytes: Vec<u8>,
    pub metas: Vec<FrameMeta>,
    pub batches: Vec<BatchMeta>,
}

impl Frames {
    /// Number of atomic batches held.
    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }

    /// Builds the frames of one batch at the end of the buffer, checking every limit. On an
    /// error nothing of the batch stays in the buffer.
    pub fn push_batch(
        &mut self,
        records: &[RecordInput],
        durability: Durability,
        limits: &Limits,
    ) -> Result<(), Error> {
        let (bytes_before, metas_before) = (self.bytes.len(), self.metas.len());
        let result = self.encode_batch(records, limits);
        match result {
            Ok(()) => {
                self.batches.push(BatchMeta {
                    frame_count: records.len(),
                    durability,
                });
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(bytes_before);
                self.metas.truncate(metas_before);
                Err(e)
            }
        }
    }

    fn encode_batch(&mut self, records: &[RecordInput], limits: &Limits) -> Result<(), Error> {
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
        let batch_start = self.bytes.len();
        // One allocation for the whole batch: a fork of 10,000 steps grew the buffer by
        // doubling, and clearing the fresh pages took most of its time.
        let estimate: u64 = records.iter().map(stored_len).sum();
        self.bytes
            .reserve(usize::try_from(estimate.min(limits.batch_bytes_max)).unwrap_or(0));
        self.metas.reserve(records.len());
        let mut rng = rand::rng();
        for record in records {
            check_record(record, limits)?;
            let start = self.bytes.len();
            let (body_digest, crc_tail) = frame::prepare_into(
                &mut self.bytes,
                record.kind,
                record.tenant.as_bytes(),
                &record.payload,
                &record.slots,
                &mut |salt| rng.fill_bytes(salt),
            )
            .ok_or_else(|| Error::InvalidInput {
                reason: "record does not fit a frame".to_string(),
            })?;
            let len = self.bytes.len() - start;
            self.metas.push(FrameMeta {
                start,
                len,
                body_digest,
                crc_tail,
                condition: record.condition,
            });
        }
        let batch_bytes = (self.bytes.len() - batch_start) as u64;
        if batch_bytes > limits.batch_bytes_max {
            return Err(Error::LimitExceeded {
                what: "batch bytes",
                actual: batch_bytes,
                max: limits.batch_bytes_max,
            });
        }
        Ok(())
    }
}

/// Checks one record's kind and limits before it is encoded.
fn check_record(record: &RecordInput, limits: &Limits) -> Result<(), Error> {
    let kind_base = record.kind & !frame::KIND_CRITICAL;
    if kind_base < KIND_USER_MIN {
        return Err(Error::InvalidInput {
            reason: format!("record kind {:#06x} is reserved for the log", record.kind),
        });
    }
    limits.check_record(record, stored_len(record))
}

/// The bytes a record's frame takes in a segment.
fn stored_len(record: &RecordInput) -> u64 {
    let committed = frame::FRAME_HEADER_BYTES as u64
        + record.tenant.len() as u64
        + record.slots.len() as u64 * crate::format::slot::SLOT_DESCRIPTOR_BYTES as u64
        + record.payload.len() as u64;
    let slots: u64 = record
        .slots
        .iter()
        .map(|s| crate::format::slot::slot_stored_bytes(s.len() as u64))
        .sum();
    crate::format::align_up(committed) + slots
}
