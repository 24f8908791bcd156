#!/usr/bin/env python3
"""Independent verifier for meshflow run export envelopes (audit chain version 1).

This file was written from docs/audit-chain.md (and docs/log-format.md for notation) only:
no Rust source of the engine or the CLI was read while writing it, so that it checks the
document as much as the export. Where the document is silent or ambiguous, the choice made
here is marked "SPEC-GAP" in a comment; choices the document settles cite its section.

Usage:  python3 tools/verify_export.py FILE|- [--json] [--trusted-checkpoint NOTE]

FILE holds one run export envelope (a JSON object) or a JSON array of them (section 6).
For every envelope it performs the checks of section 7, for every step in order:

  1. step_index equals its position, run_id and tenant_id equal the envelope's, prev_hash
     equals the previous step's entry hash ("" for step 0);
  2. each slot's (length, commitment) is computed from its content and salt (section 1), or
     taken as given when the slot is redacted (the step is then reported as redacted);
  3. the canonical payload (section 2) and the body digest (section 3) are rebuilt;
  4. the entry hash (section 4) is recomputed and must equal entry_hash;

then step_count must equal the number of steps, head_entry_hash the last entry hash ("" for an
empty run), offsets must strictly increase and stay below as_of_offset, and fork_origin may
only be set on step 0. It also enforces the conventions of section 7 (hashes, salts and
commitments as 64 lower-case hex digits, the zero hash before step 0 written "", unique keys,
unknown keys ignored), the field rules of section 2 (ids of 1-128 UTF-8 bytes without control
characters, finite numbers, cost/carbon/duration >= 0, ...), the tenant rules of
docs/log-format.md section 3.2, and the value types of section 6. An embedded `checkpoint`
must be null or a checkpoint note (section 8) consistent with the envelope: its size at most
as_of_offset, and its hash equal to global_hash_at when its size is as_of_offset.

A valid envelope is internally consistent; without a trusted anchor a consistent rewrite of a
whole run, or a run cut short with step_count and head_entry_hash adjusted, is undetectable:
the verifier prints the head(s) it checked so they can be compared with a head obtained
another way.

--trusted-checkpoint NOTE (section 8, offline): NOTE is a checkpoint note kept by the auditor.
An envelope taken when the log had exactly the note's size (as_of_offset == size) is anchored
when its global_hash_at equals the note's hash, and fails otherwise; any other envelope is
"not anchorable offline" (not a failure). An embedded checkpoint that contradicts the note
(another origin, or the same size with another hash) fails. Signatures are NOT checked: the
Python standard library has no Ed25519, so NOTE must itself come from a trusted place
(`meshflow audit verify --trusted-checkpoint NOTE --pubkey KEY` checks them). Offline the
steps are not linked to global_hash_at (that needs the log's records), so an anchor ties the
export's stated log state to the note, not the run's content.

Exit codes: 0 every envelope verifies, 1 some check failed (including an anchor that fails),
2 usage error, a malformed trusted note, or input that is not JSON / not an export envelope
(one line on stderr).

Standard library only.
"""

import argparse
import base64
import binascii
import hashlib
import json
import math
import re
import struct
import sys

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

EXPORT_FORMAT = "meshflow-run-export/1"
PAYLOAD_VERSION = 1
KIND_STEP = 0x8100
SLOT_COUNT = 4
# Slot order (section 1 / section 7 step 2): (slot index, envelope key).
SLOT_FIELDS = ("input_task", "output_content", "block_reason", "metadata_json")
ZERO32 = bytes(32)
U64_MAX = 0xFFFFFFFFFFFFFFFF
U32_MAX = 0xFFFFFFFF

DOMAIN_SLOT = b"meshflow/v1/slot\x00"
DOMAIN_BODY = b"meshflow/v1/body\x00"
DOMAIN_STEP = b"meshflow/v1/step\x00"

ID_MAX_BYTES = 128
TIMESTAMP_MAX_BYTES = 64
TENANT_MAX_BYTES = 64          # docs/log-format.md section 3.2

# Section 7 (Conventions): every hash, salt and commitment is exactly 64 lower-case hex digits.
_HEX64 = re.compile(r"[0-9a-f]{64}")

# Section 8: checkpoint notes.
NOTE_ORIGIN_PREFIX = "meshflow-log/"
_NOTE_ORIGIN = re.compile(r"meshflow-log/[0-9a-f]{16}")
_NOTE_SIZE = re.compile(r"[1-9][0-9]*")
_NOTE_SIG_PREFIX = "\u2014 "        # EM DASH, space

# ---------------------------------------------------------------------------------------
# Primitives (sections 1-4).


def enc_text(value):
    """`text`: u32 byte_length || UTF-8 bytes (accepts str or bytes)."""
    b = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return struct.pack("<I", len(b)) + b


