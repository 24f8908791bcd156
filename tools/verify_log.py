#!/usr/bin/env python3
"""Independent verifier for meshflow log directories (log format version 1).

This file was written from docs/log-format.md only: no Rust source of the engine or the CLI
was read while writing it, so that it checks the document as much as the log. Where the
document is silent, the choice made here is marked "SPEC-GAP" in a comment.

Usage:  python3 tools/verify_log.py LOG_DIR [--json] [--strict-head]

It checks what section 9 of the document lists, for every durable record in offset order:
the frame decodes (length, structure, zero padding, CRC); offsets are dense from 0;
prev_hash equals the previous record's hash (and each segment header's base prev hash
equals the hash before its base); the recomputed chain hash equals `hash`; timestamps never
decrease; batch flags and lengths form whole batches; every slot's CRC holds; every live
slot's content matches its commitment; every erased slot is named by a later erasure
record (kind 0x8001, section 7); HEAD's next offset and head hash equal the last record's.

It reads HEAD first (the valid copy with the higher generation, section 5), then the
segments up to and including HEAD's active segment; the active segment only up to HEAD's
durable length; later segment files are ignored. One segment is held in memory at a time.

HEAD's last-frame position and timestamp are not in section 9; a disagreement there is a
warning on stderr (exit status unchanged) unless --strict-head makes it a mismatch.

Exit codes: 0 valid, 1 a hash / link / commitment mismatch (or another inconsistency
between well-formed, CRC-correct records), 2 usage error, 3 damaged bytes (CRC, structure,
missing or short files). Errors are one line on stderr naming the file, the byte position
and the record offset.

Standard library only.
"""

import argparse
import hashlib
import json
import os
import re
import struct
import sys
from array import array

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 2
EXIT_DAMAGED = 3

U64_MAX = 0xFFFFFFFFFFFFFFFF
ZERO32 = bytes(32)

# ---------------------------------------------------------------------------------------
# CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, init 0xFFFFFFFF, xorout 0xFFFFFFFF.


def _make_crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


CRC_TABLE = _make_crc_table()


def crc32c_update(reg, data, _t=CRC_TABLE):
    """Continue a CRC over `data`; `reg` is the raw register (start with 0xFFFFFFFF)."""
    for b in data:
        reg = _t[(reg & 0xFF) ^ b] ^ (reg >> 8)
    return reg


def crc32c(data):
    return crc32c_update(0xFFFFFFFF, data) ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# ---------------------------------------------------------------------------------------
# Hashes (section 4).

DOMAIN_SLOT = b"meshflow/v1/slot\x00"
DOMAIN_BODY = b"meshflow/v1/body\x00"
DOMAIN_CHAIN = b"meshflow/v1/chain\x00"


def slot_commitment(kind, slot_index, salt, content):
    h = hashlib.sha256(DOMAIN_SLOT)
    h.update(struct.pack("<HH", kind, slot_index))
    h.update(salt)
    h.update(content)
    return h.digest()


def body_digest(slot_count, payload_len, descriptors, payload):
    h = hashlib.sha256(DOMAIN_BODY)
    h.update(struct.pack("<HI", slot_count, payload_len))
    h.update(descriptors)
    h.update(payload)
    return h.digest()


def chain_hash(prev_hash, offset, kind, timestamp_ns, batch_flags, batch_len, tenant, body):
    h = hashlib.sha256(DOMAIN_CHAIN)
    h.update(prev_hash)
    h.update(struct.pack("<QHQBIB", offset, kind, timestamp_ns, batch_flags, batch_len,
                         len(tenant)))
    h.update(tenant)
    h.update(body)
    return h.digest()


# ---------------------------------------------------------------------------------------
# Layouts.

SEG_HEADER = struct.Struct("<8sII Q 32s I I")        # 64 bytes
SEG_MAGIC = b"MESHFSEG"
SEG_HEADER_SIZE = 64

FRAME_HEADER = struct.Struct("<IIQQQHBBIIH2s32s32s")  # 112 bytes
FRAME_HEADER_SIZE = 112

