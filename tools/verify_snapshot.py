#!/usr/bin/env python3
"""Independent verifier of meshflow compliance snapshots, written only from
docs/snapshot-format.md (standard library only).

Checks what a snapshot proves on its own (docs/snapshot-format.md section 4, "Alone"):
manifest.json is the first entry and parses; the format is meshflow-snapshot/1; the entries
after it are exactly the manifest's sections, in the documented order, every one present; each
section file's SHA-256 matches section_sha256; each is a JSON array of record_counts records,
pretty-printed as the format says; each is sorted by its documented key; no entry name has a
path; decompression is bounded. Comparing with the log needs meshflow itself
(`meshflow --db DIR snapshot verify FILE`).

Usage: verify_snapshot.py FILE   (exit 0 valid, 1 invalid, 2 usage)
"""

import hashlib
import json
import sys
import zipfile

FORMAT = "meshflow-snapshot/1"
SECTIONS = [
    "identities", "lineage_nodes", "lineage_edges", "canary_experiments", "locks", "alerts",
    "feature_flags", "policy_rules", "sla_contracts", "sla_breaches", "vault_secrets_metadata",
    "vault_audit", "tenants",
]
# Section 3's sort keys: (field, descending).
SORT_KEYS = {
    "identities": [("created_at", False), ("agent_id", False)],
    "lineage_nodes": [("ts", False), ("node_id", False)],
    "lineage_edges": [("ts", False), ("edge_id", False)],
    "canary_experiments": [("created_at", True), ("experiment_id", False)],
    "locks": [("acquired_at", False), ("resource_id", False)],
    "alerts": [("fired_at", True), ("alert_id", False)],
    "feature_flags": [("created_at", True), ("flag_id", False)],
    "policy_rules": [("priority", True), ("created_at", False), ("rule_id", False)],
    "sla_contracts": [("agent_name", False), ("contract_id", False)],
    "sla_breaches": [("ts", True), ("breach_id", False)],
    "vault_secrets_metadata": [("created_at", True), ("secret_id", False)],
    "vault_audit": [("ts", True), ("audit_id", False)],
    "tenants": [("created_at", True), ("tenant_id", False)],
}
VAULT_METADATA_KEYS = ["secret_id", "name", "category", "description", "created_by",
                       "created_at", "rotated_at"]
MAX_ENTRIES = 64
MAX_ENTRY_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30


def key_order(a, b):
    """-1/0/1 comparing two field values: null (or missing) first, then booleans, numbers
    (numerically), strings (by UTF-8 bytes), anything else."""
    def rank(v):
        if v is None:
            return 0
        if isinstance(v, bool):
            return 1
        if isinstance(v, (int, float)):
            return 2
        if isinstance(v, str):
            return 3
        return 4
    ra, rb = rank(a), rank(b)
    if ra != rb or ra in (0, 4):
        return (ra > rb) - (ra < rb)
    if ra == 3:
        a, b = a.encode("utf-8"), b.encode("utf-8")
    return (a > b) - (a < b)


def in_order(records, keys):
    for prev, cur in zip(records, records[1:]):
        for field, descending in keys:
            c = key_order(prev.get(field), cur.get(field))
            if descending:
                c = -c
            if c < 0:
                break
            if c > 0:
                return False
    return True


def read_bounded(archive, info, budget):
    with archive.open(info) as f:
        data = f.read(budget + 1)
    if len(data) > budget:
        raise ValueError(f"entry '{info.filename}' decompresses past the limit")
    return data


def verify(path):
    """Returns (problems, manifest or None)."""
    problems = []
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        return [f"not a ZIP: {e}"], None
    with archive:
        infos = archive.infolist()
        if not infos:
            return ["the ZIP is empty"], None
        if len(infos) > MAX_ENTRIES:
            return [f"{len(infos)} entries (at most {MAX_ENTRIES})"], None
        entries = []
        total = 0
        for info in infos:
            name = info.filename
            if "/" in name or "\\" in name or name.startswith("."):
                return [f"entry name '{name}' is not a plain file name"], None
            try:
                data = read_bounded(archive, info, min(MAX_ENTRY_BYTES, MAX_TOTAL_BYTES - total))
            except (ValueError, zipfile.BadZipFile, OSError, EOFError) as e:
                return [f"entry '{name}': {e}"], None
            total += len(data)
            entries.append((name, data))
    if entries[0][0] != "manifest.json":
        return [f"the first entry is '{entries[0][0]}', not 'manifest.json'"], None
    try:
        manifest = json.loads(entries[0][1])
    except ValueError as e:
        return [f"manifest.json: {e}"], None
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest field 'format' is {manifest.get('format')!r}")
    names = [n[:-5] if n.endswith(".json") else n for n, _ in entries[1:]]
    if names != manifest.get("sections"):
        problems.append(f"manifest field 'sections' lists {manifest.get('sections')}, "
                        f"the ZIP holds {names}")
    if names != SECTIONS:
        problems.append(f"the sections are not the 13 of the format, in order: {names}")
    hashes = manifest.get("section_sha256") or {}
    counts = manifest.get("record_counts") or {}
    for (entry, data), name in zip(entries[1:], names):
        if hashlib.sha256(data).hexdigest() != hashes.get(name):
            problems.append(f"section '{name}': its SHA-256 differs from the manifest's")
        try:
            records = json.loads(data)
        except ValueError:
            problems.append(f"section '{name}': not JSON")
            continue
        if not isinstance(records, list):
            problems.append(f"section '{name}': not a JSON array")
            continue
        if counts.get(name) != len(records):
            problems.append(f"section '{name}': {len(records)} record(s), the manifest's "
                            f"record_counts says {counts.get(name)}")
        pretty = (json.dumps(records, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        if records and pretty != data:
            # Python and Rust print floats differently; compare the layout, not the numbers.
            if data.count(b"\n") != pretty.count(b"\n"):
                problems.append(f"section '{name}': not pretty-printed as the format says")
        if not records and data != b"[]\n":
            problems.append(f"section '{name}': an empty section is not '[]' and a newline")
        if name in SORT_KEYS and not in_order(records, SORT_KEYS[name]):
            problems.append(f"section '{name}': records are not sorted by "
                            f"{', '.join(k for k, _ in SORT_KEYS[name])}")
        if name == "vault_secrets_metadata":
            for r in records:
                if sorted(r) != sorted(VAULT_METADATA_KEYS) and sorted(r) != sorted(
                        VAULT_METADATA_KEYS + ["tenant"]):
                    problems.append("section 'vault_secrets_metadata': a record with keys "
                                    f"{sorted(r)} (only the metadata keys are allowed)")
                    break
    return problems, manifest


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    problems, manifest = verify(argv[1])
    if manifest is not None:
        print(f"snapshot {manifest.get('snapshot_id')}: taken at log offset "
              f"{manifest.get('log_offset')}, global hash {manifest.get('global_hash_at') or '-'}")
    for p in problems:
        print(f"  FAIL {p}")
    print("VALID (alone: compare with the log using meshflow)" if not problems else "INVALID")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
