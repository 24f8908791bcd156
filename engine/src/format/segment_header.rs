//! The 64-byte header at the start of every segment file.
//!
//! ```text
//! 0   [8]  magic "MESHFSEG"
//! 8   u32  format version
//! 12  u32  header size (64)
//! 16  u64  base offset (offset of the segment's first record)
//! 24  [32] prev hash at base (hash of the record before the base offset; zeros at 0)
//! 56  u32  reserved (0)
//! 60  u32  CRC-32C of bytes 0..60
//! ```

use super::{hash_at, put_bytes, u32_at, u64_at, FORMAT_VERSION};

/// Segment file magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"MESHFSEG";
/// Size of the segment header; the first frame starts here.
pub const SEGMENT_HEADER_BYTES: usize = 64;

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Offset of the first record in the segment.
    pub base_offset: u64,
    /// Chain hash of the record before `base_offset`.
    pub base_prev_hash: [u8; 32],
}

/// Why a segment header failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentHeaderError {
    /// Fewer than 64 bytes.
    Truncated,
    /// The magic is wrong: not a meshflow segment.
    BadMagic,
    /// A newer format version than this build reads.
    UnsupportedVersion(u32),
    /// CRC or reserved fields are wrong.
    BadCrc,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES];
        let header_bytes = SEGMENT_HEADER_BYTES as u32;
        // The buffer is sized for every field, so these writes cannot fail.
        let _ = put_bytes(&mut out, 0, &SEGMENT_MAGIC);
        let _ = put_bytes(&mut out, 8, &FORMAT_VERSION.to_le_bytes());
        let _ = put_bytes(&mut out, 12, &header_bytes.to_le_bytes());
        let _ = put_bytes(&mut out, 16, &self.base_offset.to_le_bytes());
        let _ = put_bytes(&mut out, 24, &self.base_prev_hash);
        let crc = crc32c::crc32c(out.get(..60).unwrap_or(&[]));
        let _ = put_bytes(&mut out, 60, &crc.to_le_bytes());
        out
    }

    /// Decodes and checks a header.
    pub fn decode(bytes: &[u8]) -> Result<Self, SegmentHeaderError> {
        let head = bytes
            .get(..SEGMENT_HEADER_BYTES)
            .ok_or(SegmentHeaderError::Truncated)?;
        if head.get(..8) != Some(&SEGMENT_MAGIC[..]) {
            return Err(SegmentHeaderError::BadMagic);
        }
        let crc = crc32c::crc32c(head.get(..60).unwrap_or(&[]));
        if u32_at(head, 60) != Some(crc) {
            return Err(SegmentHeaderError::BadCrc);
        }
        let version = u32_at(head, 8).ok_or(SegmentHeaderError::Truncated)?;
        if version != FORMAT_VERSION {
            return Err(SegmentHeaderError::UnsupportedVersion(version));
        }
        if u32_at(head, 12) != Some(SEGMENT_HEADER_BYTES as u32) || u32_at(head, 56) != Some(0) {
            return Err(SegmentHeaderError::BadCrc);
        }
        Ok(SegmentHeader {
            base_offset: u64_at(head, 16).ok_or(SegmentHeaderError::Truncated)?,
            base_prev_hash: hash_at(head, 24).ok_or(SegmentHeaderError::Truncated)?,
        })
    }
}

/// The file name of the segment whose first record has `base_offset`: 20 digits + `.seg`.
pub fn segment_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.seg")
}

/// Parses a segment file name back to its base offset.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        // Proves the header decodes after encoding and that any flipped bit is refused.
        let h = SegmentHeader {
            base_offset: 1234,
            base_prev_hash: [5u8; 32],
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for bit in 0..SEGMENT_HEADER_BYTES * 8 {
            let mut copy = bytes;
            copy[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&copy).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn names_sort_by_offset() {
        // Proves segment names are fixed-width so lexical order is offset order.
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
    }
}
