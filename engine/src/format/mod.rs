//! Pure encoding and decoding of every on-disk structure. Nothing here does I/O or reads a
//! clock: callers pass bytes and values in, and get bytes, views or typed errors out.
//!
//! All integers are little-endian with explicit widths; `docs/log-format.md` describes every
//! byte of the log's files (every file starts with a magic and a format version), and
//! `docs/audit-chain.md` §8 the checkpoint notes of [`note`].

pub mod chain;
pub mod erasure;
pub mod frame;
pub mod head;
pub mod index;
pub mod note;
pub mod segment_header;
pub mod slot;

/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Frames, slots and segment headers start at multiples of this many bytes.
pub const ALIGN_BYTES: u64 = 8;

/// Rounds `n` up to the next multiple of [`ALIGN_BYTES`].
pub const fn align_up(n: u64) -> u64 {
    (n + (ALIGN_BYTES - 1)) & !(ALIGN_BYTES - 1)
}

/// Reads a little-endian u16 at `pos`, or `None` when out of range.
pub fn u16_at(bytes: &[u8], pos: usize) -> Option<u16> {
    let b: [u8; 2] = bytes.get(pos..pos.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_le_bytes(b))
}

/// Reads a little-endian u32 at `pos`, or `None` when out of range.
pub fn u32_at(bytes: &[u8], pos: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Reads a little-endian u64 at `pos`, or `None` when out of range.
pub fn u64_at(bytes: &[u8], pos: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(pos..pos.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Reads 32 bytes at `pos`, or `None` when out of range.
pub fn hash_at(bytes: &[u8], pos: usize) -> Option<[u8; 32]> {
    bytes.get(pos..pos.checked_add(32)?)?.try_into().ok()
}

/// Writes `value` at `pos`; returns `None` when out of range (callers size buffers first).
pub fn put_bytes(bytes: &mut [u8], pos: usize, value: &[u8]) -> Option<()> {
    bytes
        .get_mut(pos..pos.checked_add(value.len())?)?
        .copy_from_slice(value);
    Some(())
}

/// Lower-case hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

/// Parses lower- or upper-case hex into 32 bytes.
pub fn hash_from_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *out.get_mut(i)? = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_to_eight() {
        // Proves frame sizes are padded to the documented alignment.
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 8);
        assert_eq!(align_up(8), 8);
        assert_eq!(align_up(113), 120);
    }

    #[test]
    fn hex_round_trips() {
        // Proves hashes print and parse as 64 hex digits.
        let h = [0xabu8; 32];
        assert_eq!(hash_from_hex(&hex(&h)), Some(h));
        assert_eq!(hash_from_hex("zz"), None);
    }

    #[test]
    fn readers_refuse_out_of_range() {
        // Proves the little-endian readers return None instead of panicking past the end.
        let b = [1u8, 0, 0];
        assert_eq!(u16_at(&b, 0), Some(1));
        assert_eq!(u32_at(&b, 0), None);
        assert_eq!(u64_at(&b, usize::MAX), None);
    }
}
