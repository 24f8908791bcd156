"""Tests of tools/verify_snapshot.py on a real snapshot (MESHFLOW_TEST_SNAPSHOT, e.g. the one
`meshflow demo` writes beside its directory): the genuine file passes; an edited section, a
manifest that is not first, a missing section, entries out of order, unsorted records (with
hash and count fixed up) and garbage each fail. Run: python3 -m unittest tools/test_verify_snapshot.py
"""

import hashlib
import io
import json
import os
import sys
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(__file__))
import verify_snapshot  # noqa: E402

SNAPSHOT = os.environ.get("MESHFLOW_TEST_SNAPSHOT", "")


def entries(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def write(path, items):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in items:
            z.writestr(name, data)


@unittest.skipUnless(SNAPSHOT, "set MESHFLOW_TEST_SNAPSHOT to a snapshot ZIP")
class VerifySnapshot(unittest.TestCase):
    def setUp(self):
        self.items = entries(SNAPSHOT)
        self.path = SNAPSHOT + ".test.zip"

    def tearDown(self):
        if os.path.exists(self.path):
            os.remove(self.path)

    def problems(self, items):
        write(self.path, items)
        return verify_snapshot.verify(self.path)[0]

    def test_the_genuine_snapshot_is_valid(self):
        """The file meshflow wrote passes every check."""
        self.assertEqual(verify_snapshot.verify(SNAPSHOT)[0], [])

    def test_an_edited_section_fails_its_hash(self):
        """One changed byte in a non-empty section is caught by its SHA-256."""
        items = list(self.items)
        i = next(k for k, (n, d) in enumerate(items) if k > 0 and d != b"[]\n")
        name, data = items[i]
        items[i] = (name, data.replace(b'"', b"'", 1).replace(b"'", b'"', 1) + b" ")
        self.assertTrue(any("SHA-256" in p for p in self.problems(items)))

    def test_the_manifest_must_come_first(self):
        """A ZIP whose first entry is a section is not a snapshot."""
        items = self.items[1:] + self.items[:1]
        self.assertTrue(any("first entry" in p for p in self.problems(items)))

    def test_a_missing_or_moved_section_fails(self):
        """Dropping a section, or swapping two, breaks the section list."""
        self.assertTrue(self.problems(self.items[:-1]))
        items = list(self.items)
        items[1], items[2] = items[2], items[1]
        self.assertTrue(any("sections" in p for p in self.problems(items)))

    def test_unsorted_records_fail_even_with_hash_and_count_fixed(self):
        """Reversing a section of two or more records, hash updated, breaks its sort key."""
        items = list(self.items)
        for k, (name, data) in enumerate(items):
            records = json.loads(data) if k > 0 else None
            if records and len(records) > 1 and records != records[::-1]:
                flipped = (json.dumps(records[::-1], indent=2, ensure_ascii=False) + "\n").encode()
                items[k] = (name, flipped)
                manifest = json.loads(items[0][1])
                section = name[:-5]
                manifest["section_sha256"][section] = hashlib.sha256(flipped).hexdigest()
                items[0] = ("manifest.json", json.dumps(manifest, indent=2).encode())
                problems = self.problems(items)
                self.assertTrue(any("sorted" in p for p in problems), problems)
                return
        self.skipTest("no section with two distinct records")

    def test_garbage_is_not_a_zip(self):
        """A file that is not a ZIP is one clear problem."""
        with open(self.path, "wb") as f:
            f.write(b"not a zip at all")
        problems, manifest = verify_snapshot.verify(self.path)
        self.assertIsNone(manifest)
        self.assertTrue(problems[0].startswith("not a ZIP"))


if __name__ == "__main__":
    unittest.main()