HEAD_COPY = struct.Struct("<8sIIQQQQ32sQQQ20sI")     # 128 bytes
HEAD_MAGIC = b"MESHHEAD"
HEAD_COPY_SIZE = 128

FORMAT_VERSION = 1
MAX_TENANT_LEN = 64
MAX_SLOTS = 64
STATE_LIVE = b"LIVE"
STATE_ERSD = b"ERSD"
KIND_ERASURE = 0x8001
KIND_CRITICAL = 0x8000
FLAG_FIRST = 1
FLAG_LAST = 2

SEG_NAME = re.compile(r"^([0-9]{20})\.seg$")
_U32 = struct.Struct("<I")
_TARGET = struct.Struct("<QHHI")


def align8(n):
    return (n + 7) & ~7


def is_zero(buf):
    return not any(buf)


class VerifyError(Exception):
    def __init__(self, code, file, position, offset, message):
        super().__init__(message)
        self.code = code
        self.file = file
        self.position = position
        self.offset = offset
        self.message = message

    def line(self):
        pos = "-" if self.position is None else str(self.position)
        off = "-" if self.offset is None else str(self.offset)
        kind = {EXIT_MISMATCH: "MISMATCH", EXIT_DAMAGED: "DAMAGED"}.get(self.code, "ERROR")
        return "verify_log: %s: %s: position %s, offset %s: %s" % (
            kind, self.file, pos, off, self.message)

    def as_dict(self):
        return {"valid": False, "exit_code": self.code,
                "error": {"file": self.file, "position": self.position,
                          "offset": self.offset, "message": self.message}}


def damaged(file, pos, off, msg):
    return VerifyError(EXIT_DAMAGED, file, pos, off, msg)


def mismatch(file, pos, off, msg):
    return VerifyError(EXIT_MISMATCH, file, pos, off, msg)


# ---------------------------------------------------------------------------------------
# HEAD (section 5).


class Head:
    __slots__ = ("copy", "flags", "generation", "active_base", "durable_len", "next_offset",
                 "head_hash", "last_frame_pos", "last_frame_ts", "erasure_pending")


def read_head(log_dir):
    path = os.path.join(log_dir, "HEAD")
    try:
        with open(path, "rb") as f:
            raw = f.read(2 * HEAD_COPY_SIZE + 1)
    except FileNotFoundError:
        # SPEC-GAP: section 6 describes recovery without HEAD, section 9 does not say what
        # verify does; without HEAD there is no durable end, so treat it as damage.
        raise damaged("HEAD", None, None, "HEAD is missing")
    except OSError as e:
        raise damaged("HEAD", None, None, "cannot read HEAD: %s" % e)
    best = None
    reasons = []
    for copy in (0, 1):
        chunk = raw[copy * HEAD_COPY_SIZE:(copy + 1) * HEAD_COPY_SIZE]
        if len(chunk) < HEAD_COPY_SIZE:
            reasons.append("copy %d short" % copy)
            continue
        (magic, version, flags, gen, active, dlen, nxt, hhash, lpos, lts, pending, reserved,
         crc) = HEAD_COPY.unpack(chunk)
        if magic != HEAD_MAGIC:
            reasons.append("copy %d bad magic" % copy)
            continue
        if version != FORMAT_VERSION:
            reasons.append("copy %d unsupported version %d" % (copy, version))
            continue
        if crc32c(chunk[:124]) != crc:
            reasons.append("copy %d CRC mismatch" % copy)
            continue
        if not is_zero(reserved):
            reasons.append("copy %d reserved bytes not zero" % copy)
            continue
        # SPEC-GAP: the document says copy g is written at 128*(g mod 2) but does not say
        # whether a reader must reject a copy whose generation has the wrong parity; it
        # lists only magic, version, CRC and reserved bytes as validity, so we do the same.
        if best is None or gen > best.generation:
            h = Head()
            h.copy, h.flags, h.generation = copy, flags, gen
            h.active_base, h.durable_len, h.next_offset = active, dlen, nxt
            h.head_hash, h.last_frame_pos, h.last_frame_ts = hhash, lpos, lts
            h.erasure_pending = pending
            best = h
    if best is None:
        raise damaged("HEAD", None, None, "no valid HEAD copy (%s)" % "; ".join(reasons))
    return best


