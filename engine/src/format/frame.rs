//! Record frames: the unit of the log.
//!
//! ```text
//! 0    u32  frame_len      whole frame in bytes, padding included (multiple of 8)
//! 4    u32  crc            CRC-32C of committed[112..] followed by header[8..112]
//! 8    u64  offset         dense log offset
//! 16   u64  timestamp_ns   frame timestamp, max(previous, now)
//! 24   u64  synced_len     segment bytes known durable when this frame was written
//! 32   u16  kind           record kind; bit 15 = critical
//! 34   u8   batch_flags    bit 0 first, bit 1 last (a lone record has both)
//! 35   u8   tenant_len     ≤ 64
//! 36   u32  batch_len      records in the batch
//! 40   u32  payload_len    event bytes
//! 44   u16  slot_count
//! 46   u16  reserved (0)
//! 48   [32] prev_hash
//! 80   [32] hash           global chain hash (see `chain`)
//! 112  tenant, slot descriptors (u32 content_len, [32] commitment each), payload,
//!      zero padding to 8, then the slots (see `slot`)
//! ```
//!
//! The appending thread builds the whole frame with [`prepare`], computing the body digest,
//! the slot commitments and the CRC of the variable part. The sequencer then fills in the
//! fixed header with [`seal`], hashing three SHA-256 blocks at most.

use super::chain::{self, ChainFields};
use super::slot::{self, SlotView, SLOT_DESCRIPTOR_BYTES};
use super::{align_up, hash_at, put_bytes, u16_at, u32_at, u64_at};

/// Size of the fixed frame header.
pub const FRAME_HEADER_BYTES: usize = 112;
/// Longest tenant id in bytes.
pub const TENANT_BYTES_MAX: usize = 64;
/// Most slots one record may carry.
pub const SLOT_COUNT_MAX: usize = 64;
/// The largest frame the format can express (`frame_len` is a u32 multiple of 8). Readers and
/// recovery decode against this; the configured `record_bytes_max` only limits new appends.
pub const FRAME_BYTES_STRUCTURAL_MAX: u64 = (u32::MAX as u64) & !7;
/// Kind bit: readers that do not know this kind must stop rather than skip it.
pub const KIND_CRITICAL: u16 = 0x8000;
/// Batch flag: first record of its batch.
pub const BATCH_FIRST: u8 = 0b01;
/// Batch flag: last record of its batch.
pub const BATCH_LAST: u8 = 0b10;

const _: () = assert!(FRAME_HEADER_BYTES.is_multiple_of(8));
const _: () = assert!(TENANT_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(SLOT_COUNT_MAX <= u16::MAX as usize);

/// Why bytes failed to decode as a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The frame length word is zero: unwritten (zero-filled) space.
    Empty,
    /// Fewer bytes are available than the header or the frame length needs.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The frame length is not a multiple of 8, too small, or over the limit.
    BadLength(u32),
    /// The CRC does not match.
    BadCrc {
        /// CRC stored in the frame.
        stored: u32,
        /// CRC computed over the frame.
        computed: u32,
    },
    /// The header's fields disagree with each other or with the frame length.
    BadStructure(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Empty => write!(f, "zero frame length (unwritten space)"),
            FrameError::Truncated { needed, available } => {
                write!(
                    f,
                    "frame truncated: needs {needed} bytes, {available} available"
                )
            }
            FrameError::BadLength(n) => write!(f, "implausible frame length {n}"),
            FrameError::BadCrc { stored, computed } => {
                write!(
                    f,
                    "frame CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            FrameError::BadStructure(why) => write!(f, "malformed frame: {why}"),
        }
    }
}

/// A frame built by an appending thread, waiting for the sequencer to seal it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The whole frame; the header's sequencer-owned fields are still zero.
    pub bytes: Vec<u8>,
    /// Digest of the committed body (descriptors and payload).
    pub body_digest: [u8; 32],
    /// CRC-32C of the frame's bytes from 112 to the end of the payload.
    pub crc_tail: u32,
}

/// The sequencer-owned header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealFields {
    /// Log offset.
    pub offset: u64,
    /// Frame timestamp in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Segment bytes known durable when the frame is written.
    pub synced_len: u64,
    /// Batch flags.
    pub batch_flags: u8,
    /// Records in the batch.
    pub batch_len: u32,
    /// Hash of the previous record.
    pub prev_hash: [u8; 32],
}

