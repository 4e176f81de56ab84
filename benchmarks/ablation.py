"""Ablation of the improved training recipe, on validation only.

Starting from the paper's recipe, the changes of the improved recipe are added one at a time
(cumulatively) and each step is trained with several seeds on a stratified subset of the train
part; the table gives validation accuracy and AUC per step, its mean over seeds and what the step
changed. The carved test part is never read: the recipe is chosen here, the final number is
measured once on the test part by the study.

    python benchmarks/ablation.py --data ../shared/data/cifake-train.zip --model custom_cnn \
        --per-class 4000 --val-per-class 2500 --seeds 0 1 --json benchmarks/results/ablation.json

writes the JSON (after every run, so an interrupted ablation keeps what it measured) and prints
the Markdown table that benchmarks/ABLATION.md holds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine  # noqa: F401  (ROOT puts the repository on sys.path)

# cumulative steps: (label, settings added at this step)
STEPS: list[tuple[str, dict]] = [
    ("paper recipe (Adam 1e-3, 10 epochs)", {}),
    ("+ flip + translate augmentation", {"augment": True}),
    (
        "+ AdamW (wd 0.05), 1 warm-up epoch, cosine",
        {"optimizer": "adamw", "weight_decay": 0.05, "schedule": "cosine", "warmup_epochs": 1.0},
    ),
    ("+ label smoothing 0.1", {"label_smoothing": 0.1}),
    ("+ EMA of the weights (0.999)", {"ema_decay": 0.999}),
    # test-time only: the previous step's best.pt of each seed scored again with the flip
    ("+ flip test-time augmentation (rescored)", {"tta": True}),
    ("+ lr 2e-3", {"lr": 2e-3}),
    ("+ 20 epochs", {"epochs": 20}),
]


def run_step(data, splits, model: str, settings: dict, seed: int, batch_size: int, keep: Path) -> dict:
    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.trainer import train_model

    cfg = TrainConfig.from_dict({"model": model, "batch_size": batch_size, "seed": seed, **settings})
    run = keep / f"seed{seed}"  # the last trained step's runs stay, for the test-time step
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    res = train_model(cfg, data, splits, run, progress=False, log=lambda msg: None)
    seconds = time.perf_counter() - t0
    h = res.history
    best = h.loc[h["epoch"] == res.best_epoch].iloc[0]
    return {
        "seed": seed,
        "best_epoch": int(res.best_epoch),
        "val_accuracy_best": float(best["val_accuracy"]),
        "val_auc_best": float(best["val_auc"]),
        "val_accuracy_last": float(h["val_accuracy"].iloc[-1]),
        "train_accuracy_last": float(h["train_accuracy"].iloc[-1]),
        "seconds": seconds,
    }


def rescore_with_tta(data, splits, run: Path, previous: dict) -> dict:
    """The previous step's best.pt scored on validation with flip test-time augmentation."""
    import numpy as np
    import torch

    from cifake_lib.engine.checkpoint import load_run_model
    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.inference import p_fake, predict_array
    from cifake_lib.engine.metrics import binary_metrics

    model, ckpt = load_run_model(run, "best")
    cfg = TrainConfig.from_checkpoint({**ckpt["config"], "tta": True})
    t0 = time.perf_counter()
    p = p_fake(predict_array(model, data.images[splits.val], cfg, torch.device("cpu"), progress=False))
    m = binary_metrics(data.labels[splits.val], p)
    return {
        **previous,
        "val_accuracy_best": float(m["accuracy"]),
        "val_auc_best": float(m["auc"]),
        "val_accuracy_last": float("nan"),
        "seconds": time.perf_counter() - t0,
        "rescored": True,
        "n_val": int(np.size(p)),
    }


