#!/usr/bin/env python3
"""Prints, for each operation of each critest benchmark data file found in both directories, the
median duration under each runtime and berth's share of containerd's (lower is better).

    critest_summary.py BERTH_DIR CONTAINERD_DIR
"""

import json
import os
import statistics
import sys


def medians(path):
    """{operation: median milliseconds} of one critest lifecycle data file."""
    with open(path) as f:
        data = json.load(f)
    names = data.get("operationsNames") or []
    columns = {name: [] for name in names}
    for point in data.get("datapoints") or []:
        for name, ns in zip(names, point.get("operationsDurationsNs") or []):
            columns[name].append(ns / 1e6)
    return {name: statistics.median(v) for name, v in columns.items() if v}


def main():
    berth_dir, containerd_dir = sys.argv[1:3]
    files = sorted(f for f in os.listdir(berth_dir) if f.endswith(".json"))
    if not files:
        sys.exit(f"critest_summary.py: no benchmark data in {berth_dir}")
    print(f"{'benchmark':<28} {'operation':<18} {'berth ms':>9} {'containerd ms':>14} {'berth/containerd':>17}")
    for name in files:
        other = os.path.join(containerd_dir, name)
        b = medians(os.path.join(berth_dir, name))
        c = medians(other) if os.path.exists(other) else {}
        for op, ms in b.items():
            cms = c.get(op)
            ratio = f"{ms / cms:.2f}" if cms else "-"
            cstr = f"{cms:.2f}" if cms is not None else "-"
            print(f"{name.removesuffix('_benchmark_data.json'):<28} {op:<18} {ms:>9.2f} {cstr:>14} {ratio:>17}")


if __name__ == "__main__":
    main()