/// Bytes of the committed region after the header: tenant, descriptors and payload.
fn committed_tail_bytes(tenant_len: u64, slot_count: u64, payload_len: u64) -> u64 {
    tenant_len + slot_count * SLOT_DESCRIPTOR_BYTES as u64 + payload_len
}

/// The total frame size for the given parts, padding included.
pub fn frame_bytes(tenant_len: u64, payload_len: u64, slot_lens: &[u64]) -> u64 {
    let committed = FRAME_HEADER_BYTES as u64
        + committed_tail_bytes(tenant_len, slot_lens.len() as u64, payload_len);
    align_up(committed)
        + slot_lens
            .iter()
            .map(|n| slot::slot_stored_bytes(*n))
            .sum::<u64>()
}

/// Builds a frame for `kind`, `tenant`, `payload` and `slots` (with one salt per slot).
///
/// Returns `None` when a part is over a structural limit (tenant over 64 bytes, more than
/// [`SLOT_COUNT_MAX`] slots, a length over `u32::MAX`, or salts and slots of unequal count);
/// the log checks its configured limits before calling this.
pub fn prepare(
    kind: u16,
    tenant: &[u8],
    payload: &[u8],
    slots: &[Vec<u8>],
    salts: &[[u8; 32]],
) -> Option<Prepared> {
    if salts.len() != slots.len() {
        return None;
    }
    let mut bytes = Vec::new();
    let mut next_salt = salts.iter();
    let (body_digest, crc_tail) =
        prepare_into(&mut bytes, kind, tenant, payload, slots, &mut |s| {
            if let Some(salt) = next_salt.next() {
                *s = *salt;
            }
        })?;
    Some(Prepared {
        bytes,
        body_digest,
        crc_tail,
    })
}

/// Appends a frame to `out` (see [`prepare`]), drawing one salt per slot from `salt`.
/// Returns the body digest and the CRC of the variable part; on `None`, `out` is unchanged.
pub fn prepare_into(
    out: &mut Vec<u8>,
    kind: u16,
    tenant: &[u8],
    payload: &[u8],
    slots: &[Vec<u8>],
    salt: &mut dyn FnMut(&mut [u8; 32]),
) -> Option<([u8; 32], u32)> {
    let start = out.len();
    let result = encode_frame(out, start, kind, tenant, payload, slots, salt);
    if result.is_none() {
        out.truncate(start);
    }
    result
}

fn encode_frame(
    out: &mut Vec<u8>,
    start: usize,
    kind: u16,
    tenant: &[u8],
    payload: &[u8],
    slots: &[Vec<u8>],
    salt: &mut dyn FnMut(&mut [u8; 32]),
) -> Option<([u8; 32], u32)> {
    if tenant.len() > TENANT_BYTES_MAX || slots.len() > SLOT_COUNT_MAX {
        return None;
    }
    let payload_len = u32::try_from(payload.len()).ok()?;
    let committed = FRAME_HEADER_BYTES as u64
        + committed_tail_bytes(
            tenant.len() as u64,
            slots.len() as u64,
            payload.len() as u64,
        );
    let slots_bytes: u64 = slots
        .iter()
        .map(|c| slot::slot_stored_bytes(c.len() as u64))
        .sum();
    let total = usize::try_from(align_up(committed) + slots_bytes).ok()?;
    let total_u32 = u32::try_from(total).ok()?;
    let slot_count = u16::try_from(slots.len()).ok()?;
    out.resize(start + total, 0);
    let bytes = out.get_mut(start..)?;
    put_bytes(bytes, 0, &total_u32.to_le_bytes())?;
    put_bytes(bytes, 32, &kind.to_le_bytes())?;
    put_bytes(bytes, 35, &[u8::try_from(tenant.len()).ok()?])?;
    put_bytes(bytes, 40, &payload_len.to_le_bytes())?;
    put_bytes(bytes, 44, &slot_count.to_le_bytes())?;
    put_bytes(bytes, FRAME_HEADER_BYTES, tenant)?;
    let descriptors_at = FRAME_HEADER_BYTES + tenant.len();
    let payload_at = descriptors_at + slots.len() * SLOT_DESCRIPTOR_BYTES;
    let mut slot_at = usize::try_from(align_up((payload_at + payload.len()) as u64)).ok()?;
    for (index, content) in slots.iter().enumerate() {
        let mut salt_bytes = [0u8; 32];
        salt(&mut salt_bytes);
        let slot_index = u16::try_from(index).ok()?;
        let commitment = chain::slot_commitment(kind, slot_index, &salt_bytes, content);
        let at = descriptors_at + index * SLOT_DESCRIPTOR_BYTES;
        put_bytes(bytes, at, &u32::try_from(content.len()).ok()?.to_le_bytes())?;
        put_bytes(bytes, at + 4, &commitment)?;
        let stored = usize::try_from(slot::slot_stored_bytes(content.len() as u64)).ok()?;
        slot::encode_live(
            bytes.get_mut(slot_at..slot_at + stored)?,
            &salt_bytes,
            content,
        )?;
        slot_at += stored;
    }
    put_bytes(bytes, payload_at, payload)?;
    let descriptors = bytes.get(descriptors_at..payload_at)?;
    let body_digest = chain::body_digest(slot_count, descriptors, payload);
    let crc_tail = crc32c::crc32c(bytes.get(FRAME_HEADER_BYTES..payload_at + payload.len())?);
    Some((body_digest, crc_tail))
}

