"""A named recipe trained with several seeds through `cifake train`, each run then scored once on
the split's held-out test part: training time, best validation accuracy, test accuracy with its
95% interval, and the mean and a t interval over seeds.

    python benchmarks/recipe_seeds.py --data ../shared/data/cifake-train.zip --model custom_cnn_bn \\
        --recipe fast --seeds 0 1 2 --keep runs/fast --json benchmarks/results/fast_recipe_seeds.json

The recipe is chosen on validation before this runs; the test part is read once per run here
(each read is logged in the run's test_reads.jsonl). `--table FILE` prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import ROOT, machine  # noqa: F401  (ROOT puts the checkout on sys.path)


def train_and_score(args, seed: int) -> dict:
    import pandas as pd

    from cifake_lib.cli import main as cifake

    run = Path(args.keep) / f"seed{seed}"
    cmd = ["train", "--model", args.model, "--recipe", args.recipe, "--data", args.data, "--seed", str(seed)]
    cmd += ["--out", str(run), "--no-progress"]
    t0 = time.perf_counter()
    if cifake(cmd) != 0:
        raise SystemExit(f"cifake {' '.join(cmd)} failed")
    wall = time.perf_counter() - t0
    h = pd.read_csv(run / "history.csv")
    train_s = float(h["epoch_time_s"].sum() + h["ckpt_time_s"].fillna(0).sum())
    best = h.loc[h["best"]].iloc[-1]
    if cifake(["evaluate", "--run", str(run), "--data", args.data, "--out", str(run / "test")]) != 0:
        raise SystemExit(f"cifake evaluate --run {run} failed")
    m = json.loads((run / "test" / "metrics.json").read_text())
    return {
        "seed": seed,
        "command": "cifake " + " ".join(cmd),
        "run_dir": str(run),
        "train_s": train_s,
        "wall_s_with_start_up": wall,
        "epochs": int(h["epoch"].max()),
        "best_epoch": int(best["epoch"]),
        "val_accuracy": float(best["val_accuracy"]),
        "val_auc": float(best["val_auc"]),
        "test_accuracy": m["accuracy"],
        "test_accuracy_ci95": m["ci95"]["accuracy"],
        "test_auc": m["auc"],
        "test_n": m["n"],
        "test_source": m.get("test_source"),
        "test_near_duplicates_removed": m.get("near_duplicates_removed"),
    }


def summary(runs: list[dict]) -> dict:
    from cifake_lib.study.results import seed_spread

    out = {}
    for key in ("train_s", "val_accuracy", "test_accuracy", "test_auc"):
        s = seed_spread([r[key] for r in runs])
        out[key] = {"mean": s.mean, "std": s.std, "ci95": s.ci95, "values": list(s.values)}
    return out


def markdown(result: dict) -> str:
    lines = [
        f"`{result['model']}`, recipe `{result['recipe']}`, {result['machine']['cores']} cores; "
        f"test part: {result['runs'][0]['test_source']} ({result['runs'][0]['test_n']:,} images)",
        "",
        "| seed | training time (min) | best epoch | val accuracy | test accuracy [95% CI] | test AUC |",
        "| ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in result["runs"]:
        lo, hi = r["test_accuracy_ci95"]
        lines.append(
            f"| {r['seed']} | {r['train_s'] / 60:.1f} | {r['best_epoch']} / {r['epochs']} | {r['val_accuracy']:.4f} | "
            f"{r['test_accuracy']:.4f} [{lo:.4f}, {hi:.4f}] | {r['test_auc']:.4f} |"
        )
    s = result["summary"]
    if len(result["runs"]) > 1:
        t, lo, hi = s["test_accuracy"]["mean"], *s["test_accuracy"]["ci95"]
        lines.append(
            f"| mean | {s['train_s']['mean'] / 60:.1f} | | {s['val_accuracy']['mean']:.4f} | "
            f"{t:.4f} [{lo:.4f}, {hi:.4f}] over seeds | {s['test_auc']['mean']:.4f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="CIFAKE folder or zip (required unless --table)")
    ap.add_argument("--model", default="custom_cnn_bn")
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keep", default="runs/recipe_seeds", help="where the runs are written")
    ap.add_argument("--json", help="write the results here (after every run)")
    ap.add_argument("--table", help="only print the Markdown table of this results JSON")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text())))
        return 0
    if not args.data:
        ap.error("--data is required")
    from cifake_lib.data.dataset import load_cifake
    from cifake_lib.provenance import provenance

    result = {
        "benchmark": "recipe_seeds",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model,
        "recipe": args.recipe,
        "data": load_cifake(args.data, progress=False).provenance(),
        "machine": machine(),
        "provenance": provenance(),
        "runs": [],
    }
    for seed in args.seeds:
        result["runs"].append(train_and_score(args, seed))
        result["summary"] = summary(result["runs"])
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
