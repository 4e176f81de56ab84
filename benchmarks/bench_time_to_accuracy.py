"""Time to accuracy: validation accuracy against wall time for two (or more) recipes, side by side.

Each recipe trains one model on the same split, validating after every epoch so that the curve
has a point per epoch. For each recipe the script reports the wall time (training, validation
and checkpoint writes) and the training-only time at which validation accuracy first reaches
each target (97.0% and 97.5% by default), and where an epoch's time goes: forward + backward +
optimizer step, preprocessing and augmentation, the rest of the training loop (Python, metrics),
validation and checkpoint writes. The recipes run one after the other in one process, so their
figures are measured on the same machine in the same state; close other work first.

    python benchmarks/bench_time_to_accuracy.py --data ../shared/data/cifake-train.zip \\
        --recipes fast=fast@custom_cnn_bn improved=improved@custom_cnn \\
        --json benchmarks/results/time_to_accuracy.json --figure benchmarks/results/time_to_accuracy.png

Every recipe is validated after every epoch here (``val_every`` 1), whatever it ships with, so
that the curve has a point per epoch; the training-only times leave that validation out.
Validation only: the split's test part is never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
from pathlib import Path

from common import ROOT, machine, table  # noqa: F401  (ROOT puts the checkout on sys.path)

TARGETS = (0.970, 0.975)
PARTS = (  # (history column or derived key, label) of an epoch's time
    ("step_s", "forward + backward + optimizer"),
    ("prep_s", "preprocessing + augmentation"),
    ("loop_s", "rest of the training loop"),
    ("val_s", "validation"),
    ("ckpt_s", "checkpoint writes"),
)


def load(args):
    from cifake_lib.data.dataset import load_cifake
    from cifake_lib.data.splits import limit_parts, load_manifest, make_splits

    data = load_cifake(args.data, progress=not args.quiet)
    splits = load_manifest(args.splits, data) if args.splits else make_splits(data, val_fraction=0.1, seed=0)
    if args.per_class:
        splits = limit_parts(splits, data, args.per_class, seed=0)
    return data, splits


def parse_run(spec: str, default_model: str) -> tuple[str, str, str, dict]:
    """``LABEL=RECIPE[@MODEL][:key=value,...]`` (or a bare recipe name) -> (label, recipe, model,
    settings), e.g. ``"bn, lr 3e-3=improved@custom_cnn_bn:lr=0.003,epochs=8"``."""
    import ast

    head, _, tail = spec.partition(":")
    label, _, head = head.rpartition("=")
    recipe, _, model = head.partition("@")
    settings = {}
    for item in filter(None, tail.split(",")):
        key, _, value = item.partition("=")
        try:
            settings[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            settings[key.strip()] = value.strip()
    return label or head, recipe, model or default_model, settings


def recipe_config(recipe: str, model: str, settings: dict, args):
    from cifake_lib.engine.recipes import recipe_config as named

    overrides = {"seed": args.seed, **({"epochs": args.epochs} if args.epochs else {}), **settings}
    return named(recipe, model, **{**overrides, "val_every": 1})  # a point per epoch


def curve(history) -> list[dict]:
    """Per epoch: cumulative wall and training-only seconds, and the validation accuracy."""
    import pandas as pd

    wall = train = 0.0
    out = []
    for _, r in history.iterrows():
        ckpt = r.get("ckpt_time_s", 0.0)
        ckpt = 0.0 if pd.isna(ckpt) else float(ckpt)  # NaN for the epoch before a resume
        wall += float(r["epoch_time_s"]) + ckpt
        train += float(r["train_time_s"]) + ckpt
        out.append(
            {"epoch": int(r["epoch"]), "wall_s": wall, "train_s": train, "val_accuracy": float(r["val_accuracy"])}
        )
    return out


def time_to(points: list[dict], target: float) -> dict | None:
    """The first epoch whose validation accuracy reaches ``target`` (None when none does)."""
    hit = next((p for p in points if p["val_accuracy"] >= target), None)
    return None if hit is None else {"epoch": hit["epoch"], "wall_s": hit["wall_s"], "train_s": hit["train_s"]}


def breakdown(history) -> dict:
    """Mean seconds per epoch in each part, and their shares of the epoch."""
    h = history.fillna({"ckpt_time_s": 0.0})
    parts = {
        "step_s": h["step_time_s"].mean(),
        "prep_s": h["prep_time_s"].mean(),
        "loop_s": (h["train_time_s"] - h["step_time_s"] - h["prep_time_s"]).mean(),
        "val_s": h["val_time_s"].mean(),
        "ckpt_s": h["ckpt_time_s"].mean(),
    }
    parts = {k: float(v) for k, v in parts.items()}
    total = sum(parts.values())
    return {**parts, "epoch_s": total, "share": {k: v / total for k, v in parts.items()}}


def run_recipe(spec: str, args, data, splits, keep: Path) -> dict:
    import re

    from cifake_lib.engine.trainer import train_model

    label, recipe, model, settings = parse_run(spec, args.model)
    cfg = recipe_config(recipe, model, settings, args)
    folder = keep / re.sub(r"[^A-Za-z0-9]+", "_", label)
    res = train_model(cfg, data, splits, folder, progress=not args.quiet)
    h = res.history
    points = curve(h)
    return {
        "recipe": label,
        "spec": spec,
        "config": cfg.to_dict(),
        "train_images": int(len(splits.train)),
        "val_images": int(len(splits.val)),
        "best_epoch": int(res.best_epoch),
        "best_val_accuracy": float(res.best_metric),
        "total_wall_s": points[-1]["wall_s"],
        "total_train_s": points[-1]["train_s"],
        "time_to": {f"{t:.3f}": time_to(points, t) for t in args.targets},
        "breakdown": breakdown(h),
        "curve": points,
    }


def _minutes(hit: dict | None) -> str:
    return "not reached" if hit is None else f"{hit['wall_s'] / 60:.1f} min (epoch {hit['epoch']})"


def report(result: dict) -> str:
    runs = result["runs"]
    rows = []
    for r in runs:
        row = {"recipe": r["recipe"], "epochs": r["config"]["epochs"], "best val acc": f"{r['best_val_accuracy']:.4f}"}
        for t in result["targets"]:
            row[f"to {float(t):.1%}"] = _minutes(r["time_to"][f"{float(t):.3f}"])
        row["total (min)"] = f"{r['total_wall_s'] / 60:.1f}"
        rows.append(row)
    cols = [(k, k) for k in rows[0]]
    lines = ["Time to validation accuracy (wall time: training, validation, checkpoints)", table(rows, cols), ""]
    parts = [
        {"part": label, **{r["recipe"]: f"{r['breakdown'][k]:.2f} s ({r['breakdown']['share'][k]:.0%})" for r in runs}}
        for k, label in PARTS
    ]
    parts.append({"part": "epoch", **{r["recipe"]: f"{r['breakdown']['epoch_s']:.2f} s" for r in runs}})
    lines += ["Where an epoch's time goes (mean per epoch)", table(parts, [(k, k) for k in parts[0]])]
    return "\n".join(lines)


def figure(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in result["runs"]:
        xs = [p["wall_s"] / 60 for p in r["curve"]]
        axes[0].plot(xs, [p["val_accuracy"] for p in r["curve"]], "o-", ms=3, label=r["recipe"])
    for t in result["targets"]:
        axes[0].axhline(float(t), color="grey", ls=":", lw=1)
    axes[0].set_xlabel("wall time (min): training, validation, checkpoints")
    axes[0].set_ylabel("validation accuracy")
    axes[0].set_ylim(max(0.5, min(p["val_accuracy"] for r in result["runs"] for p in r["curve"]) - 0.01), 1.0)
    axes[0].legend()
    axes[0].set_title("Time to accuracy")
    bottom = [0.0] * len(result["runs"])
    names = [textwrap.fill(r["recipe"], 18) for r in result["runs"]]
    for key, label in PARTS:
        vals = [r["breakdown"][key] for r in result["runs"]]
        axes[1].bar(names, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    axes[1].set_ylabel("seconds per epoch")
    axes[1].set_title("Where an epoch's time goes")
    axes[1].legend(fontsize=8, loc="lower right", framealpha=0.9)
    fig.suptitle(f"{result['train_images']:,} training images, {result['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="CIFAKE folder or zip (required unless --table)")
    ap.add_argument("--splits", help="a split manifest to use (default: a 10%% validation split, seed 0)")
    ap.add_argument("--model", default="custom_cnn", help="the model of a recipe that names none")
    ap.add_argument(
        "--recipes",
        nargs="+",
        default=["paper", "improved"],
        metavar="SPEC",
        help="named recipes (cifake recipes), or LABEL=RECIPE@MODEL:key=value,... for a variant",
    )
    ap.add_argument("--epochs", type=int, help="override every recipe's epochs (a short check)")
    ap.add_argument("--per-class", type=int, help="train on a stratified subset of this many images per class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", type=float, nargs="+", default=list(TARGETS), help="validation accuracies")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--figure", help="write the figure here (PNG)")
    ap.add_argument("--table", help="only print the tables of this results JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    if args.table:
        print(report(json.loads(Path(args.table).read_text())))
        return 0
    if not args.data:
        ap.error("--data is required")
    from cifake_lib.provenance import provenance

    data, splits = load(args)
    result = {
        "benchmark": "time_to_accuracy",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model,
        "data": data.provenance(),
        "train_images": int(len(splits.train)),
        "targets": [f"{t:.3f}" for t in args.targets],
        "machine": machine(),
        "provenance": provenance(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as keep:
        for recipe in args.recipes:
            result["runs"].append(run_recipe(recipe, args, data, splits, Path(keep)))
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2))
    print(report(result))
    if args.figure:
        figure(result, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