/// Fills in the sequencer-owned header fields of a prepared frame, computes the chain hash and
/// the CRC. Returns the record's hash, or `None` if `frame` is not a prepared frame.
pub fn seal(
    frame: &mut [u8],
    prepared_digest: &[u8; 32],
    crc_tail: u32,
    f: &SealFields,
) -> Option<[u8; 32]> {
    let kind = u16_at(frame, 32)?;
    let tenant_len = usize::from(*frame.get(35)?);
    let hash = {
        let tenant = frame.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + tenant_len)?;
        let fields = ChainFields {
            offset: f.offset,
            kind,
            timestamp_ns: f.timestamp_ns,
            batch_flags: f.batch_flags,
            batch_len: f.batch_len,
            tenant,
        };
        chain::chain_hash(&f.prev_hash, &fields, prepared_digest)
    };
    put_bytes(frame, 8, &f.offset.to_le_bytes())?;
    put_bytes(frame, 16, &f.timestamp_ns.to_le_bytes())?;
    put_bytes(frame, 24, &f.synced_len.to_le_bytes())?;
    put_bytes(frame, 34, &[f.batch_flags])?;
    put_bytes(frame, 36, &f.batch_len.to_le_bytes())?;
    put_bytes(frame, 48, &f.prev_hash)?;
    put_bytes(frame, 80, &hash)?;
    let crc = crc32c::crc32c_append(crc_tail, frame.get(8..FRAME_HEADER_BYTES)?);
    put_bytes(frame, 4, &crc.to_le_bytes())?;
    Some(hash)
}

/// A decoded frame: structure and CRC checked; slots, body digest and hash are checked on
/// request.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    bytes: &'a [u8],
    tenant_len: usize,
    slot_count: usize,
    payload_len: usize,
}

