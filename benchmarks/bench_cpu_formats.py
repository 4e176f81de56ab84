#!/usr/bin/env python
"""CPU training throughput by number format and memory layout, side by side in one run.

For each case, the trainer trains one epoch four ways: fp32 in the default (NCHW) layout,
fp32 channels_last, bf16 autocast, bf16 autocast channels_last. Repeats are interleaved (one
epoch of each format, then the next round), so that load from other jobs falls on all four
alike; the table gives the median images per second of each and its ratio to plain fp32.
bf16 is only fast on CPUs with native bf16 instructions (AVX512-BF16 or AMX); the header says
whether this one has them.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench_train_step import trainer_run
from common import median, table, timed, write_json

CASES = [("custom_cnn", 32, 10000), ("resnet18", 32, 1500), ("resnet18", 224, 96)]
FORMATS = [
    ("fp32", "off", False),
    ("fp32 channels_last", "off", True),
    ("bf16", "bf16", False),
    ("bf16 channels_last", "bf16", True),
]


def main(argv=None) -> dict:
    import numpy as np
    from common import load_or_synthesize

    from cifake_lib.data.splits import Splits
    from cifake_lib.engine.runtime import cpu_has_native_bf16

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="CIFAKE folder or zip (default $CIFAKE_DATA, else synthetic)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the per-case image counts")
    ap.add_argument("--cases", nargs="+", help="model:size entries (default: all)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    cases = CASES
    if args.cases:
        wanted = {tuple(c.split(":")) for c in args.cases}
        cases = [c for c in CASES if (c[0], str(c[1])) in wanted]
        if not cases:
            ap.error(f"--cases matched none of {', '.join(f'{m}:{s}' for m, s, _ in CASES)}")
    biggest = max(max(2 * args.batch_size, int(n * args.scale)) for _, _, n in cases)
    data, idx, source = load_or_synthesize(args.data, biggest // 2 + 64)
    native = cpu_has_native_bf16()
    result = {
        "source": source,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "native_bf16": native,
        "formats": [name for name, _, _ in FORMATS],
        "cases": {},
    }
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="cifake-bench-formats-"))
    try:
        for model_name, size, n in cases:
            n = max(2 * args.batch_size, int(n * args.scale))
            train_idx, val_idx = np.sort(idx[:n]), np.sort(idx[-64:])
            splits = Splits(train_idx, val_idx, val_idx, val_idx, {"test_source": "benchmark"})
            speeds: dict[str, list[float]] = {name: [] for name, _, _ in FORMATS}
            for _ in range(args.repeats):
                for name, amp, cl in FORMATS:
                    out = tmp / "run"
                    shutil.rmtree(out, ignore_errors=True)
                    t, k = timed(
                        trainer_run,
                        model_name,
                        size,
                        data,
                        splits,
                        args.batch_size,
                        "cpu",
                        out,
                        amp,
                        cl,
                        progress=False,
                    )
                    speeds[name].append(k / t)
            base = median(speeds["fp32"])
            case = {}
            for name, _, _ in FORMATS:
                v = median(speeds[name])
                case[name] = {"img_s": v, "ratio_to_fp32": v / base, "runs": speeds[name]}
                rows.append({"case": f"{model_name} @ {size}px", "format": name, "img_s": v, "ratio": v / base})
            result["cases"][f"{model_name}@{size}"] = {"images": n, **case}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"CPU training throughput, trainer, one epoch, batch {args.batch_size}, median of {args.repeats} "
        f"interleaved rounds; native bf16 instructions: {'yes' if native else 'no'}"
    )
    print(
        table(
            rows,
            [("case", "case"), ("format", "format"), ("img_s", "trainer img/s"), ("ratio", "vs fp32")],
        )
    )
    write_json(args.json, {"benchmark": "cpu_formats", **result})
    best = max(rows, key=lambda r: r["ratio"])
    print(f"fastest vs fp32: {best['format']} {best['ratio']:.2f}x ({best['case']})")
    return result


if __name__ == "__main__":
    main()
