"""Tests for tools/verify_log.py (standard library only).

Run:  MESHFLOW_TEST_LOG=/path/to/log python3 -m unittest tools/test_verify_log.py

MESHFLOW_TEST_LOG names a valid meshflow log directory, for example one made by
`meshflow demo --dir /tmp/vlog1` (4,002 records: 4,000 steps, one erasure, one checkpoint-digest event; every case then runs in well under a
second). The tests never modify it: each case copies it to a temporary directory, tampers
with the copy and checks the exit code of verify_log.py. Without MESHFLOW_TEST_LOG the
log-based tests are skipped; the CRC and hash test vectors of docs/log-format.md always run.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
VERIFY = os.path.join(HERE, "verify_log.py")
sys.path.insert(0, HERE)
import verify_log  # noqa: E402

LOG = os.environ.get("MESHFLOW_TEST_LOG")

FRAME_HDR = 112


def align8(n):
    return (n + 7) & ~7


def crc32c(data):
    return verify_log.crc32c(data)


def read_head(d):
    """(copy position, active base, durable length) of the HEAD copy a reader would use."""
    with open(os.path.join(d, "HEAD"), "rb") as fh:
        raw = fh.read()
    best = None
    for copy in (0, 1):
        c = raw[128 * copy:128 * copy + 128]
        if len(c) < 128 or c[:8] != b"MESHHEAD" or crc32c(c[:124]) != struct.unpack_from(
                "<I", c, 124)[0]:
            continue
        gen, active, dlen = struct.unpack_from("<QQQ", c, 16)
        if best is None or gen > best[0]:
            best = (gen, 128 * copy, active, dlen)
    assert best is not None, "no valid HEAD copy in the test log"
    return best[1:]


def seg_path(d, base):
    return os.path.join(d, "%020d.seg" % base)


def frames(d, base, limit=None):
    """Yield dicts describing the frames of segment `base` (positions in the file)."""
    with open(seg_path(d, base), "rb") as fh:
        data = fh.read()
    end = len(data) if limit is None else limit
    pos = 64
    while pos < end:
        (flen, crc, off, ts, synced, kind, flags, tlen, blen, plen, scount) = \
            struct.unpack_from("<IIQQQHBBIIH", data, pos)
        region_end = FRAME_HDR + tlen + 36 * scount + plen
        slots = []
        s = pos + align8(region_end)
        for i in range(scount):
            cl = struct.unpack_from("<I", data, pos + FRAME_HDR + tlen + 36 * i)[0]
            slots.append({"pos": s, "content_len": cl, "state": data[s:s + 4]})
            s += align8(40 + cl)
        yield {"pos": pos, "len": flen, "offset": off, "kind": kind, "tenant_len": tlen,
               "slot_count": scount, "payload_len": plen, "region_end": region_end,
               "payload_pos": pos + FRAME_HDR + tlen + 36 * scount, "slots": slots}
        pos += flen


def pick_frame(d, base, limit=None, skip=10):
    """A frame with a payload and at least one live, non-empty slot, past the first `skip`."""
    for i, f in enumerate(frames(d, base, limit)):
        if i < skip:
            continue
        if f["payload_len"] > 0 and any(s["state"] == b"LIVE" and s["content_len"] > 0
                                        for s in f["slots"]):
            return f
    raise AssertionError("no suitable frame in the test log")


def patch(path, pos, new_bytes):
    with open(path, "r+b") as fh:
        fh.seek(pos)
        fh.write(new_bytes)


def read_at(path, pos, n):
    with open(path, "rb") as fh:
        fh.seek(pos)
        return fh.read(n)


def flip(path, pos, mask=0x01):
    b = read_at(path, pos, 1)[0]
    patch(path, pos, bytes([b ^ mask]))


def refresh_frame_crc(path, f):
    frame = read_at(path, f["pos"], f["len"])
    crc = crc32c(frame[FRAME_HDR:f["region_end"]] + frame[8:FRAME_HDR])
    patch(path, f["pos"] + 4, struct.pack("<I", crc))


def refresh_slot_crc(path, slot):
    raw = read_at(path, slot["pos"], 40 + slot["content_len"])
    patch(path, slot["pos"] + 4, struct.pack("<I", crc32c(raw[:4] + raw[8:])))


def live_slot(f):
    return next(s for s in f["slots"] if s["state"] == b"LIVE" and s["content_len"] > 0)


def segments(d):
    """Bases of the segments a reader reads (up to HEAD's active one), in order."""
    _, active, _ = read_head(d)
    return sorted(b for b in (int(n[:20]) for n in os.listdir(d)
                              if n.endswith(".seg") and len(n) == 24) if b <= active)


def rechain(d, recommit=()):
    """Make the whole log consistent again after header or body edits, the way someone who
    rewrites the log would: recompute slot commitments of the records in `recommit` (their
    live slots), every body digest and chain hash, every frame CRC, every segment header's
    base prev hash and CRC, and HEAD's head hash (both copies)."""
    _, active, dlen = read_head(d)
    prev = bytes(32)
    for base in segments(d):
        p = seg_path(d, base)
        with open(p, "rb") as fh:
            data = bytearray(fh.read())
        data[24:56] = prev
        data[60:64] = struct.pack("<I", crc32c(bytes(data[:60])))
        for f in frames(d, base, dlen if base == active else None):
            pos = f["pos"]
            kind, flags, tlen, blen, plen, scount = struct.unpack_from("<HBBIIH", data, pos + 32)
            (off, ts) = struct.unpack_from("<QQ", data, pos + 8)
            t0 = pos + FRAME_HDR
            if off in recommit:
                for i, sl in enumerate(f["slots"]):
                    if bytes(data[sl["pos"]:sl["pos"] + 4]) == b"LIVE":
                        salt = bytes(data[sl["pos"] + 8:sl["pos"] + 40])
                        content = bytes(data[sl["pos"] + 40:sl["pos"] + 40 + sl["content_len"]])
                        c = verify_log.slot_commitment(kind, i, salt, content)
                        dpos = t0 + tlen + 36 * i + 4
                        data[dpos:dpos + 32] = c
            desc = bytes(data[t0 + tlen:t0 + tlen + 36 * scount])
            payload = bytes(data[t0 + tlen + 36 * scount:t0 + tlen + 36 * scount + plen])
            body = verify_log.body_digest(scount, plen, desc, payload)
            h = verify_log.chain_hash(prev, off, kind, ts, flags, blen,
                                      bytes(data[t0:t0 + tlen]), body)
            data[pos + 48:pos + 80] = prev
            data[pos + 80:pos + 112] = h
            crc = crc32c(bytes(data[t0:pos + f["region_end"]]) + bytes(data[pos + 8:pos + 112]))
            data[pos + 4:pos + 8] = struct.pack("<I", crc)
            prev = h
        with open(p, "wb") as fh:
            fh.write(data)
    _rewrite_head(d, 48, "<32s", prev)


# ---- tamper builders: each takes a copied log directory and changes it in place ----------

def t_payload_flip(d):
    """Flip a byte of a record's payload: the frame CRC fails (damaged bytes)."""
    f = pick_frame(d, 0)
    flip(seg_path(d, 0), f["payload_pos"] + f["payload_len"] // 2)


def t_slot_flip(d):
    """Flip a byte of a live slot's content: the slot CRC fails (damaged bytes)."""
    f = pick_frame(d, 0)
    s = live_slot(f)
    flip(seg_path(d, 0), s["pos"] + 40 + s["content_len"] // 2)


def t_payload_flip_crc_fixed(d):
    """Change the payload and recompute the frame CRC: only the chain hash catches it."""
    f = pick_frame(d, 0)
    p = seg_path(d, 0)
    flip(p, f["payload_pos"] + f["payload_len"] // 2)
    refresh_frame_crc(p, f)


def t_slot_flip_crc_fixed(d):
    """Change a live slot's content and recompute its slot CRC: the commitment catches it."""
    f = pick_frame(d, 0)
    s = live_slot(f)
    p = seg_path(d, 0)
    flip(p, s["pos"] + 40 + s["content_len"] // 2)
    refresh_slot_crc(p, s)


def t_timestamp_crc_fixed(d):
    """Change a frame's timestamp and recompute the frame CRC: the chain hash catches it."""
    f = pick_frame(d, 0)
    p = seg_path(d, 0)
    flip(p, f["pos"] + 16)
    refresh_frame_crc(p, f)


def t_truncate_active(d):
    """Cut the active segment 8 bytes below HEAD's durable length."""
    _, active, dlen = read_head(d)
    os.truncate(seg_path(d, active), dlen - 8)


def t_erase_by_hand(d):
    """Erase a live slot in place (ERSD, zero salt and content, fresh slot CRC) without an
    erasure record naming it."""
    f = pick_frame(d, 0)
    s = live_slot(f)
    p = seg_path(d, 0)
    patch(p, s["pos"], b"ERSD")
    patch(p, s["pos"] + 8, bytes(32 + s["content_len"]))
    refresh_slot_crc(p, s)


def t_segment_header_flip(d):
    """Flip a byte of the first segment's base prev hash without fixing its CRC."""
    flip(seg_path(d, 0), 30)


def t_padding_nonzero(d):
    """Set a zero padding byte after a committed region or a slot (padding is under no CRC,
    it must be zero)."""
    p = seg_path(d, 0)
    for f in frames(d, 0):
        if align8(f["region_end"]) > f["region_end"]:
            patch(p, f["pos"] + f["region_end"], b"\x01")
            return
        for s in f["slots"]:
            if s["content_len"] % 8:
                patch(p, s["pos"] + 40 + s["content_len"], b"\x01")
                return
    raise unittest.SkipTest("no frame with padding in the test log")


def t_reserved_nonzero_crc_fixed(d):
    """Set the frame header's reserved field and recompute the frame CRC: structure error."""
    f = pick_frame(d, 0)
    p = seg_path(d, 0)
    patch(p, f["pos"] + 46, b"\x01")
    refresh_frame_crc(p, f)


def t_active_payload_flip_crc_fixed(d):
    """Like payload_flip_crc_fixed, in the active segment (the last segment of a multi-segment
    log), below HEAD's durable end."""
    _, active, dlen = read_head(d)
    f = pick_frame(d, active, limit=dlen, skip=0)
    p = seg_path(d, active)
    flip(p, f["payload_pos"] + f["payload_len"] // 2)
    refresh_frame_crc(p, f)


def t_active_header_prev_hash_crc_fixed(d):
    """Change the active segment header's base prev hash and recompute the header CRC."""
    _, active, _ = read_head(d)
    p = seg_path(d, active)
    flip(p, 40)
    patch(p, 60, struct.pack("<I", crc32c(read_at(p, 0, 60))))


def _rewrite_head(d, field_pos, fmt, value):
    p = os.path.join(d, "HEAD")
    for copy in (0, 1):
        base = 128 * copy
        patch(p, base + field_pos, struct.pack(fmt, value))
        patch(p, base + 124, struct.pack("<I", crc32c(read_at(p, base, 124))))


def t_head_next_offset_fixed(d):
    """Lower HEAD's next offset by one in both copies, CRCs recomputed."""
    p = os.path.join(d, "HEAD")
    pos, _, _ = read_head(d)
    (nxt,) = struct.unpack("<Q", read_at(p, pos + 40, 8))
    _rewrite_head(d, 40, "<Q", nxt - 1)


def t_head_hash_fixed(d):
    """Change HEAD's head hash in both copies, CRCs recomputed."""
    _rewrite_head(d, 48, "<32s", b"\x42" * 32)


def t_head_both_copies(d):
    """Damage both HEAD copies."""
    p = os.path.join(d, "HEAD")
    flip(p, 20)
    flip(p, 128 + 20)


def t_head_newer_copy(d):
    """Damage only the copy a reader would pick; the other copy still describes the log
    (a clean close writes the same state twice) so the log stays valid."""
    pos, _, _ = read_head(d)
    flip(os.path.join(d, "HEAD"), pos + 124)


def t_garbage_past_durable_end(d):
    """Bytes past HEAD's durable length are not read."""
    _, active, _ = read_head(d)
    with open(seg_path(d, active), "ab") as fh:
        fh.write(b"\xAB" * 4096)


def t_segment_beyond_active(d):
    """A segment file beyond the active one is ignored."""
    _, active, _ = read_head(d)
    with open(seg_path(d, active + 10 ** 9), "wb") as fh:
        fh.write(b"garbage" * 100)


def _frame_at(d, index):
    return list(frames(d, 0))[index]


def t_rechain_only(d):
    """Recompute every hash and CRC without changing anything: still valid (checks rechain)."""
    rechain(d)


def t_timestamp_backwards_rechained(d):
    """Record 20's timestamp one below record 19's, whole chain rewritten consistently."""
    f, g = _frame_at(d, 20), _frame_at(d, 19)
    p = seg_path(d, 0)
    (ts,) = struct.unpack("<Q", read_at(p, g["pos"] + 16, 8))
    patch(p, f["pos"] + 16, struct.pack("<Q", ts - 1))
    rechain(d)


def t_batch_not_closed_rechained(d):
    """Clear the "last" flag of a one-record batch, chain rewritten consistently."""
    p = seg_path(d, 0)
    for f in frames(d, 0):
        if f["offset"] > 5 and read_at(p, f["pos"] + 34, 1) == b"\x03":
            patch(p, f["pos"] + 34, b"\x01")
            break
    else:
        raise unittest.SkipTest("no one-record batch")
    rechain(d)


def t_offset_skip_rechained(d):
    """Record 30 carries offset 31, chain rewritten consistently."""
    f = _frame_at(d, 30)
    patch(seg_path(d, 0), f["pos"] + 8, struct.pack("<Q", 31))
    rechain(d)


def _erasure_frame(d):
    _, active, dlen = read_head(d)
    for base in segments(d):
        for f in frames(d, base, dlen if base == active else None):
            if f["kind"] == 0x8001:
                return base, f
    raise unittest.SkipTest("no erasure record in the test log")


def t_erasure_target_future_rechained(d):
    """The erasure record names its own offset, chain rewritten consistently."""
    base, f = _erasure_frame(d)
    patch(seg_path(d, base), f["payload_pos"] + 4, struct.pack("<Q", f["offset"]))
    rechain(d)


def t_unknown_critical_log_kind_rechained(d):
    """A record of kind 0x8002 (critical, the log's own range, not defined): a reader must
    stop. (meshflow log verify accepted this when the tool was written.)"""
    f = _frame_at(d, 30)
    patch(seg_path(d, 0), f["pos"] + 32, struct.pack("<H", 0x8002))
    rechain(d, recommit={f["offset"]})


def t_tenant_control_char_rechained(d):
    """A tenant id holding a control character (BEL). (meshflow log verify accepted this when
    the tool was written.)"""
    f = _frame_at(d, 30)
    if f["tenant_len"] == 0:
        raise unittest.SkipTest("record without tenant")
    patch(seg_path(d, 0), f["pos"] + FRAME_HDR, b"\x07")
    rechain(d)


def t_first_segment_missing(d):
    """Delete segment 0 of a multi-segment log: records 0.. are missing."""
    if len(segments(d)) < 2:
        raise unittest.SkipTest("single-segment log")
    os.remove(seg_path(d, 0))


CASES = [
    # name, builder, expected exit code
    ("payload_flip", t_payload_flip, 3),
    ("slot_flip", t_slot_flip, 3),
    ("payload_flip_crc_fixed", t_payload_flip_crc_fixed, 1),
    ("slot_flip_crc_fixed", t_slot_flip_crc_fixed, 1),
    ("timestamp_crc_fixed", t_timestamp_crc_fixed, 1),
    ("truncate_active", t_truncate_active, 3),
    ("erase_by_hand", t_erase_by_hand, 1),
    ("segment_header_flip", t_segment_header_flip, 3),
    ("padding_nonzero", t_padding_nonzero, 3),
    ("reserved_nonzero_crc_fixed", t_reserved_nonzero_crc_fixed, 3),
    ("active_payload_flip_crc_fixed", t_active_payload_flip_crc_fixed, 1),
    ("active_header_prev_hash_crc_fixed", t_active_header_prev_hash_crc_fixed, 1),
    ("head_next_offset_fixed", t_head_next_offset_fixed, 1),
    ("head_hash_fixed", t_head_hash_fixed, 1),
    ("head_both_copies", t_head_both_copies, 3),
    ("rechain_only", t_rechain_only, 0),
    ("timestamp_backwards_rechained", t_timestamp_backwards_rechained, 1),
    ("batch_not_closed_rechained", t_batch_not_closed_rechained, 1),
    ("offset_skip_rechained", t_offset_skip_rechained, 1),
    ("erasure_target_future_rechained", t_erasure_target_future_rechained, 1),
    ("unknown_critical_log_kind_rechained", t_unknown_critical_log_kind_rechained, 3),
    ("tenant_control_char_rechained", t_tenant_control_char_rechained, 3),
    ("first_segment_missing", t_first_segment_missing, 3),
    ("head_newer_copy", t_head_newer_copy, 0),
    ("garbage_past_durable_end", t_garbage_past_durable_end, 0),
    ("segment_beyond_active", t_segment_beyond_active, 0),
]


def build(src, dst, builder):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("LOCK"))
    builder(dst)


def run_verify(d, *extra):
    return subprocess.run([sys.executable, VERIFY, d] + list(extra),
                          capture_output=True, text=True, timeout=300)


class TestVectors(unittest.TestCase):
    def test_crc32c(self):
        self.assertEqual(verify_log.crc32c(b"123456789"), 0xE3069283)

    def test_body_and_chain_vectors(self):
        body = verify_log.body_digest(0, 5, b"", b"hello")
        self.assertEqual(body.hex(),
                         "c00540cbf8c415ffb40c21a07ce26261dfbd2f9bc376f6ab3ab24ec974bf4726")
        chain = verify_log.chain_hash(bytes(32), 0, 0x0100, 1700000000000000000, 3, 1,
                                      b"default", body)
        self.assertEqual(chain.hex(),
                         "db3b6b07de0818c7126f5fe5665ad4285e7b12c5a313e3707fb98c73c145f69b")

    def test_usage(self):
        self.assertEqual(subprocess.run([sys.executable, VERIFY], capture_output=True).returncode, 2)
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "nope")
            self.assertEqual(run_verify(missing).returncode, 2)


@unittest.skipUnless(LOG, "MESHFLOW_TEST_LOG is not set: set it to a meshflow log directory "
                          "(e.g. made by `meshflow demo --dir /tmp/vlog1`) to run these tests")
class TestTamperedLogs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="verify_log_test_")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_original_is_valid(self):
        r = run_verify(LOG, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip().startswith("{"))

    def test_cases(self):
        for name, builder, expected in CASES:
            with self.subTest(case=name):
                d = os.path.join(self.tmp, name)
                build(LOG, d, builder)
                r = run_verify(d)
                self.assertEqual(r.returncode, expected,
                                 "%s: exit %d, stderr: %s" % (name, r.returncode, r.stderr))
                if expected:
                    lines = r.stderr.strip().splitlines()
                    self.assertEqual(len(lines), 1, r.stderr)
                    self.assertIn("position", lines[0])
                    self.assertIn("offset", lines[0])
                shutil.rmtree(d, ignore_errors=True)

    def test_head_last_frame_position_is_a_warning(self):
        """HEAD's last-frame position is not in section 9: warning by default, exit 1 with
        --strict-head."""
        d = os.path.join(self.tmp, "head_last_pos")
        build(LOG, d, lambda x: _rewrite_head(x, 80, "<Q", 64 + 8))
        r = run_verify(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("WARNING", r.stderr)
        self.assertEqual(run_verify(d, "--strict-head").returncode, 1)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    # `python3 tools/test_verify_log.py build SRC DST CASE` builds one tampered copy (used to
    # run the same copies through `meshflow log verify`); otherwise run the tests.
    if len(sys.argv) == 5 and sys.argv[1] == "build":
        builders = {n: b for n, b, _ in CASES}
        build(sys.argv[2], sys.argv[3], builders[sys.argv[4]])
    else:
        unittest.main()