/// Decodes the frame at the start of `buf`, checking its length, structure and CRC.
pub fn decode(buf: &[u8], frame_bytes_max: u64) -> Result<FrameView<'_>, FrameError> {
    let available = buf.len() as u64;
    let frame_len = u32_at(buf, 0).ok_or(FrameError::Truncated {
        needed: 4,
        available,
    })?;
    if frame_len == 0 {
        return Err(FrameError::Empty);
    }
    let len64 = u64::from(frame_len);
    if len64 % 8 != 0 || len64 < FRAME_HEADER_BYTES as u64 || len64 > frame_bytes_max {
        return Err(FrameError::BadLength(frame_len));
    }
    let bytes = buf.get(..len64 as usize).ok_or(FrameError::Truncated {
        needed: len64,
        available,
    })?;
    let structure = |why| FrameError::BadStructure(why);
    let tenant_len = usize::from(*bytes.get(35).ok_or(structure("header"))?);
    let payload_len = u32_at(bytes, 40).ok_or(structure("header"))? as usize;
    let slot_count = usize::from(u16_at(bytes, 44).ok_or(structure("header"))?);
    let tail = committed_tail_bytes(tenant_len as u64, slot_count as u64, payload_len as u64);
    if FRAME_HEADER_BYTES as u64 + tail > len64 {
        return Err(FrameError::BadLength(frame_len));
    }
    let committed_end = FRAME_HEADER_BYTES + tail as usize;
    let stored = u32_at(bytes, 4).ok_or(structure("header"))?;
    let tail_bytes = bytes
        .get(FRAME_HEADER_BYTES..committed_end)
        .ok_or(structure("tail"))?;
    let header = bytes
        .get(8..FRAME_HEADER_BYTES)
        .ok_or(structure("header"))?;
    let computed = crc32c::crc32c_append(crc32c::crc32c(tail_bytes), header);
    if computed != stored {
        return Err(FrameError::BadCrc { stored, computed });
    }
    let view = FrameView {
        bytes,
        tenant_len,
        slot_count,
        payload_len,
    };
    view.check_structure()?;
    Ok(view)
}

/// A view of no frame at all (every accessor returns zero or empty).
pub fn empty_view() -> FrameView<'static> {
    FrameView {
        bytes: &[],
        tenant_len: 0,
        slot_count: 0,
        payload_len: 0,
    }
}

/// Parses a frame that was already decoded and checked once (for example by a scan that hands
/// out records): lengths only, no CRC. `None` when the bytes are not a complete frame.
pub fn decode_unchecked(buf: &[u8]) -> Option<FrameView<'_>> {
    let frame_len = usize::try_from(u32_at(buf, 0)?).ok()?;
    let bytes = buf.get(..frame_len)?;
    let tenant_len = usize::from(*bytes.get(35)?);
    let payload_len = u32_at(bytes, 40)? as usize;
    let slot_count = usize::from(u16_at(bytes, 44)?);
    let tail = committed_tail_bytes(tenant_len as u64, slot_count as u64, payload_len as u64);
    if FRAME_HEADER_BYTES as u64 + tail > frame_len as u64 {
        return None;
    }
    Some(FrameView {
        bytes,
        tenant_len,
        slot_count,
        payload_len,
    })
}

impl<'a> FrameView<'a> {
    fn check_structure(&self) -> Result<(), FrameError> {
        if self.tenant_len > TENANT_BYTES_MAX || self.tenant_len == 0 {
            return Err(FrameError::BadStructure("tenant must be 1-64 bytes"));
        }
        match std::str::from_utf8(self.tenant()) {
            Ok(t) if !t.chars().any(char::is_control) => {}
            _ => {
                return Err(FrameError::BadStructure(
                    "tenant is not UTF-8 without control characters",
                ))
            }
        }
        if self.slot_count > SLOT_COUNT_MAX {
            return Err(FrameError::BadStructure("too many slots"));
        }
        if u16_at(self.bytes, 46) != Some(0) {
            return Err(FrameError::BadStructure(
                "reserved header bytes are not zero",
            ));
        }
        let flags = self.batch_flags();
        if flags & !(BATCH_FIRST | BATCH_LAST) != 0 || self.batch_len() == 0 {
            return Err(FrameError::BadStructure("bad batch flags or length"));
        }
        let committed_end =
            self.descriptors_at() + self.slot_count * SLOT_DESCRIPTOR_BYTES + self.payload_len;
        let slots_at = usize::try_from(align_up(committed_end as u64)).unwrap_or(usize::MAX);
        let padding = self
            .bytes
            .get(committed_end..slots_at.min(self.bytes.len()));
        if padding.is_some_and(|p| p.iter().any(|b| *b != 0)) {
            return Err(FrameError::BadStructure(
                "padding after the payload is not zero",
            ));
        }
        let lens: Vec<u64> = (0..self.slot_count).map(|i| self.slot_len(i)).collect();
        let expected = frame_bytes(self.tenant_len as u64, self.payload_len as u64, &lens);
        if expected != self.bytes.len() as u64 {
            return Err(FrameError::BadStructure(
                "slot lengths disagree with the frame length",
            ));
        }
        Ok(())
    }

