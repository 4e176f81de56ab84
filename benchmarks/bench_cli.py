#!/usr/bin/env python
"""How fast the command line answers: `cifake --help`, a subcommand's help and a usage error,
each the median of several fresh processes, against `python -c pass` as the floor.

The parser imports no torch, numpy or pandas (tests/test_architecture.py checks it), so these
should be a small step above the interpreter's own start-up.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import median, table, write_json

CASES = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "cifake --help": ["cifake", "--help"],
    "cifake train --help": ["cifake", "train", "--help"],
    "cifake audit /nonexistent": ["cifake", "audit", "/nonexistent"],
    "cifake train (missing --out)": ["cifake", "train", "--model", "custom_cnn"],
}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per case (default 5)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    exe = shutil.which("cifake") or str(Path(sys.executable).with_name("cifake"))
    result, rows = {"repeats": args.repeats, "cases": {}}, []
    for name, cmd in CASES.items():
        cmd = [exe, *cmd[1:]] if cmd[0] == "cifake" else cmd
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True)
            runs.append(time.perf_counter() - t0)
        result["cases"][name] = {"median_s": median(runs), "runs_s": runs}
        rows.append({"command": name, "median s": median(runs), "max s": max(runs)})
    print(table(rows, [("command", "command"), ("median s", "median (s)"), ("max s", "max (s)")]))
    write_json(args.json, result)
    slowest = max(v["median_s"] for k, v in result["cases"].items() if k.startswith("cifake"))
    floor = result["cases"]["python -c pass (floor)"]["median_s"]
    print(f"cli start-up: slowest cifake case {slowest:.3f} s median, python floor {floor:.3f} s")
    return result


if __name__ == "__main__":
    main()
