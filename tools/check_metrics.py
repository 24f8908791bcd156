#!/usr/bin/env python3
"""Parse a running `meshflow serve --http` service's /metrics with the Prometheus project's own
Python parser (prometheus_client), and check the families the HTTP API documents.

Usage: check_metrics.py BASE_URL [EXPECTED_APPENDED_STEPS]
Exit 0 when the text parses and every documented family is there with its type; 1 otherwise.
"""

import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# name (as the parser reports it, without _total) -> type
EXPECTED = {
    "meshflow_append_steps": "counter",
    "meshflow_append_latency_seconds": "histogram",
    "meshflow_log_records": "counter",
    "meshflow_log_bytes_written": "counter",
    "meshflow_log_fsyncs": "counter",
    "meshflow_log_group_commit_records": "histogram",
}


def main() -> int:
    base = sys.argv[1].rstrip("/")
    want_steps = int(sys.argv[2]) if len(sys.argv) > 2 else None
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode("utf-8")
    try:
        families = {f.name: f for f in text_string_to_metric_families(text)}
    except Exception as e:  # the parser raises ValueError and others on malformed text
        print(f"/metrics does not parse: {e}")
        return 1
    failed = False
    for name, kind in EXPECTED.items():
        family = families.get(name)
        if family is None:
            print(f"missing family {name}")
            failed = True
        elif family.type != kind:
            print(f"{name} is a {family.type}, expected a {kind}")
            failed = True
    for name, family in families.items():
        if family.type == "histogram":
            buckets = [s for s in family.samples if s.name.endswith("_bucket")]
            if not any(s.labels.get("le") == "+Inf" for s in buckets):
                print(f"histogram {name} has no +Inf bucket")
                failed = True
    if want_steps is not None and "meshflow_append_steps" in families:
        got = sum(
            s.value
            for s in families["meshflow_append_steps"].samples
            if s.name == "meshflow_append_steps_total"
        )
        if got != want_steps:
            print(f"meshflow_append_steps_total is {got}, expected {want_steps}")
            failed = True
    if failed:
        return 1
    print(f"/metrics parses: {len(families)} families, {len(text.splitlines())} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