    fn field_u64(&self, at: usize) -> u64 {
        u64_at(self.bytes, at).unwrap_or(0)
    }

    /// Whole frame length in bytes, padding included.
    pub fn frame_len(&self) -> u64 {
        self.bytes.len() as u64
    }
    /// The frame's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Log offset.
    pub fn offset(&self) -> u64 {
        self.field_u64(8)
    }
    /// Frame timestamp, ns since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.field_u64(16)
    }
    /// Segment bytes known durable when this frame was written.
    pub fn synced_len(&self) -> u64 {
        self.field_u64(24)
    }
    /// Record kind, critical bit included.
    pub fn kind(&self) -> u16 {
        u16_at(self.bytes, 32).unwrap_or(0)
    }
    /// Batch flags.
    pub fn batch_flags(&self) -> u8 {
        self.bytes.get(34).copied().unwrap_or(0)
    }
    /// Records in this record's batch.
    pub fn batch_len(&self) -> u32 {
        u32_at(self.bytes, 36).unwrap_or(0)
    }
    /// Tenant id bytes.
    pub fn tenant(&self) -> &'a [u8] {
        self.bytes
            .get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + self.tenant_len)
            .unwrap_or(&[])
    }
    /// Hash of the previous record.
    pub fn prev_hash(&self) -> [u8; 32] {
        hash_at(self.bytes, 48).unwrap_or([0; 32])
    }
    /// This record's chain hash as stored.
    pub fn hash(&self) -> [u8; 32] {
        hash_at(self.bytes, 80).unwrap_or([0; 32])
    }
    /// Number of slots.
    pub fn slot_count(&self) -> usize {
        self.slot_count
    }
    fn descriptors_at(&self) -> usize {
        FRAME_HEADER_BYTES + self.tenant_len
    }
    /// The slot descriptor table as stored.
    pub fn descriptors(&self) -> &'a [u8] {
        let at = self.descriptors_at();
        self.bytes
            .get(at..at + self.slot_count * SLOT_DESCRIPTOR_BYTES)
            .unwrap_or(&[])
    }
    /// Content length of slot `index` (0 when out of range).
    pub fn slot_len(&self, index: usize) -> u64 {
        u32_at(
            self.bytes,
            self.descriptors_at() + index * SLOT_DESCRIPTOR_BYTES,
        )
        .map_or(0, u64::from)
    }
    /// Commitment of slot `index`.
    pub fn slot_commitment(&self, index: usize) -> Option<[u8; 32]> {
        if index >= self.slot_count {
            return None;
        }
        hash_at(
            self.bytes,
            self.descriptors_at() + index * SLOT_DESCRIPTOR_BYTES + 4,
        )
    }
    /// The event payload.
    pub fn payload(&self) -> &'a [u8] {
        let at = self.descriptors_at() + self.slot_count * SLOT_DESCRIPTOR_BYTES;
        self.bytes.get(at..at + self.payload_len).unwrap_or(&[])
    }
    /// Byte range of slot `index` inside the frame (stored bytes, padding included).
    pub fn slot_range(&self, index: usize) -> Option<std::ops::Range<usize>> {
        if index >= self.slot_count {
            return None;
        }
        let committed_end =
            self.descriptors_at() + self.slot_count * SLOT_DESCRIPTOR_BYTES + self.payload_len;
        let mut at = usize::try_from(align_up(committed_end as u64)).ok()?;
        for i in 0..index {
            at += usize::try_from(slot::slot_stored_bytes(self.slot_len(i))).ok()?;
        }
        let len = usize::try_from(slot::slot_stored_bytes(self.slot_len(index))).ok()?;
        Some(at..at + len)
    }
    /// Decodes slot `index` (checking its CRC).
    pub fn slot(&self, index: usize) -> Result<SlotView<'a>, slot::SlotError> {
        let range = self.slot_range(index).ok_or(slot::SlotError::Truncated)?;
        let stored = self.bytes.get(range).ok_or(slot::SlotError::Truncated)?;
        slot::decode(stored, self.slot_len(index))
    }
    /// Recomputes the body digest from the stored descriptors and payload.
    pub fn body_digest(&self) -> [u8; 32] {
        let count = u16::try_from(self.slot_count).unwrap_or(u16::MAX);
        chain::body_digest(count, self.descriptors(), self.payload())
    }
    /// Recomputes the chain hash from `prev_hash` as stored, the header and the body.
    pub fn compute_hash(&self) -> [u8; 32] {
        self.compute_hash_with_body(&self.body_digest())
    }
    /// [`FrameView::compute_hash`] with the body digest already computed.
    pub fn compute_hash_with_body(&self, body_digest: &[u8; 32]) -> [u8; 32] {
        let fields = ChainFields {
            offset: self.offset(),
            kind: self.kind(),
            timestamp_ns: self.timestamp_ns(),
            batch_flags: self.batch_flags(),
            batch_len: self.batch_len(),
            tenant: self.tenant(),
        };
        chain::chain_hash(&self.prev_hash(), &fields, body_digest)
    }
    /// Checks that slot `index`'s live content matches its commitment (erased slots pass).
    pub fn slot_matches_commitment(&self, index: usize) -> Result<bool, slot::SlotError> {
        match self.slot(index)? {
            SlotView::Erased { .. } => Ok(true),
            SlotView::Live { salt, content } => {
                let idx = u16::try_from(index).map_err(|_| slot::SlotError::Truncated)?;
                let expected = chain::slot_commitment(self.kind(), idx, salt, content);
                Ok(self.slot_commitment(index) == Some(expected))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(offset: u64, slots: &[Vec<u8>]) -> Vec<u8> {
        let salts: Vec<[u8; 32]> = (0..slots.len()).map(|i| [i as u8; 32]).collect();
        let mut p = prepare(0x0101, b"acme", b"{\"step\":1}", slots, &salts).unwrap();
        let f = SealFields {
            offset,
            timestamp_ns: 42,
            synced_len: 64,
            batch_flags: BATCH_FIRST | BATCH_LAST,
            batch_len: 1,
            prev_hash: [3u8; 32],
        };
        seal(&mut p.bytes, &p.body_digest, p.crc_tail, &f).unwrap();
        p.bytes
    }

    #[test]
    fn sealed_frame_decodes_with_every_field() {
        // Proves prepare + seal produce a frame whose fields, slots and hash decode intact.
        let bytes = sealed(7, &[b"in".to_vec(), b"output".to_vec()]);
        let v = decode(&bytes, 1 << 20).unwrap();
        assert_eq!(v.offset(), 7);
        assert_eq!(v.timestamp_ns(), 42);
        assert_eq!(v.synced_len(), 64);
        assert_eq!(v.kind(), 0x0101);
        assert_eq!(v.tenant(), b"acme");
        assert_eq!(v.payload(), b"{\"step\":1}");
        assert_eq!(v.prev_hash(), [3u8; 32]);
        assert_eq!(v.hash(), v.compute_hash());
        assert_eq!(v.frame_len() % 8, 0);
        assert!(matches!(
            v.slot(1),
            Ok(SlotView::Live {
                content: b"output",
                ..
            })
        ));
        assert!(v.slot_matches_commitment(0).unwrap());
        assert!(v.slot_matches_commitment(1).unwrap());
    }

    #[test]
    fn every_committed_bit_flip_is_caught_by_crc() {
        // Proves a flip of any bit in the header or committed body fails decode (never passes).
        let bytes = sealed(1, &[b"x".to_vec()]);
        let v = decode(&bytes, 1 << 20).unwrap();
        let committed = FRAME_HEADER_BYTES + 4 + SLOT_DESCRIPTOR_BYTES + v.payload().len();
        for bit in 0..committed * 8 {
            let mut copy = bytes.clone();
            copy[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&copy, 1 << 20).is_err(), "bit {bit} flip undetected");
        }
    }

    #[test]
    fn zero_and_short_buffers_are_typed_errors() {
        // Proves unwritten space and truncation decode to distinct errors, not panics.
        assert_eq!(decode(&[0u8; 200], 1 << 20).unwrap_err(), FrameError::Empty);
        let bytes = sealed(1, &[]);
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1], 1 << 20),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&bytes[..3], 1 << 20),
            Err(FrameError::Truncated { .. })
        ));
    }
}
