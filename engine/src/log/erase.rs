//! In-place slot erasure, on the sequencer thread.
//!
//! Order of operations, each step durable before the next:
//! 1. the erasure record (naming every slot) is appended and fsynced, and HEAD is published
//!    with `erase_pending_from` set to its offset;
//! 2. every named slot is overwritten at full length (zeros and the erased mark) and the
//!    touched segments are fsynced;
//! 3. HEAD is published with no erasure pending.
//!
//! A crash anywhere leaves the erasure record durable (or absent, if step 1 did not finish),
//! and recovery redoes the overwrite of every erasure record from `erase_pending_from` on or
//! found past the recovery hint. Overwriting is idempotent.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Error;
use crate::format::erasure::{self, SlotRef, KIND_ERASE};
use crate::format::frame;
use crate::format::head::NONE;
use crate::format::segment_header::segment_file_name;
use crate::format::slot;
use crate::storage::{OpenMode, Storage, StorageFile};

use super::frames::FrameMeta;
use super::options::Receipt;
use super::reader::LogReader;
use super::segments;
use super::sequencer::WriterState;

/// Where one slot lives on disk.
#[derive(Debug, Clone, Copy)]
struct SlotPlace {
    segment_base: u64,
    position: u64,
    stored_len: u64,
    content_len: u64,
}

fn locate(reader: &LogReader, target: SlotRef, erasure_offset: u64) -> Result<SlotPlace, Error> {
    if target.offset >= erasure_offset {
        return Err(Error::InvalidInput {
            reason: format!(
                "erasure target offset {} is not before the erasure",
                target.offset
            ),
        });
    }
    let record = reader
        .get(target.offset)?
        .ok_or_else(|| Error::InvalidInput {
            reason: format!("no durable record at offset {}", target.offset),
        })?;
    let view = record.view();
    if view.kind() == KIND_ERASE {
        return Err(Error::InvalidInput {
            reason: "an erasure record has no slots".to_string(),
        });
    }
    let index = usize::from(target.slot_index);
    let range = view.slot_range(index).ok_or_else(|| Error::InvalidInput {
        reason: format!("record {} has no slot {}", target.offset, target.slot_index),
    })?;
    Ok(SlotPlace {
        segment_base: record.segment_base(),
        position: record.position() + range.start as u64,
        stored_len: range.len() as u64,
        content_len: view.slot_len(index),
    })
}

/// Overwrites every place and fsyncs the touched segment files.
fn overwrite(
    storage: &dyn Storage,
    active: Option<(u64, &Arc<dyn StorageFile>)>,
    places: &[SlotPlace],
) -> Result<(), Error> {
    let mut files: BTreeMap<u64, Arc<dyn StorageFile>> = BTreeMap::new();
    for place in places {
        let file = match files.get(&place.segment_base) {
            Some(f) => f.clone(),
            None => {
                let f = match active {
                    Some((base, f)) if base == place.segment_base => f.clone(),
                    _ => segments::open_segment(storage, place.segment_base, OpenMode::ReadWrite)?,
                };
                files.insert(place.segment_base, f.clone());
                f
            }
        };
        let stored = usize::try_from(place.stored_len).map_err(|_| Error::Closed)?;
        let mut bytes = vec![0u8; stored];
        slot::encode_erased(&mut bytes, place.content_len).ok_or_else(|| Error::InvalidInput {
            reason: "slot size mismatch".to_string(),
        })?;
        let name = segment_file_name(place.segment_base);
        file.write_all_at(&bytes, place.position)
            .map_err(|e| Error::io(format!("erasing a slot in {name}"), e))?;
    }
    for (base, file) in files {
        let name = segment_file_name(base);
        file.sync_data()
            .map_err(|e| Error::io(format!("syncing {name} after erasure"), e))?;
    }
    Ok(())
}

/// Carries out an erasure (see the module docs).
pub fn erase(
    state: &mut WriterState,
    tenant: &str,
    targets: &[SlotRef],
    note: &[u8],
) -> Result<Receipt, Error> {
    state.sync()?;
    let reader = LogReader::with_storage(state.storage.clone(), state.options);
    let next = state.next_offset;
    let places = targets
        .iter()
        .map(|t| locate(&reader, *t, next))
        .collect::<Result<Vec<_>, _>>()?;
    let payload = erasure::encode(targets, note).ok_or_else(|| Error::InvalidInput {
        reason: "erasure too large".to_string(),
    })?;
    let limits = &state.options.limits;
    if payload.len() as u64 > limits.payload_bytes_max {
        return Err(Error::LimitExceeded {
            what: "erasure payload bytes",
            actual: payload.len() as u64,
            max: limits.payload_bytes_max,
        });
    }
    let frame_bytes = frame::frame_bytes(tenant.len() as u64, payload.len() as u64, &[]);
    if frame_bytes > limits.record_bytes_max {
        return Err(Error::LimitExceeded {
            what: "erasure record bytes",
            actual: frame_bytes,
            max: limits.record_bytes_max,
        });
    }
    let prepared =
        frame::prepare(KIND_ERASE, tenant.as_bytes(), &payload, &[], &[]).ok_or_else(|| {
            Error::InvalidInput {
                reason: "erasure record does not fit".to_string(),
            }
        })?;
    // The erasure record skips admission: it is the log's own record.
    let meta = FrameMeta {
        start: 0,
        len: prepared.bytes.len(),
        body_digest: prepared.body_digest,
        crc_tail: prepared.crc_tail,
        condition: None,
    };
    let mut bytes = prepared.bytes;
    let mut receipts = Vec::with_capacity(1);
    let sequenced = state
        .sequence_unchecked(&mut bytes, &[meta], &mut receipts)
        .map(|()| receipts);
    let receipt = sequenced?.pop().ok_or(Error::Closed)?;
    state.erase_pending_from = receipt.offset;
    state.sync()?;
    let active = state.file.clone();
    overwrite(
        state.storage.as_ref(),
        Some((state.active_base, &active)),
        &places,
    )?;
    state.erase_pending_from = NONE;
    state.publish(0)?;
    Ok(receipt)
}

/// Redoes the overwrite of the erasure record `record_offset` with `targets` (recovery).
pub fn redo(
    storage: &Arc<dyn Storage>,
    reader: &LogReader,
    record_offset: u64,
    targets: &[SlotRef],
) -> Result<(), Error> {
    let places = targets
        .iter()
        .map(|t| locate(reader, *t, record_offset))
        .collect::<Result<Vec<_>, _>>()?;
    overwrite(storage.as_ref(), None, &places)
}