def enc_f64(x):
    """IEEE-754 binary64 bit pattern as a little-endian u64, -0.0 written as +0.0."""
    x = float(x)
    if x == 0.0:
        x = 0.0          # normalises -0.0
    return struct.pack("<d", x)


def slot_commitment(slot_index, salt, content, kind=KIND_STEP):
    h = hashlib.sha256(DOMAIN_SLOT)
    h.update(struct.pack("<HH", kind, slot_index))
    h.update(salt)
    h.update(content)
    return h.digest()


def body_digest(pairs, payload):
    """pairs: the four (content_length, commitment) tuples in slot order."""
    h = hashlib.sha256(DOMAIN_BODY)
    h.update(struct.pack("<HI", len(pairs), len(payload)))
    for length, commitment in pairs:
        h.update(struct.pack("<I", length))
        h.update(commitment)
    h.update(payload)
    return h.digest()


def entry_hash(prev, step_index, offset, tenant, body):
    tenant = tenant.encode("utf-8") if isinstance(tenant, str) else bytes(tenant)
    h = hashlib.sha256(DOMAIN_STEP)
    h.update(prev)
    h.update(struct.pack("<QQB", step_index, offset, len(tenant)))
    h.update(tenant)
    h.update(body)
    return h.digest()


def encode_payload(f):
    """The canonical step encoding of section 2. `f` maps field names to already validated
    Python values; fork_origin is None or a dict with parent_run_id (str), parent_step_index
    (int), parent_entry_hash (32 bytes) and parent_offset (int)."""
    out = bytearray([PAYLOAD_VERSION])
    for k in ("run_id", "step_id", "node_id", "node_kind", "verdict"):
        out += enc_text(f[k])
    out.append(1 if f["blocked"] else 0)
    out += enc_f64(f["uncertainty"])
    out += enc_f64(f["cost_usd"])
    out += struct.pack("<Q", f["tokens_used"])
    out += enc_f64(f["carbon_gco2"])
    out += enc_f64(f["duration_ms"])
    out += enc_text(f["timestamp"])
    fo = f.get("fork_origin")
    if fo is None:
        out.append(0)
    else:
        out.append(1)
        out += enc_text(fo["parent_run_id"])
        out += struct.pack("<Q", fo["parent_step_index"])
        out += bytes(fo["parent_entry_hash"])
        out += struct.pack("<Q", fo["parent_offset"])
    return bytes(out)


# ---------------------------------------------------------------------------------------
# Field rules.


class FieldError(Exception):
    pass


_MISSING = object()


def _utf8(s):
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _control_char(s):
    """First Unicode Cc character (U+0000-U+001F, U+007F-U+009F) in s, or None."""
    for c in s:
        o = ord(c)
        if o <= 0x1F or 0x7F <= o <= 0x9F:
            return c
    return None


def check_text(v, max_bytes, no_control=True, min_bytes=1):
    """Validate a text field; returns its UTF-8 bytes or raises FieldError."""
    if not isinstance(v, str):
        raise FieldError("is not a string")
    b = _utf8(v)
    if b is None:
        raise FieldError("is not valid Unicode (lone surrogate), cannot be UTF-8")
    if len(b) < min_bytes:
        raise FieldError("is empty" if min_bytes == 1 else
                         "is %d bytes, fewer than %d" % (len(b), min_bytes))
    if len(b) > max_bytes:
        raise FieldError("is %d bytes, more than %d" % (len(b), max_bytes))
    if no_control:
        c = _control_char(v)
        if c is not None:
            raise FieldError("contains a control character (U+%04X)" % ord(c))
    return b


def check_id(v):
    return check_text(v, ID_MAX_BYTES)


def check_tenant(v):
    # Section 7 (Conventions): the tenant hashed is the envelope's `tenant`, 1-64 bytes of
    # UTF-8 without control characters (docs/log-format.md section 3.2).
    return check_text(v, TENANT_MAX_BYTES)


def check_u64(v):
    if not _is_int(v):
        raise FieldError("is not an integer")
    if v < 0 or v > U64_MAX:
        raise FieldError("is out of the u64 range")
    return v


def check_f64(v, non_negative):
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise FieldError("is not a number")
    try:
        x = float(v)        # a JSON integer literal is read as binary64 too
    except OverflowError:
        raise FieldError("is not finite")
    if not math.isfinite(x):
        raise FieldError("is not finite")
    if non_negative and x < 0.0:     # -0.0 is >= 0 (and is written as +0.0)
        raise FieldError("is negative (%r)" % x)
    return x


def parse_hash(v):
    """64 lower-case hex digits (section 7, Conventions) -> 32 bytes, or FieldError."""
    if not isinstance(v, str):
        raise FieldError("is not a string")
    if not _HEX64.fullmatch(v):
        raise FieldError("is not 64 lower-case hex digits")
    return bytes.fromhex(v)


