//! Sparse per-segment index files (`<base>.idx`): one entry every few KiB of segment bytes,
//! mapping an offset to its frame's byte position and timestamp. Frame timestamps never
//! decrease, so the same entries serve lookups by offset and by time.
//!
//! Index files are hints: written without fsync, validated entry by entry, and rebuilt from
//! the segment when missing or damaged. A reader also checks that the frame an entry points
//! at carries the entry's offset before trusting it.
//!
//! ```text
//! file:  [8] magic "MESHFIDX" ‖ u32 version ‖ u32 reserved, then entries
//! entry: u64 offset ‖ u64 position ‖ u64 timestamp_ns ‖ u32 reserved ‖ u32 CRC-32C of 0..28
//! ```

use super::{put_bytes, u32_at, u64_at, FORMAT_VERSION};

/// Index file magic.
pub const INDEX_MAGIC: [u8; 8] = *b"MESHFIDX";
/// Size of the index file header.
pub const INDEX_HEADER_BYTES: usize = 16;
/// Size of one index entry.
pub const INDEX_ENTRY_BYTES: usize = 32;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Record offset.
    pub offset: u64,
    /// Byte position of the record's frame in its segment.
    pub position: u64,
    /// The record's frame timestamp.
    pub timestamp_ns: u64,
}

/// The index file header.
pub fn encode_header() -> [u8; INDEX_HEADER_BYTES] {
    let mut out = [0u8; INDEX_HEADER_BYTES];
    let _ = put_bytes(&mut out, 0, &INDEX_MAGIC);
    let _ = put_bytes(&mut out, 8, &FORMAT_VERSION.to_le_bytes());
    out
}

impl IndexEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; INDEX_ENTRY_BYTES] {
        let mut out = [0u8; INDEX_ENTRY_BYTES];
        let _ = put_bytes(&mut out, 0, &self.offset.to_le_bytes());
        let _ = put_bytes(&mut out, 8, &self.position.to_le_bytes());
        let _ = put_bytes(&mut out, 16, &self.timestamp_ns.to_le_bytes());
        let crc = crc32c::crc32c(out.get(..28).unwrap_or(&[]));
        let _ = put_bytes(&mut out, 28, &crc.to_le_bytes());
        out
    }

    /// Decodes one entry; `None` when its CRC fails.
    pub fn decode(bytes: &[u8]) -> Option<IndexEntry> {
        let b = bytes.get(..INDEX_ENTRY_BYTES)?;
        if u32_at(b, 28)? != crc32c::crc32c(b.get(..28)?) || u32_at(b, 24)? != 0 {
            return None;
        }
        Some(IndexEntry {
            offset: u64_at(b, 0)?,
            position: u64_at(b, 8)?,
            timestamp_ns: u64_at(b, 16)?,
        })
    }
}

/// Decodes an index file, keeping the longest valid prefix of strictly increasing entries.
/// Returns `None` when the header is not an index header of this version.
pub fn decode_file(bytes: &[u8]) -> Option<Vec<IndexEntry>> {
    if bytes.get(..8)? != INDEX_MAGIC || u32_at(bytes, 8)? != FORMAT_VERSION {
        return None;
    }
    let mut entries: Vec<IndexEntry> = Vec::new();
    for chunk in bytes
        .get(INDEX_HEADER_BYTES..)?
        .chunks_exact(INDEX_ENTRY_BYTES)
    {
        let Some(entry) = IndexEntry::decode(chunk) else {
            break;
        };
        if let Some(last) = entries.last() {
            let increasing = entry.offset > last.offset && entry.position > last.position;
            if !increasing || entry.timestamp_ns < last.timestamp_ns {
                break;
            }
        }
        entries.push(entry);
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_entries_end_the_valid_prefix() {
        // Proves a torn or flipped entry truncates the index to its valid prefix.
        let mut file = encode_header().to_vec();
        for i in 0..4u64 {
            let e = IndexEntry {
                offset: i * 10,
                position: 64 + i * 100,
                timestamp_ns: i,
            };
            file.extend_from_slice(&e.encode());
        }
        assert_eq!(decode_file(&file).map(|v| v.len()), Some(4));
        file[INDEX_HEADER_BYTES + 2 * INDEX_ENTRY_BYTES + 3] ^= 1;
        assert_eq!(decode_file(&file).map(|v| v.len()), Some(2));
        assert_eq!(decode_file(b"garbage"), None);
    }
}
