#!/usr/bin/env python3
"""Prints one line per critest spec that ran, from ginkgo's JSON report: its state and full name, and
under a failure or a skip the first line of its message (and the gRPC error in it); then the counts.

    summary.py REPORT.json [--all] [--expect EXPECTED_SKIPS.md [--context NAME]]

With --expect, also checks the run against the ```expect block of that file (lines "STATE REGEX":
the specs allowed to end in STATE, matched against the full name) and exits 1 when a spec failed or
was skipped without such a line. With --context, the lines of its ```expect NAME block count too
(what fails only where the run is, e.g. `vm`: the cgroup v2 guest). Specs that did not run (focus,
benchmarks) are not checked.

Specs left out by -ginkgo.focus/-ginkgo.skip (or critest's own benchmark filter) count as "notrun"
and are listed only with --all.
"""

import argparse
import json
import re
import sys
from collections import Counter


def specs(report_path):
    with open(report_path) as f:
        reports = json.load(f)
    for report in reports:
        for spec in report.get("SpecReports") or []:
            # A failing BeforeSuite/AfterSuite (or a failing AfterEach reported on its own) matters
            # too: it explains the specs around it.
            if spec.get("LeafNodeType") == "It" or spec.get("State") not in (None, "passed"):
                yield spec


def state(spec):
    if spec.get("State") == "skipped" and not spec.get("NumAttempts"):
        return "notrun"
    return spec.get("State", "?")


def name(spec):
    parts = list(spec.get("ContainerHierarchyTexts") or [])
    parts.append(spec.get("LeafNodeText") or spec.get("LeafNodeType"))
    return " ".join(p for p in parts if p)


def why(spec):
    """The first line of the failure or skip message, and the gRPC error in it if there is one."""
    message = ((spec.get("Failure") or {}).get("Message") or "").strip()
    if not message:
        return ""
    lines = [line.strip() for line in message.splitlines()]
    grpc = next((line for line in lines[1:] if line.startswith("rpc error:")), None)
    return lines[0] + (f" | {grpc[:300]}" if grpc else "")


def expectations(path, context=None):
    """The (state, compiled regex) pairs of the ```expect block in a markdown file, and of its
    ```expect CONTEXT block when a context is given."""
    with open(path) as f:
        text = f.read()
    names = ["expect"] + ([f"expect {context}"] if context else [])
    lines = []
    for block_name in names:
        block = re.search(rf"^```{re.escape(block_name)}\n(.*?)^```", text, re.M | re.S)
        if not block:
            sys.exit(f"summary.py: {path} has no ```{block_name} block")
        lines += block.group(1).splitlines()
    pairs = []
    for line in lines:
        if line.strip() and not line.startswith("#"):
            st, regex = line.split(None, 1)
            pairs.append((st, re.compile(regex.strip())))
    return pairs


def check(rows, pairs):
    """Prints each spec that failed or was skipped unexpectedly; returns how many there were."""
    unexpected = 0
    used = set()
    for text, st, reason in sorted(rows):
        if st in ("passed", "notrun"):
            continue
        match = next((i for i, (s, r) in enumerate(pairs) if s == st and r.search(text)), None)
        if match is None:
            unexpected += 1
            print(f"UNEXPECTED {st}: {text}" + (f"\n    -> {reason}" if reason else ""))
        else:
            used.add(match)
    for i, (st, regex) in enumerate(pairs):
        if i not in used:
            print(f"note: no spec was {st} for expectation {regex.pattern!r}")
    return unexpected


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report")
    parser.add_argument("--all", action="store_true", help="list the specs that did not run too")
    parser.add_argument("--expect", help="check against the ```expect block of this file")
    parser.add_argument("--context", help="with --expect: its ```expect CONTEXT block counts too")
    args = parser.parse_args()
    counts = Counter()
    rows = []
    for spec in specs(args.report):
        st = state(spec)
        counts[st] += 1
        if st != "notrun" or args.all:
            rows.append((name(spec), st, why(spec)))
    for text, st, reason in sorted(rows):
        print(f"{st:8} {text}" + (f"\n         -> {reason}" if reason else ""))
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if args.expect:
        unexpected = check(rows, expectations(args.expect, args.context))
        print(f"check: {unexpected} unexpected" if unexpected else "check: every failure and skip is expected")
        sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