def short(h):
    """First 12 hex digits of a hash (bytes or text) for messages."""
    if isinstance(h, (bytes, bytearray)):
        return h.hex()[:12] + "..."
    if h == "":
        return '""'
    if isinstance(h, str):
        return (h[:12] + "...") if len(h) > 12 else h
    return "<%s>" % type(h).__name__


def disp_id(v):
    """An id for messages: plain when it is harmless text, quoted/escaped otherwise."""
    if isinstance(v, str) and v and _utf8(v) is not None and _control_char(v) is None \
            and v.isprintable():
        return v
    if v is _MISSING:
        return "?"
    if isinstance(v, str):
        return repr(v)
    return "<%s>" % json.dumps(v)[:40]


def disp_quoted(v):
    if isinstance(v, str):
        return repr(v)
    if v is _MISSING or v is None:
        return "<missing>"
    return "<invalid: %s>" % json.dumps(v)[:40]


# ---------------------------------------------------------------------------------------
# Checkpoint notes (section 8).


class NoteError(Exception):
    pass


def parse_note(text):
    """Parse a checkpoint note (section 8): three lines (origin, decimal size, standard base64
    of the 32-byte chain hash of record size - 1), each ending in a line feed, a blank line,
    then zero or more signature lines "\u2014 <key name> <base64>" each ending in a line feed.
    Returns {"origin", "size", "hash" (32 bytes), "signers" (key names)}; raises NoteError.
    Signatures are parsed for their form only, never checked (no Ed25519 here)."""
    if not isinstance(text, str):
        raise NoteError("the note is not a text")
    if "\r" in text:
        raise NoteError("the note contains a carriage return (its lines end in a line feed "
                        "only)")
    if not text.endswith("\n"):
        raise NoteError("the note does not end in a line feed (an unsigned note ends after "
                        "the blank line)")
    lines = text[:-1].split("\n")
    if len(lines) < 4 or lines[3] != "":
        raise NoteError("the note is not three lines (origin, size, hash) followed by a "
                        "blank line")
    origin, size_text, hash_text = lines[0], lines[1], lines[2]
    if not _NOTE_ORIGIN.fullmatch(origin):
        raise NoteError("origin %r is not %s<16 lower-case hex digits>"
                        % (origin[:80], NOTE_ORIGIN_PREFIX))
    if not _NOTE_SIZE.fullmatch(size_text):
        # SPEC-GAP: section 8 says "decimal"; no leading zeros (the C2SP rule) and size >= 1
        # (the origin names record 0, so a note of an empty log cannot exist) are assumed.
        raise NoteError("size %r is not a decimal number >= 1 without leading zeros"
                        % size_text[:40])
    size = int(size_text)
    if size > U64_MAX:
        raise NoteError("size %s is out of the u64 range" % size_text[:40])
    try:
        digest = base64.b64decode(hash_text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise NoteError("hash line %r is not standard base64" % hash_text[:60])
    if len(digest) != 32 or base64.b64encode(digest).decode("ascii") != hash_text:
        raise NoteError("hash line %r is not the standard base64 (with padding) of 32 bytes"
                        % hash_text[:60])
    signers = []
    for n, line in enumerate(lines[4:], start=5):
        parts = line[len(_NOTE_SIG_PREFIX):].split(" ")
        if not line.startswith(_NOTE_SIG_PREFIX) or len(parts) != 2 or not parts[0]:
            raise NoteError("line %d is not a signature line (\u2014 <key name> <base64>)" % n)
        try:
            sig = base64.b64decode(parts[1].encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            sig = b""
        if len(sig) < 5:
            raise NoteError("line %d: the signature is not base64 of a key id and a signature"
                            % n)
        signers.append(parts[0])
    return {"origin": origin, "size": size, "hash": digest, "signers": signers}


# ---------------------------------------------------------------------------------------
# Verifying one envelope (section 7).


def verify_envelope(env, trusted_note=None):
    """Check one envelope (a dict whose `format` is EXPORT_FORMAT). `trusted_note` is None or
    a parse_note() result. Returns a result dict: run_id, tenant, valid, steps_verified,
    steps_redacted, head_entry_hash, errors, and with a trusted note also anchor
    ("anchored" | "failed" | "not-anchorable") and anchor_detail (a sentence)."""
    errors = []

    def env_error(msg):
        errors.append(msg)

    # -- envelope fields (section 6) ---------------------------------------------------
    tenant = env.get("tenant", _MISSING)
    run_id = env.get("run_id", _MISSING)
    tenant_bytes = None
    if tenant is _MISSING:
        env_error("envelope: missing key 'tenant'")
    else:
        try:
            tenant_bytes = check_tenant(tenant)
        except FieldError as e:
            env_error("envelope: tenant %s" % e)
            # Keep hashing (for diagnostics) if the tenant can still be encoded (u8 length).
            if isinstance(tenant, str):
                b = _utf8(tenant)
                if b is not None and len(b) <= 255:
                    tenant_bytes = b
    if run_id is _MISSING:
        env_error("envelope: missing key 'run_id'")
    else:
        try:
            check_id(run_id)
        except FieldError as e:
            env_error("envelope: run_id %s" % e)

    step_count = env.get("step_count", _MISSING)
    head = env.get("head_entry_hash", _MISSING)
    as_of = env.get("as_of_offset", _MISSING)
    global_hash_at = env.get("global_hash_at", _MISSING)
    steps = env.get("steps", _MISSING)

    if as_of is _MISSING:
        env_error("envelope: missing key 'as_of_offset'")
        as_of = None
    else:
        try:
            check_u64(as_of)
        except FieldError as e:
            env_error("envelope: as_of_offset %s" % e)
            as_of = None
    global_hash = None          # 32 bytes when global_hash_at is a usable hash
    if global_hash_at is _MISSING:
        env_error("envelope: missing key 'global_hash_at'")
    elif global_hash_at != "":
        try:
            global_hash = parse_hash(global_hash_at)
        except FieldError as e:
            env_error("envelope: global_hash_at %s (nor \"\")" % e)
    # Section 6: global_hash_at is the chain hash at as_of_offset - 1, "" for an empty log
    # (whose next offset is 0).
    if as_of is not None and global_hash_at == "" and as_of != 0:
        env_error("envelope: global_hash_at is \"\" (an empty log) but as_of_offset is %d"
                  % as_of)
    if as_of == 0 and global_hash is not None:
        env_error("envelope: global_hash_at is set but as_of_offset is 0 (an empty log has no "
                  "chain hash)")

    # Section 6: `checkpoint` is the text of the latest checkpoint note of the log (section 8)
    # when one was taken, or null. A note taken before the export covers at most as_of_offset
    # records; at exactly as_of_offset its hash is the chain hash global_hash_at names.
    embedded = None
    cp_text = env.get("checkpoint", _MISSING)
    if cp_text is _MISSING:
        env_error("envelope: missing key 'checkpoint'")
    elif cp_text is not None:
        try:
            embedded = parse_note(cp_text)
        except NoteError as e:
            env_error("envelope: checkpoint is neither null nor a checkpoint note: %s" % e)
    if embedded is not None and as_of is not None:
        if embedded["size"] > as_of:
            env_error("envelope: checkpoint size %d is larger than as_of_offset %d: the note "
                      "claims records the export says the log did not have"
                      % (embedded["size"], as_of))
        elif (embedded["size"] == as_of and global_hash is not None
              and embedded["hash"] != global_hash):
            env_error("envelope: checkpoint at size %d has hash %s but global_hash_at is %s "
                      "(the same record)" % (as_of, short(embedded["hash"]),
                                             short(global_hash)))

    if steps is _MISSING:
        env_error("envelope: missing key 'steps'")
        steps = []
    elif not isinstance(steps, list):
        env_error("envelope: steps is not an array")
        steps = []

    # -- the steps ---------------------------------------------------------------------
    expected_prev = ZERO32      # None: unknown (the previous step could not be hashed)
    prev_offset = None
    steps_ok = 0
    steps_redacted = 0
    for i, step in enumerate(steps):
        n_before = len(errors)
        if not isinstance(step, dict):
            env_error("step %d: is not a JSON object" % i)
            expected_prev = None
            continue
        sid = step.get("step_id", _MISSING)
        prefix = "step %d (%s): " % (i, disp_id(sid))

        def err(msg, prefix=prefix):
            errors.append(prefix + msg)

        # 1. position, run, tenant, link.
        si = step.get("step_index", _MISSING)
        if si is _MISSING:
            err("missing key 'step_index'")
        elif not _is_int(si) or si != i:
            err("step_index is %s, expected %d" % (json.dumps(si), i))
        srun = step.get("run_id", _MISSING)
        if srun is _MISSING:
            err("missing key 'run_id'")
        elif srun != run_id:
            err("run_id %s differs from the envelope's %s"
                % (disp_quoted(srun), disp_quoted(run_id)))
        stenant = step.get("tenant_id", _MISSING)
        if stenant is _MISSING:
            err("missing key 'tenant_id'")
        elif stenant != tenant:
            err("tenant_id %s differs from the envelope's tenant %s"
                % (disp_quoted(stenant), disp_quoted(tenant)))

        prev_field = step.get("prev_hash", _MISSING)
        prev_for_hash = expected_prev
        if prev_field is _MISSING:
            err("missing key 'prev_hash'")
        elif i == 0:
            # Section 7 (Conventions): the zero hash before step 0 is written "", and 64 '0'
            # digits there are invalid.
            if prev_field != "":
                err("prev_hash mismatch (expected \"\" (32 zero bytes) got %s)"
                    % short(prev_field))
        elif prev_field == "":
            # "" stands for the zero hash before step 0 only (section 7, Conventions).
            err("prev_hash mismatch (expected %s got \"\", which only step 0 may have)"
                % (short(expected_prev) if expected_prev is not None else "the previous "
                   "step's entry hash"))
        else:
            try:
                got = parse_hash(prev_field)
            except FieldError as e:
                err("prev_hash %s" % e)
                got = None
            if expected_prev is None:
                prev_for_hash = got     # unknown predecessor: hash with what is claimed
            elif got is not None and got != expected_prev:
                err("prev_hash mismatch (expected %s got %s)"
                    % (short(expected_prev), short(prev_field)))

        offset = step.get("offset", _MISSING)
        if offset is _MISSING:
            err("missing key 'offset'")
            offset = None
        else:
            try:
                check_u64(offset)
            except FieldError as e:
                err("offset %s" % e)
                offset = None
        if offset is not None:
            # Section 7: offsets strictly increase and each is below as_of_offset.
            if prev_offset is not None and offset <= prev_offset:
                err("offset %d does not increase (previous step's offset is %d)"
                    % (offset, prev_offset))
            if as_of is not None and offset >= as_of:
                err("offset %d is not below the envelope's as_of_offset %d" % (offset, as_of))
            prev_offset = offset

        # 2. slots.
        pairs = []
        redacted = False
        salts = step.get("salts", _MISSING)
        if salts is _MISSING:
            salts = None
        elif not isinstance(salts, dict):
            err("salts is not a JSON object")
            salts = None
        for k, name in enumerate(SLOT_FIELDS):
            v = step.get(name, _MISSING)
            if v is _MISSING:
                err("missing slot field '%s'" % name)
                pairs = None
                continue
            if isinstance(v, str):
                content = _utf8(v)
                if content is None:
                    err("%s is not valid Unicode (lone surrogate), cannot be UTF-8" % name)
                    pairs = None
                    continue
                if len(content) > U32_MAX:
                    err("%s is longer than a u32 length" % name)
                    pairs = None
                    continue
                if salts is None:
                    err("no salt for %s (salts %s)" % (
                        name, "missing" if step.get("salts", _MISSING) is _MISSING
                        else "is not an object"))
                    pairs = None
                    continue
                salt_hex = salts.get(name, _MISSING)
                if salt_hex is _MISSING:
                    err("no salt for %s in salts" % name)
                    pairs = None
                    continue
                try:
                    salt = parse_hash(salt_hex)
                except FieldError as e:
                    err("salt of %s %s (a salt is 32 bytes)" % (name, e))
                    pairs = None
                    continue
                if pairs is not None:
                    pairs.append((len(content), slot_commitment(k, salt, content)))
            elif isinstance(v, dict) and v.get("redacted") is True:
                redacted = True
                length = v.get("length", _MISSING)
                com = v.get("commitment", _MISSING)
                ok = True
                try:
                    if length is _MISSING:
                        raise FieldError("is missing")
                    check_u64(length)
                    if length > U32_MAX:
                        raise FieldError("is out of the u32 range")
                except FieldError as e:
                    err("redacted %s: length %s" % (name, e))
                    ok = False
                try:
                    if com is _MISSING:
                        raise FieldError("is missing")
                    commitment = parse_hash(com)
                except FieldError as e:
                    err("redacted %s: commitment %s" % (name, e))
                    ok = False
                if not ok:
                    pairs = None
                elif pairs is not None:
                    pairs.append((length, commitment))
                # A salt listed for a redacted slot is ignored (section 6 lists salts only
                # for non-erased slots; section 7: keys not listed in section 6 are ignored).
            else:
                err("%s is neither a string nor a {\"redacted\": true, ...} object" % name)
                pairs = None
        if redacted:
            steps_redacted += 1

        # 3. payload fields (section 2 rules).
        fields = {}
        payload_ok = True

        def field(name, checker, prefix=prefix):
            nonlocal payload_ok
            v = step.get(name, _MISSING)
            if v is _MISSING:
                errors.append(prefix + "missing key '%s'" % name)
                payload_ok = False
                return None
            try:
                return checker(v)
            except FieldError as e:
                errors.append(prefix + "%s %s" % (name, e))
                payload_ok = False
                return None

        for name in ("run_id", "step_id", "node_id", "node_kind", "verdict"):
            # run_id: a mismatch with the envelope is reported above; the rules here.
            if name == "run_id" and step.get("run_id", _MISSING) is _MISSING:
                payload_ok = False
                continue
            fields[name] = field(name, check_id)

        def check_bool(v):
            if not isinstance(v, bool):
                raise FieldError("is not true/false")
            return v

        fields["blocked"] = field("blocked", check_bool)
        fields["uncertainty"] = field("uncertainty", lambda v: check_f64(v, False))
        fields["cost_usd"] = field("cost_usd", lambda v: check_f64(v, True))
        fields["tokens_used"] = field("tokens_used", check_u64)
        fields["carbon_gco2"] = field("carbon_gco2", lambda v: check_f64(v, True))
        fields["duration_ms"] = field("duration_ms", lambda v: check_f64(v, True))
        # SPEC-GAP: section 2 says "ISO 8601 as given, 1-64 bytes": the syntax is not
        # validated, nor control characters (the "no control character" rule is stated for
        # the ids, not for the timestamp).
        fields["timestamp"] = field("timestamp",
                                    lambda v: check_text(v, TIMESTAMP_MAX_BYTES, False))

        fo = step.get("fork_origin", _MISSING)
        if fo is _MISSING:
            err("missing key 'fork_origin'")
            payload_ok = False
        elif fo is None:
            fields["fork_origin"] = None
        elif not isinstance(fo, dict):
            err("fork_origin is neither null nor an object")
            payload_ok = False
        else:
            if i != 0:
                # Section 2 and section 7: fork_origin may be non-null only on step 0.
                err("fork_origin is set on a step that is not the run's first")
            parsed = {}
            for key, checker in (("parent_run_id", check_id),
                                 ("parent_step_index", check_u64),
                                 ("parent_entry_hash", parse_hash),
                                 ("parent_offset", check_u64)):
                v = fo.get(key, _MISSING)
                try:
                    if v is _MISSING:
                        raise FieldError("is missing")
                    parsed[key] = checker(v)
                except FieldError as e:
                    # Section 7: parent_run_id follows the run_id rules.
                    err("fork_origin.%s %s" % (key, e))
                    payload_ok = False
            if payload_ok:
                parsed["parent_run_id"] = fo["parent_run_id"]
                fields["fork_origin"] = parsed

        # 4. body digest and entry hash.
        stored = step.get("entry_hash", _MISSING)
        stored_bytes = None
        if stored is _MISSING:
            err("missing key 'entry_hash'")
        else:
            try:
                stored_bytes = parse_hash(stored)
            except FieldError as e:
                err("entry_hash %s" % e)

        computed = None
        if pairs is None or not payload_ok:
            err("entry_hash not checked: the step cannot be re-encoded (see above)")
        elif tenant_bytes is None:
            err("entry_hash not checked: the envelope's tenant cannot be encoded")
        elif offset is None:
            err("entry_hash not checked: no usable offset")
        elif prev_for_hash is None:
            err("entry_hash not checked: the previous entry hash is unknown")
        else:
            payload = encode_payload(fields)
            body = body_digest(pairs, payload)
            computed = entry_hash(prev_for_hash, i, offset, tenant_bytes, body)
            if stored_bytes is not None and computed != stored_bytes:
                err("entry_hash mismatch (expected %s got %s)"
                    % (short(computed), short(stored_bytes)))

        # Section 7 says expected_prev = the recomputed hash. When it differs from the stored
        # one, the step has already failed; continuing from the *stored* hash keeps the
        # report local (a single edited step is one error, not a cascade through every later
        # step). Validity is the same either way.
        if computed is not None and (stored_bytes is None or stored_bytes == computed):
            expected_prev = computed
        else:
            expected_prev = stored_bytes  # None when unknown

        if len(errors) == n_before:
            steps_ok += 1

    # -- run totals --------------------------------------------------------------------
    if step_count is _MISSING:
        env_error("envelope: missing key 'step_count'")
    elif not _is_int(step_count) or step_count != len(steps):
        env_error("envelope: step_count mismatch (step_count is %s, the envelope holds %d "
                  "step(s))" % (json.dumps(step_count), len(steps)))
    if head is _MISSING:
        env_error("envelope: missing key 'head_entry_hash'")
    elif not steps:
        if head != "":
            env_error("envelope: head_entry_hash mismatch (expected \"\" for an empty run "
                      "got %s)" % short(head))
    else:
        try:
            head_bytes = parse_hash(head)
        except FieldError as e:
            env_error("envelope: head_entry_hash %s" % e)
            head_bytes = None
        if head_bytes is not None and expected_prev is not None and head_bytes != expected_prev:
            env_error("envelope: head_entry_hash mismatch (expected %s (last step's entry "
                      "hash) got %s)" % (short(expected_prev), short(head)))

    # -- the trusted checkpoint (section 8, offline) ------------------------------------
    # Signatures are not checked (no Ed25519 in the standard library): the caller trusts
    # the note's text. An export taken at exactly the note's size is anchored when its
    # global_hash_at equals the note's hash and fails otherwise; any other export cannot be
    # anchored without the log. An embedded note that contradicts the trusted one fails too.
    anchor = anchor_detail = None
    if trusted_note is not None:
        t_size, t_hash = trusted_note["size"], trusted_note["hash"]
        contradictions = []
        if embedded is not None:
            if embedded["origin"] != trusted_note["origin"]:
                contradictions.append(
                    "checkpoint: the envelope's checkpoint has origin %s, the trusted "
                    "checkpoint %s: the export comes from another log (or one rewritten from "
                    "record 0)" % (embedded["origin"], trusted_note["origin"]))
            elif embedded["size"] == t_size and embedded["hash"] != t_hash:
                contradictions.append(
                    "checkpoint: the envelope's checkpoint at size %d has hash %s, the "
                    "trusted checkpoint %s: the log was rewritten"
                    % (t_size, short(embedded["hash"]), short(t_hash)))
        if as_of is None:
            anchor = "failed"
            anchor_detail = ("cannot be anchored: as_of_offset is missing or unusable "
                             "(see above)")
        elif as_of == t_size:
            if global_hash is not None and global_hash == t_hash:
                anchor = "anchored"
                anchor_detail = ("anchored: export at offset %d = checkpoint size %d and "
                                 "global_hash_at equals the trusted checkpoint's hash"
                                 % (as_of, t_size))
            else:
                anchor = "failed"
                anchor_detail = ("anchor FAILED: export at offset %d = checkpoint size %d but "
                                 "global_hash_at %s differs from the trusted checkpoint's hash "
                                 "%s: the log was rewritten or the export altered"
                                 % (as_of, t_size, short(global_hash_at)
                                    if isinstance(global_hash_at, str) else "<unusable>",
                                    short(t_hash)))
                errors.append("checkpoint: " + anchor_detail)
        else:
            anchor = "not-anchorable"
            anchor_detail = ("not anchorable offline (export at offset %d, checkpoint at size "
                             "%d)" % (as_of, t_size))
        if contradictions:
            errors.extend(contradictions)
            anchor = "failed"
            if anchor_detail.startswith("not anchorable") or \
                    anchor_detail.startswith("anchored"):
                anchor_detail = ("anchor FAILED: the envelope's checkpoint contradicts the "
                                 "trusted checkpoint (see above)")

    result = {
        "run_id": run_id if isinstance(run_id, str) else None,
        "tenant": tenant if isinstance(tenant, str) else None,
        "valid": not errors,
        "steps_verified": steps_ok,
        "steps_redacted": steps_redacted,
        "head_entry_hash": head if isinstance(head, str) else None,
        "errors": errors,
    }
    if trusted_note is not None:
        result["anchor"] = anchor
        result["anchor_detail"] = anchor_detail
    return result


# ---------------------------------------------------------------------------------------
# Input.


class InputError(Exception):
    """Input that is not JSON or not an export envelope (exit 2)."""


def _no_duplicate_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            # Section 7 (Conventions): keys are unique. JSON parsers disagree on duplicates
            # (first or last wins), so the input is refused as not an envelope (exit 2).
            raise InputError("duplicate key %r in a JSON object" % k)
        obj[k] = v
    return obj


def parse_document(data):
    """bytes -> list of envelope dicts (raises InputError)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError("input is not UTF-8 (%s)" % e)
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except InputError:
        raise
    except RecursionError:
        raise InputError("input is not JSON: nested too deeply")
    except ValueError as e:
        raise InputError("input is not JSON: %s" % e)
    if isinstance(doc, dict):
        envs = [doc]
    elif isinstance(doc, list):
        envs = doc
    else:
        raise InputError("input is JSON but neither an export envelope (object) nor an "
                         "array of envelopes")
    for n, env in enumerate(envs):
        where = "" if isinstance(doc, dict) else "array element %d: " % n
        if not isinstance(env, dict):
            raise InputError("%snot an export envelope (not a JSON object)" % where)
        fmt = env.get("format", _MISSING)
        if fmt != EXPORT_FORMAT:
            raise InputError("%snot a %s envelope (format is %s)"
                             % (where, EXPORT_FORMAT,
                                "missing" if fmt is _MISSING else json.dumps(fmt)))
    return envs


def verify_document(envs, trusted_note=None):
    """trusted_note: None or a parse_note() result."""
    runs = [verify_envelope(e, trusted_note) for e in envs]
    return {"valid": all(r["valid"] for r in runs), "runs": runs}


# ---------------------------------------------------------------------------------------
# Output.


def run_line(r):
    who = "run %s (tenant %s)" % (disp_quoted(r["run_id"]), disp_quoted(r["tenant"]))
    if r["valid"]:
        red = "%d redacted" % r["steps_redacted"]
        if r["steps_redacted"]:
            red += " (content unverifiable)"
        head = r["head_entry_hash"] or '"" (empty run)'
        lines = ["OK %s: %d step(s) verified, %s, head %s"
                 % (who, r["steps_verified"], red, head)]
    else:
        lines = ["FAIL %s: %d error(s)" % (who, len(r["errors"]))]
        lines += ["  " + e for e in r["errors"]]
    if r.get("anchor") is not None and r["anchor"] != "failed":
        # A failed anchor is one of the errors listed above.
        lines.append("  " + r["anchor_detail"])
    return "\n".join(lines)


SIGNATURE_NOTE = ("signatures NOT checked: the Python standard library has no Ed25519, so the "
                  "trusted checkpoint file itself must come from a trusted place (`meshflow "
                  "audit verify --trusted-checkpoint NOTE --pubkey KEY` checks signatures)")


def final_note(result, trusted_note=None):
    heads = ["run %s: %s" % (disp_quoted(r["run_id"]), r["head_entry_hash"] or '""')
             for r in result["runs"] if r["valid"]]
    if trusted_note is not None:
        # Even an anchored run's steps are not linked to global_hash_at offline (the
        # envelope has no records between them), so its head is still listed.
        note = ("note: trusted checkpoint %s, size %d, hash %s; %s. An offline anchor "
                "compares global_hash_at only: the steps are not linked to it without the log, "
                "so compare the head(s) checked with one obtained another way"
                % (trusted_note["origin"], trusted_note["size"], trusted_note["hash"].hex(),
                   SIGNATURE_NOTE))
        note += (": " + "; ".join(heads)) if heads else " (no run verified)"
        return note
    note = ("note: no trusted anchor (--trusted-checkpoint) was given: a consistent rewrite of "
            "a whole run, or a run cut short with step_count and head_entry_hash adjusted, is "
            "undetectable; compare the head(s) checked with one obtained another way")
    if heads:
        note += ": " + "; ".join(heads)
    else:
        note += " (no run verified, so no head to compare)"
    return note


def main(argv=None):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except AttributeError:
            pass
    ap = argparse.ArgumentParser(
        prog="verify_export.py",
        description="Verify meshflow run export envelopes against docs/audit-chain.md "
                    "(exit 0 valid, 1 a check failed, 2 usage error, malformed trusted note "
                    "or not an envelope).")
    ap.add_argument("file", metavar="FILE", help="export JSON file, or - for stdin")
    ap.add_argument("--json", action="store_true", help="print a JSON result on stdout")
    ap.add_argument("--trusted-checkpoint", metavar="NOTE",
                    help="a checkpoint note (docs/audit-chain.md section 8) kept by the "
                         "auditor. An export with as_of_offset equal to the note's size is "
                         "anchored when its global_hash_at equals the note's hash and fails "
                         "otherwise; other exports are reported as not anchorable offline. "
                         "SIGNATURES ARE NOT CHECKED: the Python standard library has no "
                         "Ed25519, so NOTE itself must come from a trusted place (`meshflow "
                         "audit verify --trusted-checkpoint NOTE --pubkey KEY` checks "
                         "signatures). A malformed NOTE is a usage error (exit 2).")
    args = ap.parse_args(argv)  # exits 2 on usage errors

    def usage_fail(msg):
        print("verify_export: ERROR: %s" % msg, file=sys.stderr)
        if args.json:
            print(json.dumps({"valid": False, "error": msg}))
        return EXIT_USAGE

    trusted = None
    if args.trusted_checkpoint is not None:
        try:
            with open(args.trusted_checkpoint, "rb") as fh:
                trusted = parse_note(fh.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            return usage_fail("cannot read trusted checkpoint %s: %s"
                              % (args.trusted_checkpoint, e))
        except NoteError as e:
            return usage_fail("trusted checkpoint %s is not a checkpoint note "
                              "(docs/audit-chain.md section 8): %s"
                              % (args.trusted_checkpoint, e))
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as fh:
                data = fh.read()
    except OSError as e:
        return usage_fail("cannot read %s: %s" % (args.file, e))
    try:
        envs = parse_document(data)
    except InputError as e:
        return usage_fail("%s: %s" % ("<stdin>" if args.file == "-" else args.file, e))

    result = verify_document(envs, trusted)
    note = final_note(result, trusted)
    if args.json:
        out = dict(result)
        # "anchored": every run anchored to a trusted checkpoint (false without one).
        out["anchored"] = bool(trusted is not None and result["runs"] and
                               all(r["anchor"] == "anchored" for r in result["runs"]))
        if trusted is not None:
            out["signature_checked"] = False
            out["trusted_checkpoint"] = {"origin": trusted["origin"],
                                         "size": trusted["size"],
                                         "hash": trusted["hash"].hex(),
                                         "signers": trusted["signers"]}
        out["note"] = note
        print(json.dumps(out, ensure_ascii=False))
    else:
        if not envs:
            # SPEC-GAP: section 6 does not say what an export of a tenant without runs is;
            # an empty array is accepted as nothing to verify (exit 0).
            print("no run envelopes in the input: nothing verified")
        for r in result["runs"]:
            print(run_line(r))
        print(note)
    return EXIT_OK if result["valid"] else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