def markdown(result: dict) -> str:
    lines = [
        f"Model `{result['model']}` at 32px; {result['train_images']:,} training images "
        f"({result['per_class']:,} per class, stratified), scored on {result['val_images']:,} validation "
        f"images; seeds {', '.join(map(str, result['seeds']))}; steps are cumulative. "
        "Accuracy of the epoch best.pt keeps (best val) and of the last epoch; mean over seeds.",
        "",
        "| step | val accuracy per seed (best) | mean best | change | mean last epoch | mean val AUC | "
        "train acc (last) | time per run (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    prev = None
    for step in result["steps"]:
        runs = step["runs"]
        if not runs:
            continue
        acc = [r["val_accuracy_best"] for r in runs]
        mean = statistics.mean(acc)
        delta = "" if prev is None else f"{100 * (mean - prev):+.2f} pt"
        prev = mean
        lines.append(
            f"| {step['label']} | {', '.join(f'{a:.4f}' for a in acc)} | {mean:.4f} | {delta} | "
            f"{_mean_or_dash([r['val_accuracy_last'] for r in runs])} | "
            f"{statistics.mean(r['val_auc_best'] for r in runs):.4f} | "
            f"{statistics.mean(r['train_accuracy_last'] for r in runs):.4f} | "
            f"{statistics.mean(r['seconds'] for r in runs):.0f} |"
        )
    lines += [
        "",
        "Rescored steps train nothing: the previous step's best.pt of each seed is scored again with "
        "the change (the epoch was picked without it). Times were measured while other jobs shared "
        "the two cores: they are not speed figures.",
    ]
    sd = [statistics.stdev([r["val_accuracy_best"] for r in s["runs"]]) for s in result["steps"] if len(s["runs"]) > 1]
    if sd:
        lines += [
            "",
            f"Seed-to-seed standard deviation of the best validation accuracy: median {statistics.median(sd):.4f}.",
        ]
    return "\n".join(lines)


def _mean_or_dash(values) -> str:
    values = [v for v in values if v == v]  # drop NaN
    return f"{statistics.mean(values):.4f}" if values else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="CIFAKE folder or zip (required unless --table)")
    ap.add_argument("--model", default="custom_cnn")
    ap.add_argument("--per-class", type=int, default=4000, help="training images per class")
    ap.add_argument("--val-per-class", type=int, default=2500, help="validation images per class scored")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, help="only the first N steps")
    ap.add_argument("--json", help="write the results here (after every run)")
    ap.add_argument("--table", help="only print the Markdown table of this results JSON")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --json, run the rest")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text())))
        return 0

    if not args.data:
        ap.error("--data is required")
    import numpy as np

    from cifake_lib.data.dataset import load_cifake
    from cifake_lib.data.splits import make_splits, subset_per_class

    data = load_cifake(args.data, progress=False)
    splits = make_splits(data, val_fraction=0.1, seed=0)
    rng = np.random.default_rng(0)
    splits.train = subset_per_class(data, splits.train, args.per_class, rng)
    splits.val = subset_per_class(data, splits.val, args.val_per_class, rng)
    splits.test = splits.test_leak_free = splits.test[:0]  # never read here
    result = {
        "model": args.model,
        "per_class": args.per_class,
        "train_images": int(len(splits.train)),
        "val_images": int(len(splits.val)),
        "seeds": args.seeds,
        "machine": machine(),
        "steps": [],
    }
    done = {}
    if args.resume and args.json and Path(args.json).exists():
        done = {s["label"]: s for s in json.loads(Path(args.json).read_text())["steps"]}
    keep = Path(tempfile.mkdtemp(prefix="cifake-ablation-"))
    settings: dict = {}
    for label, change in STEPS[: args.steps]:
        settings = {**settings, **change}
        step = {"label": label, "settings": dict(settings), "runs": []}
        result["steps"].append(step)
        for seed in args.seeds:
            old = [r for r in done.get(label, {}).get("runs", []) if r["seed"] == seed]
            if old:
                step["runs"].append(old[0])
                continue
            if "rescored" in label:
                prev = next(r for r in result["steps"][-2]["runs"] if r["seed"] == seed)
                r = rescore_with_tta(data, splits, keep / f"seed{seed}", prev)
            else:
                r = run_step(data, splits, args.model, settings, seed, args.batch_size, keep)
            step["runs"].append(r)
            print(
                f"{label} seed {seed}: val acc {r['val_accuracy_best']:.4f} (epoch {r['best_epoch']}), "
                f"last {r['val_accuracy_last']:.4f}, {r['seconds']:.0f} s",
                flush=True,
            )
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(result, indent=2))
    print()
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
