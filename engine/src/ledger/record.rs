//! Steps as agents send them and as the log gives them back: the mapping between a step and
//! its log record (kind, tenant, canonical payload, four slots), and reading a step back with
//! its redacted fields shown as redacted.

use crate::error::Error;
use crate::format::frame::FrameView;
use crate::format::segment_header::segment_file_name;
use crate::log::{OwnedSlot, Record, RecordInput};

use super::step::{self, StepFields, KIND_STEP};

/// A step as an agent sends it: the committed fields and the four erasable ones.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInput {
    /// Committed fields.
    pub fields: StepFields,
    /// The task given to the node.
    pub input_task: String,
    /// What the node produced.
    pub output_content: String,
    /// Why the step was blocked (empty when it was not).
    pub block_reason: String,
    /// The metadata's exact JSON text; it must be a JSON object.
    pub metadata_json: String,
}

impl StepInput {
    /// The log record for this step, validated (fields, metadata) before anything is written.
    pub fn to_record(&self, tenant: &str) -> Result<RecordInput, Error> {
        self.clone().into_record(tenant)
    }

    /// [`StepInput::to_record`], moving the slot contents instead of copying them.
    pub fn into_record(self, tenant: &str) -> Result<RecordInput, Error> {
        let invalid = |e: step::StepError| Error::InvalidInput {
            reason: e.to_string(),
        };
        let payload = self.fields.encode().map_err(invalid)?;
        let metadata: serde_json::Value =
            serde_json::from_str(&self.metadata_json).map_err(|e| Error::InvalidInput {
                reason: format!("metadata: {e}"),
            })?;
        if !metadata.is_object() {
            return Err(Error::InvalidInput {
                reason: "metadata must be a JSON object".to_string(),
            });
        }
        Ok(RecordInput::new(KIND_STEP, tenant, payload)
            .with_slot(self.input_task.into_bytes())
            .with_slot(self.output_content.into_bytes())
            .with_slot(self.block_reason.into_bytes())
            .with_slot(self.metadata_json.into_bytes()))
    }
}

/// One erasable field as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// The content.
    Text(String),
    /// Erased: only its length and commitment survive.
    Redacted {
        /// Length of the erased content in bytes.
        len: u64,
        /// The commitment it had (and keeps).
        commitment: [u8; 32],
    },
}

/// A step read back from its log record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStep {
    /// Committed fields.
    pub fields: StepFields,
    /// Tenant the record was written for.
    pub tenant: String,
    /// The record's log offset.
    pub offset: u64,
    /// `input_task`, `output_content`, `block_reason`, `metadata`, in slot order.
    pub slots: [FieldValue; step::slot::COUNT],
    /// The salt of each live slot (an auditor needs it to recompute the commitment).
    pub salts: [Option<[u8; 32]>; step::slot::COUNT],
}

fn damaged(record: &Record, why: String) -> Error {
    Error::corrupt(
        segment_file_name(record.segment_base()),
        record.position(),
        Some(record.offset()),
        why,
    )
}

/// Reads the step a record holds; `Ok(None)` when the record is not a step.
pub fn read_step(record: &Record) -> Result<Option<StoredStep>, Error> {
    let view: FrameView<'_> = record.view();
    if view.kind() != KIND_STEP {
        return Ok(None);
    }
    let fields = StepFields::decode(view.payload()).map_err(|e| damaged(record, e.to_string()))?;
    if view.slot_count() != step::slot::COUNT {
        return Err(damaged(
            record,
            format!("a step has {} slots, not 4", view.slot_count()),
        ));
    }
    let mut slots: [FieldValue; step::slot::COUNT] =
        std::array::from_fn(|_| FieldValue::Text(String::new()));
    let mut salts = [None; step::slot::COUNT];
    for (index, (value, salt_out)) in slots.iter_mut().zip(salts.iter_mut()).enumerate() {
        let (slot, salt) = record.slot_with_salt(index)?;
        *salt_out = salt;
        *value = match slot {
            OwnedSlot::Live(bytes) => FieldValue::Text(
                String::from_utf8(bytes)
                    .map_err(|_| damaged(record, format!("slot {index} is not UTF-8")))?,
            ),
            OwnedSlot::Erased(len) => FieldValue::Redacted {
                len,
                commitment: view.slot_commitment(index).unwrap_or([0; 32]),
            },
        };
    }
    Ok(Some(StoredStep {
        fields,
        tenant: record.tenant(),
        offset: view.offset(),
        slots,
        salts,
    }))
}

/// The entry hash of the step `record` holds, given the run's previous entry hash and the
/// step's index (its body digest is computed here: reads that only display a step skip it).
pub fn step_entry_hash(record: &Record, prev_entry_hash: &[u8; 32], step_index: u64) -> [u8; 32] {
    let view = record.view();
    step::entry_hash(
        prev_entry_hash,
        step_index,
        view.offset(),
        view.tenant(),
        &view.body_digest(),
    )
}
