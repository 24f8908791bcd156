//! The payload of a log-level erasure record (kind [`KIND_ERASE`]): which slots to erase, and
//! an opaque note from the layer above (who, when, why).
//!
//! ```text
//! u32 target_count ‖ target_count × (u64 offset ‖ u16 slot_index ‖ u16 0 ‖ u32 0)
//! ‖ u32 note_len ‖ note
//! ```

use super::{put_bytes, u16_at, u32_at, u64_at};

/// Record kind of an erasure record: critical, owned by the log.
pub const KIND_ERASE: u16 = 0x8001;
/// Bytes per target entry.
pub const TARGET_BYTES: usize = 16;

/// One slot to erase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotRef {
    /// Offset of the record holding the slot.
    pub offset: u64,
    /// Index of the slot in that record.
    pub slot_index: u16,
}

/// Encodes an erasure payload.
pub fn encode(targets: &[SlotRef], note: &[u8]) -> Option<Vec<u8>> {
    let count = u32::try_from(targets.len()).ok()?;
    let note_len = u32::try_from(note.len()).ok()?;
    let mut out = vec![0u8; 4 + targets.len() * TARGET_BYTES + 4 + note.len()];
    put_bytes(&mut out, 0, &count.to_le_bytes())?;
    for (i, t) in targets.iter().enumerate() {
        let at = 4 + i * TARGET_BYTES;
        put_bytes(&mut out, at, &t.offset.to_le_bytes())?;
        put_bytes(&mut out, at + 8, &t.slot_index.to_le_bytes())?;
    }
    let at = 4 + targets.len() * TARGET_BYTES;
    put_bytes(&mut out, at, &note_len.to_le_bytes())?;
    put_bytes(&mut out, at + 4, note)?;
    Some(out)
}

/// Decodes an erasure payload into its targets and note; `None` when malformed.
pub fn decode(payload: &[u8]) -> Option<(Vec<SlotRef>, &[u8])> {
    let count = usize::try_from(u32_at(payload, 0)?).ok()?;
    let targets_end = 4usize.checked_add(count.checked_mul(TARGET_BYTES)?)?;
    if payload.len() < targets_end + 4 {
        return None;
    }
    let mut targets = Vec::with_capacity(count);
    for i in 0..count {
        let at = 4 + i * TARGET_BYTES;
        if u16_at(payload, at + 10)? != 0 || u32_at(payload, at + 12)? != 0 {
            return None;
        }
        targets.push(SlotRef {
            offset: u64_at(payload, at)?,
            slot_index: u16_at(payload, at + 8)?,
        });
    }
    let note_len = usize::try_from(u32_at(payload, targets_end)?).ok()?;
    let note = payload.get(targets_end + 4..targets_end + 4 + note_len)?;
    if targets_end + 4 + note_len != payload.len() {
        return None;
    }
    Some((targets, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_rejects_trailing_bytes() {
        // Proves erasure payloads decode exactly and that malformed ones are refused.
        let targets = [
            SlotRef {
                offset: 5,
                slot_index: 1,
            },
            SlotRef {
                offset: 9,
                slot_index: 0,
            },
        ];
        let bytes = encode(&targets, b"{\"why\":\"gdpr\"}").unwrap();
        let (t, note) = decode(&bytes).unwrap();
        assert_eq!(t, targets);
        assert_eq!(note, b"{\"why\":\"gdpr\"}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
    }
}
