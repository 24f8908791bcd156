//! The `HEAD` file: what the writer has made durable, published after every group commit.
//!
//! The file holds two 128-byte copies. Generation `g` is written to copy `g % 2`, so a torn
//! write (or a reader racing the writer) spoils at most one copy and readers take the valid
//! copy with the higher generation.
//!
//! ```text
//! 0   [8]  magic "MESHHEAD"
//! 8   u32  format version
//! 12  u32  flags (bit 0: closed cleanly)
//! 16  u64  generation
//! 24  u64  active segment base offset
//! 32  u64  durable length of the active segment in bytes
//! 40  u64  next offset (records 0..next are durable)
//! 48  [32] head hash (hash of record next-1; zeros when empty)
//! 80  u64  last frame position in the active segment (u64::MAX: none)
//! 88  u64  last frame timestamp, ns
//! 96  u64  erasure pending from offset (u64::MAX: none pending)
//! 104 [20] reserved (0)
//! 124 u32  CRC-32C of bytes 0..124
//! ```

use super::{hash_at, put_bytes, u32_at, u64_at, FORMAT_VERSION};

/// HEAD magic.
pub const HEAD_MAGIC: [u8; 8] = *b"MESHHEAD";
/// Bytes per HEAD copy.
pub const HEAD_COPY_BYTES: usize = 128;
/// Total HEAD file size (two copies).
pub const HEAD_FILE_BYTES: usize = 2 * HEAD_COPY_BYTES;
/// Flag: the writer closed the log cleanly after this publication.
pub const HEAD_FLAG_CLEAN: u32 = 1;
/// Marker for "none" in position and offset fields.
pub const NONE: u64 = u64::MAX;

/// One publication of the durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Flags (see [`HEAD_FLAG_CLEAN`]).
    pub flags: u32,
    /// Increases by one with every publication.
    pub generation: u64,
    /// Base offset of the segment being appended to.
    pub active_base: u64,
    /// Bytes of the active segment that are durable.
    pub durable_len: u64,
    /// Offset the next record will get; records below it are durable.
    pub next_offset: u64,
    /// Hash of the last durable record (zeros when the log is empty).
    pub head_hash: [u8; 32],
    /// Byte position of the last durable frame in the active segment, or [`NONE`].
    pub last_frame_pos: u64,
    /// Timestamp of the last durable frame (ns).
    pub last_timestamp_ns: u64,
    /// Offset of the oldest erasure record whose overwrite may be incomplete, or [`NONE`].
    pub erase_pending_from: u64,
}

impl Head {
    /// Encodes one copy.
    pub fn encode(&self) -> [u8; HEAD_COPY_BYTES] {
        let mut out = [0u8; HEAD_COPY_BYTES];
        let _ = put_bytes(&mut out, 0, &HEAD_MAGIC);
        let _ = put_bytes(&mut out, 8, &FORMAT_VERSION.to_le_bytes());
        let _ = put_bytes(&mut out, 12, &self.flags.to_le_bytes());
        let _ = put_bytes(&mut out, 16, &self.generation.to_le_bytes());
        let _ = put_bytes(&mut out, 24, &self.active_base.to_le_bytes());
        let _ = put_bytes(&mut out, 32, &self.durable_len.to_le_bytes());
        let _ = put_bytes(&mut out, 40, &self.next_offset.to_le_bytes());
        let _ = put_bytes(&mut out, 48, &self.head_hash);
        let _ = put_bytes(&mut out, 80, &self.last_frame_pos.to_le_bytes());
        let _ = put_bytes(&mut out, 88, &self.last_timestamp_ns.to_le_bytes());
        let _ = put_bytes(&mut out, 96, &self.erase_pending_from.to_le_bytes());
        let crc = crc32c::crc32c(out.get(..124).unwrap_or(&[]));
        let _ = put_bytes(&mut out, 124, &crc.to_le_bytes());
        out
    }

    /// Decodes one copy; `None` when torn, foreign or of another version.
    pub fn decode_copy(bytes: &[u8]) -> Option<Head> {
        let b = bytes.get(..HEAD_COPY_BYTES)?;
        if b.get(..8)? != HEAD_MAGIC || u32_at(b, 124)? != crc32c::crc32c(b.get(..124)?) {
            return None;
        }
        if u32_at(b, 8)? != FORMAT_VERSION || b.get(104..124)?.iter().any(|x| *x != 0) {
            return None;
        }
        Some(Head {
            flags: u32_at(b, 12)?,
            generation: u64_at(b, 16)?,
            active_base: u64_at(b, 24)?,
            durable_len: u64_at(b, 32)?,
            next_offset: u64_at(b, 40)?,
            head_hash: hash_at(b, 48)?,
            last_frame_pos: u64_at(b, 80)?,
            last_timestamp_ns: u64_at(b, 88)?,
            erase_pending_from: u64_at(b, 96)?,
        })
    }

    /// Decodes a whole HEAD file: the valid copy with the highest generation.
    pub fn decode_file(bytes: &[u8]) -> Option<Head> {
        let a = bytes.get(..HEAD_COPY_BYTES).and_then(Head::decode_copy);
        let b = bytes
            .get(HEAD_COPY_BYTES..HEAD_FILE_BYTES)
            .and_then(Head::decode_copy);
        match (a, b) {
            (Some(a), Some(b)) => Some(if a.generation >= b.generation { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Byte position in the HEAD file where this generation's copy goes.
    pub fn copy_position(&self) -> u64 {
        (self.generation % 2) * HEAD_COPY_BYTES as u64
    }

    /// Whether the writer closed cleanly after this publication.
    pub fn is_clean(&self) -> bool {
        self.flags & HEAD_FLAG_CLEAN != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(generation: u64) -> Head {
        Head {
            flags: 0,
            generation,
            active_base: 0,
            durable_len: 64 + generation,
            next_offset: generation,
            head_hash: [1u8; 32],
            last_frame_pos: NONE,
            last_timestamp_ns: 0,
            erase_pending_from: NONE,
        }
    }

    #[test]
    fn newer_valid_copy_wins_and_torn_copy_is_ignored() {
        // Proves readers pick the highest valid generation and survive one torn copy.
        let mut file = [0u8; HEAD_FILE_BYTES];
        for g in [4u64, 5] {
            let h = head(g);
            let at = h.copy_position() as usize;
            file[at..at + HEAD_COPY_BYTES].copy_from_slice(&h.encode());
        }
        assert_eq!(Head::decode_file(&file), Some(head(5)));
        file[HEAD_COPY_BYTES + 20] ^= 0xff;
        assert_eq!(Head::decode_file(&file), Some(head(4)));
        assert_eq!(Head::decode_file(&[0u8; 10]), None);
    }
}
