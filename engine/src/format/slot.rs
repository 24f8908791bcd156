//! Erasable slots: the part of a record that may hold personal data.
//!
//! A slot is `state u32 ‖ crc u32 ‖ salt [32] ‖ content ‖ zero padding to 8`. Its commitment
//! (in the record's committed body) is `SHA-256(domain ‖ kind ‖ slot index ‖ salt ‖ content)`.
//! Erasure rewrites the slot in place at full length: state `ERASED`, salt and content zeros,
//! a fresh CRC. No length, offset, commitment or hash changes.

use super::{align_up, put_bytes, u32_at};

/// Bytes before a slot's content: state, CRC and salt.
pub const SLOT_HEADER_BYTES: usize = 40;
/// Bytes per slot descriptor in the committed body: content length and commitment.
pub const SLOT_DESCRIPTOR_BYTES: usize = 36;
/// State word of a slot whose content is present (`"LIVE"`).
pub const SLOT_STATE_LIVE: u32 = u32::from_le_bytes(*b"LIVE");
/// State word of an erased slot (`"ERSD"`).
pub const SLOT_STATE_ERASED: u32 = u32::from_le_bytes(*b"ERSD");

/// Total stored bytes of a slot with `content_len` bytes of content, padding included.
pub fn slot_stored_bytes(content_len: u64) -> u64 {
    align_up(SLOT_HEADER_BYTES as u64 + content_len)
}

/// A decoded slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotView<'a> {
    /// Content present.
    Live {
        /// The slot's salt.
        salt: &'a [u8; 32],
        /// The slot's content.
        content: &'a [u8],
    },
    /// Content erased; only the length survives.
    Erased {
        /// Length of the erased content.
        content_len: u64,
    },
}

/// Why a slot failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    /// The stored bytes are shorter than the descriptor says.
    Truncated,
    /// The state word is neither live nor erased.
    BadState(u32),
    /// The slot CRC does not match.
    BadCrc {
        /// CRC stored in the slot.
        stored: u32,
        /// CRC computed over the slot.
        computed: u32,
    },
    /// An erased slot holds non-zero bytes.
    ErasedNotZero,
    /// The padding after the content is not zero.
    BadPadding,
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotError::Truncated => write!(f, "slot truncated"),
            SlotError::BadState(s) => write!(f, "slot state word {s:#010x} is not LIVE or ERSD"),
            SlotError::BadCrc { stored, computed } => {
                write!(
                    f,
                    "slot CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            SlotError::ErasedNotZero => write!(f, "erased slot holds non-zero bytes"),
            SlotError::BadPadding => write!(f, "slot padding is not zero"),
        }
    }
}

fn slot_crc(state: u32, salt_and_content: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&state.to_le_bytes()), salt_and_content)
}

/// Encodes a live slot into `out` (which must be exactly `slot_stored_bytes(content.len())`
/// long and zeroed). Returns `None` if `out` has the wrong size.
pub fn encode_live(out: &mut [u8], salt: &[u8; 32], content: &[u8]) -> Option<()> {
    if out.len() as u64 != slot_stored_bytes(content.len() as u64) {
        return None;
    }
    put_bytes(out, 0, &SLOT_STATE_LIVE.to_le_bytes())?;
    put_bytes(out, 8, salt)?;
    put_bytes(out, SLOT_HEADER_BYTES, content)?;
    let body = out.get(8..SLOT_HEADER_BYTES + content.len())?;
    let crc = slot_crc(SLOT_STATE_LIVE, body);
    put_bytes(out, 4, &crc.to_le_bytes())
}

/// Rewrites a stored slot (`stored`, padding included) as erased, keeping its length.
pub fn encode_erased(stored: &mut [u8], content_len: u64) -> Option<()> {
    let used = SLOT_HEADER_BYTES.checked_add(usize::try_from(content_len).ok()?)?;
    if stored.len() as u64 != slot_stored_bytes(content_len) {
        return None;
    }
    stored.fill(0);
    put_bytes(stored, 0, &SLOT_STATE_ERASED.to_le_bytes())?;
    let crc = slot_crc(SLOT_STATE_ERASED, stored.get(8..used)?);
    put_bytes(stored, 4, &crc.to_le_bytes())
}

/// Decodes a stored slot whose descriptor says `content_len` bytes of content.
pub fn decode(stored: &[u8], content_len: u64) -> Result<SlotView<'_>, SlotError> {
    let len = usize::try_from(content_len).map_err(|_| SlotError::Truncated)?;
    let used = SLOT_HEADER_BYTES
        .checked_add(len)
        .ok_or(SlotError::Truncated)?;
    let state = u32_at(stored, 0).ok_or(SlotError::Truncated)?;
    let crc_stored = u32_at(stored, 4).ok_or(SlotError::Truncated)?;
    let body = stored.get(8..used).ok_or(SlotError::Truncated)?;
    if stored
        .get(used..)
        .is_some_and(|pad| pad.iter().any(|b| *b != 0))
    {
        return Err(SlotError::BadPadding);
    }
    if state != SLOT_STATE_LIVE && state != SLOT_STATE_ERASED {
        return Err(SlotError::BadState(state));
    }
    let computed = slot_crc(state, body);
    if computed != crc_stored {
        return Err(SlotError::BadCrc {
            stored: crc_stored,
            computed,
        });
    }
    if state == SLOT_STATE_ERASED {
        if body.iter().any(|b| *b != 0) {
            return Err(SlotError::ErasedNotZero);
        }
        return Ok(SlotView::Erased { content_len });
    }
    let salt: &[u8; 32] = body
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .ok_or(SlotError::Truncated)?;
    let content = body.get(32..).ok_or(SlotError::Truncated)?;
    Ok(SlotView::Live { salt, content })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_slot_round_trips_and_erases_in_place() {
        // Proves a slot decodes after encoding and that erasure keeps its stored length.
        let content = b"alice@example.com";
        let mut stored = vec![0u8; slot_stored_bytes(content.len() as u64) as usize];
        encode_live(&mut stored, &[9u8; 32], content).unwrap();
        assert_eq!(
            decode(&stored, content.len() as u64),
            Ok(SlotView::Live {
                salt: &[9u8; 32],
                content
            })
        );
        let before = stored.len();
        encode_erased(&mut stored, content.len() as u64).unwrap();
        assert_eq!(stored.len(), before);
        assert_eq!(
            decode(&stored, content.len() as u64),
            Ok(SlotView::Erased {
                content_len: content.len() as u64
            })
        );
        assert!(!stored.windows(content.len()).any(|w| w == content));
    }

    #[test]
    fn flipped_bits_are_detected() {
        // Proves every bit of a stored slot's used bytes is covered by its CRC or state check.
        let content = b"xyz";
        let mut stored = vec![0u8; slot_stored_bytes(3) as usize];
        encode_live(&mut stored, &[1u8; 32], content).unwrap();
        for bit in 0..stored.len() * 8 {
            let mut copy = stored.clone();
            copy[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&copy, 3).is_err(), "bit {bit} flip undetected");
        }
    }
}
