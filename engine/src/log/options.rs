//! Options, limits and the small value types of the log's public API.

use crate::error::Error;
use crate::format::frame::{FRAME_HEADER_BYTES, SLOT_COUNT_MAX, TENANT_BYTES_MAX};
use crate::format::segment_header::SEGMENT_HEADER_BYTES;

const MIB: u64 = 1024 * 1024;

/// Every size and count the log bounds. A violation is a typed error before anything is
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (header, body and slots) in bytes.
    pub record_bytes_max: u64,
    /// Largest event payload in bytes.
    pub payload_bytes_max: u64,
    /// Largest single slot's content in bytes.
    pub slot_bytes_max: u64,
    /// Most slots per record.
    pub slot_count_max: u64,
    /// Most records in one atomic batch.
    pub batch_records_max: u64,
    /// Most bytes in one atomic batch (a batch never spans segments).
    pub batch_bytes_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            record_bytes_max: 40 * MIB,
            payload_bytes_max: 16 * MIB,
            slot_bytes_max: 16 * MIB,
            slot_count_max: SLOT_COUNT_MAX as u64,
            batch_records_max: 100_000,
            batch_bytes_max: 48 * MIB,
        }
    }
}

/// How a log is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Roll to a new segment before one would grow past this many bytes.
    pub segment_bytes_max: u64,
    /// Size and count limits.
    pub limits: Limits,
    /// A sparse index entry is written every this many segment bytes.
    pub index_interval_bytes: u64,
    /// Readers map segments in windows of this many bytes (a record larger than a window gets
    /// a window of its own).
    pub read_window_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes_max: 64 * MIB,
            limits: Limits::default(),
            index_interval_bytes: 16 * 1024,
            read_window_bytes: 32 * MIB,
        }
    }
}

impl LogOptions {
    /// Checks that the options are consistent (a batch fits in a segment, and so on).
    pub fn validate(&self) -> Result<(), Error> {
        let l = &self.limits;
        let segment_room = self
            .segment_bytes_max
            .saturating_sub(SEGMENT_HEADER_BYTES as u64);
        let checks: [(&str, bool); 6] = [
            (
                "segment_bytes_max must be at most 4 GiB",
                self.segment_bytes_max <= 4096 * MIB,
            ),
            (
                "batch_bytes_max must fit in a segment",
                l.batch_bytes_max <= segment_room,
            ),
            (
                "record_bytes_max must fit in a batch",
                l.record_bytes_max <= l.batch_bytes_max,
            ),
            (
                "record_bytes_max must fit a frame",
                l.record_bytes_max >= FRAME_HEADER_BYTES as u64,
            ),
            (
                "slot_count_max must be at most 64",
                l.slot_count_max <= SLOT_COUNT_MAX as u64,
            ),
            (
                "index_interval_bytes and read_window_bytes must be positive",
                self.index_interval_bytes > 0 && self.read_window_bytes >= 4096,
            ),
        ];
        for (reason, ok) in checks {
            if !ok {
                return Err(Error::InvalidInput {
                    reason: reason.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// When an append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Returns once the record is durable (fsynced and published in HEAD). The default.
    Sync,
    /// Returns once the record is sequenced and written; durable at the next `sync()`.
    Buffered,
}

/// Kinds below this value (ignoring the critical bit) belong to the log itself.
pub const KIND_USER_MIN: u16 = 0x0100;

/// One record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInput {
    /// Record kind (≥ 0x0100; bit 15 marks it critical).
    pub kind: u16,
    /// Tenant id: 1–64 bytes of UTF-8 without control characters.
    pub tenant: String,
    /// The event payload (committed, never erasable).
    pub payload: Vec<u8>,
    /// Erasable slots.
    pub slots: Vec<Vec<u8>>,
    /// A condition for the admission step (for example a run's expected length); handed to
    /// [`crate::log::Admission::admit`] beside the frame and never written.
    pub condition: Option<u64>,
}

impl RecordInput {
    /// A record with no slots.
    pub fn new(kind: u16, tenant: impl Into<String>, payload: Vec<u8>) -> Self {
        RecordInput {
            kind,
            tenant: tenant.into(),
            payload,
            slots: Vec::new(),
            condition: None,
        }
    }

    /// Adds an erasable slot.
    pub fn with_slot(mut self, content: Vec<u8>) -> Self {
        self.slots.push(content);
        self
    }
}

/// Checks a tenant id: 1–64 bytes, no control characters.
pub fn check_tenant(tenant: &str) -> Result<(), Error> {
    if tenant.is_empty() || tenant.len() > TENANT_BYTES_MAX {
        return Err(Error::InvalidInput {
            reason: format!("tenant id must be 1-64 bytes, got {}", tenant.len()),
        });
    }
    if tenant.chars().any(char::is_control) {
        return Err(Error::InvalidInput {
            reason: "tenant id contains a control character".to_string(),
        });
    }
    Ok(())
}

impl Limits {
    /// Checks one record against the limits.
    pub fn check_record(&self, record: &RecordInput, frame_bytes: u64) -> Result<(), Error> {
        check_tenant(&record.tenant)?;
        let over = |what, actual: u64, max: u64| {
            if actual > max {
                Err(Error::LimitExceeded { what, actual, max })
            } else {
                Ok(())
            }
        };
        over(
            "payload bytes",
            record.payload.len() as u64,
            self.payload_bytes_max,
        )?;
        over("slot count", record.slots.len() as u64, self.slot_count_max)?;
        for slot in &record.slots {
            over("slot bytes", slot.len() as u64, self.slot_bytes_max)?;
        }
        over("record bytes", frame_bytes, self.record_bytes_max)
    }
}

/// What an acknowledged append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The record's log offset.
    pub offset: u64,
    /// The record's global chain hash.
    pub hash: [u8; 32],
    /// The record's frame timestamp (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// What the admission step computed for the record, if anything (the ledger: the step's
    /// index in its run and its entry hash).
    pub admitted: Option<Admitted>,
}

/// A position and a hash the admission step derived for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// A position (the ledger: the step's index in its run).
    pub index: u64,
    /// A hash (the ledger: the step's entry hash).
    pub hash: [u8; 32],
}

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The log directory was created by this open.
    pub created: bool,
    /// The writer had closed cleanly.
    pub clean: bool,
    /// HEAD was missing or unreadable and recovery scanned the last segment from its start.
    pub head_missing: bool,
    /// Records found beyond the published HEAD and kept.
    pub records_recovered: u64,
    /// Bytes of torn tail cut from the last segment.
    pub torn_bytes_truncated: u64,
    /// Segment files removed because their creation was interrupted.
    pub segments_removed: u64,
    /// Erasure records whose overwrite was redone.
    pub erasures_redone: u64,
    /// Index files rebuilt from their segments.
    pub indexes_rebuilt: u64,
    /// Offset the next record gets.
    pub next_offset: u64,
}