# ---------------------------------------------------------------------------------------
# The verifier.


class Verifier:
    def __init__(self, log_dir, strict_head=False):
        self.dir = log_dir
        self.strict_head = strict_head
        self.warnings = []
        self.records = 0          # == next expected offset
        self.segments = 0
        self.live = 0
        self.erased = 0
        self.erasure_records = 0
        self.bytes = 0            # frame bytes read
        self.last_hash = ZERO32
        self.last_ts = 0
        self.last_file = "HEAD"
        self.last_pos = None
        # batch state
        self.batch_len = 0        # 0: not inside a batch
        self.batch_seen = 0
        self.batch_start = None
        # slot counts of every record so far (one byte per record): erasure targets must
        # name an existing slot of an earlier record
        self.slot_counts = array("B")
        # erased slots not yet named by a later erasure record: (offset, slot) -> (file, pos)
        self.unresolved = {}
        # active-segment facts for HEAD cross-checks
        self.active_last_pos = U64_MAX
        self.active_last_ts = None

    # -- segments ------------------------------------------------------------------------

    def list_segments(self, head):
        try:
            names = os.listdir(self.dir)
        except OSError as e:
            raise damaged(self.dir, None, None, "cannot list directory: %s" % e)
        segs = []
        for n in names:
            m = SEG_NAME.match(n)
            if m:
                base = int(m.group(1))
                if base <= head.active_base:
                    segs.append((base, n))
        segs.sort()
        if not segs or segs[-1][0] != head.active_base:
            raise damaged("%020d.seg" % head.active_base, None, head.active_base,
                          "HEAD's active segment file is missing")
        return segs

    def run(self):
        head = read_head(self.dir)
        self.head = head
        segs = self.list_segments(head)
        for i, (base, name) in enumerate(segs):
            active = i == len(segs) - 1
            self.verify_segment(base, name, active, head)
        self.finish(head)

    def verify_segment(self, base, name, active, head):
        path = os.path.join(self.dir, name)
        try:
            with open(path, "rb") as f:
                if active:
                    data = f.read(head.durable_len)
                else:
                    data = f.read()
        except OSError as e:
            raise damaged(name, None, base, "cannot read segment: %s" % e)
        if active and len(data) < head.durable_len:
            raise damaged(name, len(data), None,
                          "segment is %d bytes, shorter than HEAD's durable length %d"
                          % (len(data), head.durable_len))
        self.segments += 1
        self.check_segment_header(name, base, data)
        mv = memoryview(data)
        end = len(data)
        pos = SEG_HEADER_SIZE
        while pos < end:
            pos = self.verify_frame(name, mv, pos, end, active)
        # "A batch never spans two segments."
        if self.batch_len:
            raise mismatch(name, end, self.records,
                           "segment ends inside a batch (batch started at offset %d, %d of %d "
                           "records present)" % (self.batch_start, self.batch_seen,
                                                 self.batch_len))
        if not active and pos == SEG_HEADER_SIZE:
            # SPEC-GAP: the document does not say whether an earlier segment may hold no
            # frames; two segments cannot share a base offset, so a frameless earlier
            # segment would be followed by a segment with the same name. Report it.
            raise damaged(name, pos, self.records, "non-active segment holds no records")

    def check_segment_header(self, name, base, data):
        if len(data) < SEG_HEADER_SIZE:
            raise damaged(name, 0, base, "segment shorter than its 64-byte header")
        magic, version, hsize, hbase, base_prev, reserved, crc = SEG_HEADER.unpack_from(data, 0)
        if magic != SEG_MAGIC:
            raise damaged(name, 0, base, "bad segment magic %r" % magic)
        if version != FORMAT_VERSION:
            raise damaged(name, 8, base, "unsupported version %d" % version)
        if crc32c(data[:60]) != crc:
            raise damaged(name, 60, base, "segment header CRC mismatch")
        if hsize != SEG_HEADER_SIZE:
            raise damaged(name, 12, base, "segment header size %d, expected 64" % hsize)
        if reserved != 0:
            raise damaged(name, 56, base, "segment header reserved field not zero")
        if hbase != base:
            raise damaged(name, 16, base,
                          "header base offset %d differs from the file name" % hbase)
        if base > self.records:
            # SPEC-GAP: the document does not say which class a gap between segments (or a
            # first segment not at 0) is. Records are missing, as with a truncated file, so it
            # is reported as damage (3), not as a link mismatch.
            raise damaged(name, 16, base,
                          "segment base offset %d, expected %d: records %d..%d are missing "
                          "(a segment file is missing)" % (base, self.records, self.records,
                                                           base - 1))
        if base < self.records:
            raise mismatch(name, 16, base,
                           "segment base offset %d, expected %d (offsets must be dense; the "
                           "previous segment already holds offset %d)"
                           % (base, self.records, base))
        if base_prev != self.last_hash:
            raise mismatch(name, 24, base,
                           "segment header base prev hash %s differs from the hash of record "
                           "%d (%s)" % (base_prev.hex(), base - 1, self.last_hash.hex()))

    # -- frames --------------------------------------------------------------------------

    def verify_frame(self, name, mv, pos, end, active):
        expect = self.records
        if pos % 8:
            raise damaged(name, pos, expect, "frame position not 8-aligned")
        if end - pos < FRAME_HEADER_SIZE:
            if is_zero(mv[pos:end]):
                raise damaged(name, pos, expect,
                              "unwritten space (zeros) before the end of the durable region")
            raise damaged(name, pos, expect, "truncated frame header (%d bytes left)"
                          % (end - pos))
        (frame_len, crc, offset, ts, synced_len, kind, flags, tenant_len, batch_len,
         payload_len, slot_count, reserved, prev_hash, rec_hash) = \
            FRAME_HEADER.unpack_from(mv, pos)
        if frame_len == 0:
            raise damaged(name, pos, expect,
                          "frame_len 0 (unwritten space) before the end of the durable region")
        if frame_len % 8 or frame_len < FRAME_HEADER_SIZE:
            raise damaged(name, pos, expect, "bad frame_len %d" % frame_len)
        if frame_len > end - pos:
            raise damaged(name, pos, expect, "frame_len %d runs past the end of the %s (%d)"
                          % (frame_len, "durable region" if active else "segment", end))
        if tenant_len > MAX_TENANT_LEN:
            raise damaged(name, pos, expect, "tenant_len %d > 64" % tenant_len)
        if slot_count > MAX_SLOTS:
            raise damaged(name, pos, expect, "slot_count %d > 64" % slot_count)
        region_len = tenant_len + 36 * slot_count + payload_len
        region_end = FRAME_HEADER_SIZE + region_len       # relative to frame start
        if region_end > frame_len:
            raise damaged(name, pos, expect,
                          "committed region (%d bytes) does not fit frame_len %d"
                          % (region_len, frame_len))
        # Frame CRC: committed region, then header bytes 8..112, one continued CRC.
        reg = crc32c_update(0xFFFFFFFF, mv[pos + FRAME_HEADER_SIZE:pos + region_end])
        reg = crc32c_update(reg, mv[pos + 8:pos + FRAME_HEADER_SIZE])
        if reg ^ 0xFFFFFFFF != crc:
            raise damaged(name, pos, expect, "frame CRC mismatch (stored %08x, computed %08x)"
                          % (crc, reg ^ 0xFFFFFFFF))
        if reserved != b"\x00\x00":
            raise damaged(name, pos + 46, expect, "frame header reserved field not zero")
        if flags & ~(FLAG_FIRST | FLAG_LAST):
            raise damaged(name, pos + 34, expect, "batch_flags has unknown bits: %#x" % flags)

        t0 = pos + FRAME_HEADER_SIZE
        tenant = bytes(mv[t0:t0 + tenant_len])
        d0 = t0 + tenant_len
        descriptors = mv[d0:d0 + 36 * slot_count]
        p0 = d0 + 36 * slot_count
        payload = mv[p0:p0 + payload_len]
        content_lens = [_U32.unpack_from(descriptors, 36 * i)[0] for i in range(slot_count)]
        want_len = align8(region_end) + sum(align8(40 + cl) for cl in content_lens)
        if want_len != frame_len:
            raise damaged(name, pos, expect, "frame_len %d, but the layout needs %d"
                          % (frame_len, want_len))
        if not is_zero(mv[pos + region_end:pos + align8(region_end)]):
            raise damaged(name, pos + region_end, expect,
                          "padding after the committed region not zero")
        try:
            tenant_str = tenant.decode("utf-8")
        except UnicodeDecodeError:
            raise damaged(name, t0, expect, "tenant id is not UTF-8")
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in tenant_str):
            # SPEC-GAP: "no control characters" is not defined further; we take Unicode
            # category Cc (C0, DEL, C1).
            raise damaged(name, t0, expect, "tenant id contains control characters")

        # Links and hashes.
        if offset != expect:
            raise mismatch(name, pos, expect, "frame carries offset %d, expected %d"
                           % (offset, expect))
        if prev_hash != self.last_hash:
            raise mismatch(name, pos + 48, offset,
                           "prev_hash %s differs from the previous record's hash %s"
                           % (prev_hash.hex(), self.last_hash.hex()))
        body = body_digest(slot_count, payload_len, descriptors, payload)
        computed = chain_hash(prev_hash, offset, kind, ts, flags, batch_len, tenant, body)
        if computed != rec_hash:
            raise mismatch(name, pos + 80, offset,
                           "chain hash mismatch: stored %s, recomputed %s"
                           % (rec_hash.hex(), computed.hex()))
        if ts < self.last_ts:
            raise mismatch(name, pos + 16, offset, "timestamp %d is before the previous "
                           "record's %d" % (ts, self.last_ts))
        self.check_batch(name, pos, offset, flags, batch_len)

        # Kinds the log itself owns (below 0x0100 ignoring bit 15).
        if (kind & 0x7FFF) < 0x0100:
            if kind == KIND_ERASURE:
                self.apply_erasure(name, pos, offset, slot_count, payload, p0)
            elif kind & KIND_CRITICAL:
                # "a reader that does not know the kind must stop rather than skip it"
                raise damaged(name, pos + 32, offset,
                              "unknown critical log kind %#06x" % kind)
        # SPEC-GAP: critical kinds >= 0x0100 belong to layers above; a log verifier does not
        # interpret their payloads, so it does not stop on them.

        # Slots.
        s = pos + align8(region_end)
        for i, cl in enumerate(content_lens):
            state = mv[s:s + 4]
            (slot_crc,) = _U32.unpack_from(mv, s + 4)
            salt = mv[s + 8:s + 40]
            content = mv[s + 40:s + 40 + cl]
            reg = crc32c_update(0xFFFFFFFF, state)
            reg = crc32c_update(reg, mv[s + 8:s + 40 + cl])
            if reg ^ 0xFFFFFFFF != slot_crc:
                raise damaged(name, s, offset, "slot %d CRC mismatch" % i)
            if not is_zero(mv[s + 40 + cl:s + align8(40 + cl)]):
                raise damaged(name, s + 40 + cl, offset, "slot %d padding not zero" % i)
            state = bytes(state)
            if state == STATE_LIVE:
                commitment = bytes(descriptors[36 * i + 4:36 * i + 36])
                if slot_commitment(kind, i, salt, content) != commitment:
                    raise mismatch(name, s, offset,
                                   "slot %d content does not match its commitment" % i)
                self.live += 1
            elif state == STATE_ERSD:
                if not is_zero(salt) or not is_zero(content):
                    raise damaged(name, s, offset,
                                  "erased slot %d has non-zero salt or content" % i)
                self.erased += 1
                self.unresolved[(offset, i)] = (name, s)
            else:
                raise damaged(name, s, offset, "slot %d has unknown state %r" % (i, state))
            s += align8(40 + cl)

        self.slot_counts.append(slot_count)
        self.records += 1
        self.bytes += frame_len
        self.last_hash = rec_hash
        self.last_ts = ts
        self.last_file = name
        self.last_pos = pos
        if active:
            self.active_last_pos = pos
            self.active_last_ts = ts
        return pos + frame_len

    def check_batch(self, name, pos, offset, flags, batch_len):
        if batch_len < 1:
            raise mismatch(name, pos + 36, offset, "batch_len 0")
        if flags & FLAG_FIRST:
            if self.batch_len:
                raise mismatch(name, pos + 34, offset,
                               "batch starting at offset %d has %d of %d records, then a new "
                               "batch starts" % (self.batch_start, self.batch_seen,
                                                 self.batch_len))
            self.batch_len, self.batch_seen, self.batch_start = batch_len, 1, offset
        else:
            if not self.batch_len:
                raise mismatch(name, pos + 34, offset,
                               "record is not first of a batch but no batch is open")
            if batch_len != self.batch_len:
                raise mismatch(name, pos + 36, offset,
                               "batch_len %d differs from its batch's %d"
                               % (batch_len, self.batch_len))
            self.batch_seen += 1
        if flags & FLAG_LAST:
            if self.batch_seen != self.batch_len:
                raise mismatch(name, pos + 34, offset,
                               "batch ends after %d records, batch_len says %d"
                               % (self.batch_seen, self.batch_len))
            self.batch_len = 0
        elif self.batch_seen >= self.batch_len:
            raise mismatch(name, pos + 34, offset,
                           "record %d of a %d-record batch is not flagged last"
                           % (self.batch_seen, self.batch_len))

    def apply_erasure(self, name, pos, offset, slot_count, payload, p0):
        """Kind 0x8001: u32 target_count, target_count x (u64 offset, u16 slot, u16 0, u32 0),
        u32 note_len, note."""
        if slot_count != 0:
            raise damaged(name, pos, offset, "erasure record has %d slots, expected none"
                          % slot_count)
        n = len(payload)
        if n < 4:
            raise damaged(name, p0, offset, "erasure payload too short")
        (count,) = _U32.unpack_from(payload, 0)
        need = 4 + 16 * count + 4
        if need > n:
            raise damaged(name, p0, offset, "erasure payload too short for %d targets" % count)
        (note_len,) = _U32.unpack_from(payload, 4 + 16 * count)
        if need + note_len != n:
            # SPEC-GAP: the document does not say whether trailing bytes are allowed; the
            # payload grammar has none, so we reject them.
            raise damaged(name, p0, offset, "erasure payload is %d bytes, its layout says %d"
                          % (n, need + note_len))
        targets = []
        for k in range(count):
            t_off, t_slot, z16, z32 = _TARGET.unpack_from(payload, 4 + 16 * k)
            if z16 or z32:
                raise damaged(name, p0 + 4 + 16 * k, offset,
                              "erasure target %d reserved fields not zero" % k)
            # "Every target must name an existing slot of a record before the erasure record."
            # SPEC-GAP: section 9 does not list this check nor its exit class; a CRC- and
            # hash-correct record that breaks it is treated as a consistency failure (1).
            if t_off >= offset:
                raise mismatch(name, p0 + 4 + 16 * k, offset,
                               "erasure target %d names offset %d, not before the erasure "
                               "record" % (k, t_off))
            if t_slot >= self.slot_counts[t_off]:
                raise mismatch(name, p0 + 4 + 16 * k, offset,
                               "erasure target %d names slot %d of offset %d, which has %d "
                               "slots" % (k, t_slot, t_off, self.slot_counts[t_off]))
            targets.append((t_off, t_slot))
        for t in targets:
            self.unresolved.pop(t, None)
        self.erasure_records += 1

    # -- end -----------------------------------------------------------------------------

    def finish(self, head):
        if self.unresolved:
            (off, slot), (name, spos) = min(self.unresolved.items())
            raise mismatch(name, spos, off, "slot %d is erased but no later erasure record "
                           "names it (%d such slot(s))" % (slot, len(self.unresolved)))
        if self.batch_len:  # cannot happen: checked per segment
            raise mismatch(self.last_file, self.last_pos, self.records - 1,
                           "log ends inside a batch")
        hpos = head.copy * HEAD_COPY_SIZE
        if head.next_offset != self.records:
            raise mismatch("HEAD", hpos + 40, head.next_offset,
                           "HEAD next offset %d, but the log holds %d records up to its "
                           "durable end" % (head.next_offset, self.records))
        if head.head_hash != self.last_hash:
            raise mismatch("HEAD", hpos + 48, head.next_offset,
                           "HEAD head hash %s differs from the last record's hash %s"
                           % (head.head_hash.hex(), self.last_hash.hex()))
        # Beyond section 9: HEAD also names the last durable frame of the active segment and
        # its timestamp. Section 6 makes a wrong last-frame position fatal when the log is
        # opened for writing, but section 9 does not list it, so it is reported as a warning
        # (exit status unchanged) unless --strict-head is given.
        if head.last_frame_pos != self.active_last_pos:
            self.head_problem(hpos + 80, "HEAD last-frame position %d, but the active segment's "
                              "last frame is at %d" % (head.last_frame_pos, self.active_last_pos))
        if self.active_last_ts is not None and head.last_frame_ts != self.active_last_ts:
            self.head_problem(hpos + 88, "HEAD last-frame timestamp %d, but the last frame "
                              "carries %d" % (head.last_frame_ts, self.active_last_ts))

    def head_problem(self, pos, msg):
        if self.strict_head:
            raise mismatch("HEAD", pos, self.head.next_offset, msg)
        self.warnings.append("HEAD: position %d, offset %d: %s"
                             % (pos, self.head.next_offset, msg))

    def summary(self):
        return {"valid": True, "records": self.records, "segments": self.segments,
                "live_slots": self.live, "erased_slots": self.erased,
                "erasure_records": self.erasure_records, "frame_bytes": self.bytes,
                "next_offset": self.head.next_offset,
                "head_hash": self.last_hash.hex(),
                "head_generation": self.head.generation,
                "closed_cleanly": bool(self.head.flags & 1),
                "warnings": list(self.warnings)}


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="verify_log.py",
        description="Verify a meshflow log directory against docs/log-format.md "
                    "(exit 0 valid, 1 hash/link/commitment mismatch, 2 usage, "
                    "3 damaged bytes).")
    ap.add_argument("log_dir", metavar="LOG_DIR")
    ap.add_argument("--json", action="store_true", help="print a JSON object on stdout")
    ap.add_argument("--strict-head", action="store_true",
                    help="also fail (exit 1) when HEAD's last-frame position or timestamp "
                         "disagrees with the active segment (not in section 9)")
    args = ap.parse_args(argv)  # exits 2 on usage errors
    if not os.path.isdir(args.log_dir):
        print("verify_log: ERROR: %s: not a directory" % args.log_dir, file=sys.stderr)
        if args.json:
            print(json.dumps({"valid": False, "exit_code": EXIT_USAGE,
                              "error": {"file": args.log_dir, "position": None,
                                        "offset": None, "message": "not a directory"}}))
        return EXIT_USAGE
    v = Verifier(args.log_dir, strict_head=args.strict_head)
    try:
        v.run()
    except VerifyError as e:
        print(e.line(), file=sys.stderr)
        if args.json:
            print(json.dumps(e.as_dict(), sort_keys=True))
        return e.code
    s = v.summary()
    for w in v.warnings:
        print("verify_log: WARNING: " + w, file=sys.stderr)
    if args.json:
        print(json.dumps(s, sort_keys=True))
    else:
        print("LOG VALID: %d records, %d segments, %d live slots, %d erased slots, "
              "head hash %s" % (s["records"], s["segments"], s["live_slots"],
                                s["erased_slots"], s["head_hash"]))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
