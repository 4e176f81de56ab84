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

``--variants`` then tunes what the subset cannot show: variants of the improved recipe itself
(epochs, shift, learning rate), each changed on its own from the recipe, trained on the whole
train part and scored on the whole validation part of the study's split. A run already trained
on that split with a variant's exact settings can be taken in with ``--import LABEL=RUN_DIR``
(its config and split manifest are checked against the variant's) instead of trained again:

    python benchmarks/ablation.py --data ../shared/data/cifake-train.zip --variants --seeds 0 \
        --json benchmarks/results/tuning_custom_cnn.json
"""

from __future__ import annotations

import argparse
import json
import re
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


# variants of the improved recipe on the full split: (label, settings, the variant it is
# compared with). Settings start from the recipe as it stood before this tuning (BEFORE: 15
# epochs, no test-time flip); the last row is the recipe as it is now, the tuning's outcome.
# FP32 rows train as the cpu report did (fp32, NCHW), the others with this machine's defaults
# (bf16 autocast and channels_last where the CPU has bf16 instructions).
BEFORE = {"epochs": 15, "tta": False}
FP32 = {"amp": "off", "channels_last": False}
VARIANTS: list[tuple[str, dict, str | None]] = [
    ("improved recipe before tuning (15 epochs), fp32", {**BEFORE, **FP32}, None),
    ("improved recipe before tuning (15 epochs)", {**BEFORE}, "improved recipe before tuning (15 epochs), fp32"),
    ("20 epochs, fp32", {**BEFORE, "epochs": 20, **FP32}, "improved recipe before tuning (15 epochs), fp32"),
    ("30 epochs", {**BEFORE, "epochs": 30}, "improved recipe before tuning (15 epochs)"),
    ("40 epochs", {**BEFORE, "epochs": 40}, "improved recipe before tuning (15 epochs)"),
    # test-time only: the 40-epoch run's best.pt scored again with the flip
    ("40 epochs + flip TTA (rescored)", {**BEFORE, "epochs": 40, "tta": True}, "40 epochs"),
    ("40 epochs, shift up to 4 px", {**BEFORE, "epochs": 40, "translate": 4}, "40 epochs"),
    # the recipe as set: 40 epochs with the flip, which then also scores validation (picks best.pt)
    ("improved recipe as set: 40 epochs, flip TTA", {}, "40 epochs"),
]

# settings that say where and how fast a run computes, not what it learns
_RUNTIME_KEYS = ("device", "amp", "channels_last", "compile", "deterministic", "eval_batch_size")


def run_record(run: Path, seed: int, seconds: float | None = None) -> dict:
    """What a finished run folder says: best and last validation accuracy, epoch times, and the
    arithmetic training used."""
    import pandas as pd

    h = pd.read_csv(run / "history.csv")
    best = h.loc[h["best"].astype(bool)].iloc[-1]
    info = json.loads((run / "config.json").read_text())
    return {
        "seed": seed,
        "arithmetic": _arithmetic(info.get("amp") == "torch.bfloat16", bool(info.get("channels_last", False))),
        "best_epoch": int(best["epoch"]),
        "val_accuracy_best": float(best["val_accuracy"]),
        "val_auc_best": float(best["val_auc"]),
        "val_accuracy_last": float(h["val_accuracy"].iloc[-1]),
        "train_accuracy_last": float(h["train_accuracy"].iloc[-1]),
        "epochs": int(h["epoch"].iloc[-1]),
        "epoch_s_median": float(h["epoch_time_s"].median()),
        "train_s": float(h["epoch_time_s"].sum()),
        "seconds": float(h["epoch_time_s"].sum()) if seconds is None else seconds,
    }


def run_step(data, splits, model: str, settings: dict, seed: int, batch_size: int, keep: Path, cfg=None) -> dict:
    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.trainer import train_model

    if cfg is None:
        cfg = TrainConfig.from_dict({"model": model, "batch_size": batch_size, "seed": seed, **settings})
    run = keep / f"seed{seed}"  # the last trained step's runs stay, for the test-time step
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    train_model(cfg, data, splits, run, progress=False, log=lambda msg: None)
    return run_record(run, seed, time.perf_counter() - t0)


def previous_steps(args) -> dict[str, dict]:
    """With --resume, the steps already in --json by label (their runs are kept, not redone)."""
    if args.resume and args.json and Path(args.json).exists():
        return {s["label"]: s for s in json.loads(Path(args.json).read_text())["steps"]}
    return {}


def save_progress(path: str | None, result: dict) -> None:
    """Write the results so far (after every run, so an interrupted search keeps what it measured)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2))


def _arithmetic(bf16: bool, channels_last: bool) -> str:
    return ("bf16 autocast" if bf16 else "fp32") + (", channels_last" if channels_last else "")


def imported_run(run: Path, cfg, data, splits) -> dict:
    """The record of a run trained elsewhere, after checking it is exactly this variant on this split."""
    import numpy as np
    import torch

    from cifake_lib.data.splits import load_manifest
    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.runtime import make_runtime

    # from_checkpoint fills in settings added after the run was trained with their defaults
    theirs_cfg = TrainConfig.from_checkpoint(json.loads((run / "config.json").read_text())["config"])
    # image_size None means the model's default: compare the input size the runs had
    stored = {**theirs_cfg.to_dict(), "image_size": theirs_cfg.input_size}
    want = {**cfg.to_dict(), "image_size": cfg.input_size}
    differs = [
        f"{k}: {stored.get(k)!r} (run) vs {v!r}"
        for k, v in want.items()
        if k not in _RUNTIME_KEYS and stored.get(k) != v
    ]
    if differs:
        raise SystemExit(f"{run} is not this variant: " + "; ".join(differs))
    theirs = load_manifest(run / "splits.json", data)
    for part in ("train", "val"):
        if not np.array_equal(np.sort(getattr(theirs, part)), np.sort(getattr(splits, part))):
            raise SystemExit(f"{run} was trained on another split ({part} part differs)")
    record = run_record(run, cfg.seed)
    rt = make_runtime(cfg, torch.device("cpu"))
    want = _arithmetic(rt.amp_dtype == torch.bfloat16, rt.prep.channels_last)
    if record["arithmetic"] != want:
        raise SystemExit(f"{run} trained in {record['arithmetic']}, this variant in {want}")
    return {**record, "imported_from": str(run)}


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


def variants_markdown(result: dict) -> str:
    lines = [
        f"Model `{result['model']}` at 32px; the whole train part ({result['train_images']:,} images) "
        f"and validation part ({result['val_images']:,} images) of the study's split; seeds "
        f"{', '.join(map(str, result['seeds']))}. Each variant changes the improved recipe only where "
        "its label says; `change` compares its best validation accuracy with the row it names.",
        "",
        "| # | variant | training arithmetic | val accuracy (best epoch) | change | val accuracy, last epoch | "
        "val AUC | train acc (last) | s per epoch (median) | training time (min) |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    steps = [s for s in result["steps"] if s["runs"]]
    number = {s["label"]: i + 1 for i, s in enumerate(steps)}
    means = {s["label"]: statistics.mean(r["val_accuracy_best"] for r in s["runs"]) for s in steps}
    for step in steps:
        runs, vs = step["runs"], step.get("vs")
        delta = f"{100 * (means[step['label']] - means[vs]):+.2f} pt vs #{number[vs]}" if vs in means else ""
        per_seed = ", ".join(f"{r['val_accuracy_best']:.4f} ({r['best_epoch']})" for r in runs)
        lines.append(
            f"| {number[step['label']]} | {step['label']} | {runs[0]['arithmetic']} | {per_seed} | "
            f"{delta} | {_mean_or_dash([r['val_accuracy_last'] for r in runs])} | "
            f"{statistics.mean(r['val_auc_best'] for r in runs):.4f} | "
            f"{statistics.mean(r['train_accuracy_last'] for r in runs):.4f} | "
            f"{statistics.mean(r['epoch_s_median'] for r in runs):.0f} | "
            f"{statistics.mean(r['train_s'] for r in runs) / 60:.1f} |"
        )
    lines += [
        "",
        "Training time is the sum of the epoch times (training and validation) as measured; runs "
        "marked in the JSON as imported were trained by `cifake train` on the same split with the "
        "same settings. Rescored rows train nothing: the named row's best.pt is scored on validation "
        "again with the change (training time and epoch are that row's).",
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
    ap.add_argument(
        "--variants",
        action="store_true",
        help="tune the improved recipe instead: its variants on the whole train and validation parts",
    )
    ap.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="LABEL=RUN_DIR",
        help="with --variants: take this finished run (seed of its config) as the variant LABEL",
    )
    ap.add_argument("--only", nargs="+", metavar="LABEL", help="with --variants: only these variants")
    ap.add_argument(
        "--keep", help="with --variants: keep the trained runs under this folder (default: a temporary one)"
    )
    args = ap.parse_args(argv)
    if args.table:
        result = json.loads(Path(args.table).read_text())
        print(variants_markdown(result) if result.get("variants") else markdown(result))
        return 0

    if not args.data:
        ap.error("--data is required")
    import numpy as np

    from cifake_lib.data.dataset import load_cifake
    from cifake_lib.data.splits import make_splits, subset_per_class

    data = load_cifake(args.data, progress=False)
    splits = make_splits(data, val_fraction=0.1, seed=0)
    if args.variants:
        return tune_variants(args, data, splits)
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
    done = previous_steps(args)
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
            save_progress(args.json, result)
    print()
    print(markdown(result))
    return 0


def tune_variants(args, data, splits) -> int:
    from cifake_lib.engine.recipes import recipe_config

    imports = dict(item.split("=", 1) for item in args.imports)
    labels = [label for label, _, _ in VARIANTS]
    for option, named in (("--import", set(imports)), ("--only", set(args.only or ()))):
        if named - set(labels):
            raise SystemExit(f"{option} names no variant: {', '.join(sorted(named - set(labels)))}; variants: {labels}")
    result = {
        "variants": True,
        "model": args.model,
        "train_images": int(len(splits.train)),
        "val_images": int(len(splits.val)),
        "seeds": args.seeds,
        "machine": machine(),
        "steps": [],
    }
    done = previous_steps(args)
    keep = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cifake-tuning-"))
    steps_by_label: dict[str, dict] = {}
    for label, change, vs in VARIANTS[: args.steps]:
        if args.only and label not in args.only:
            continue
        step = {"label": label, "settings": change, "vs": vs, "runs": []}
        result["steps"].append(step)
        steps_by_label[label] = step
        for seed in args.seeds:
            cfg = recipe_config("improved", args.model, batch_size=args.batch_size, seed=seed, **change)
            old = [r for r in done.get(label, {}).get("runs", []) if r["seed"] == seed]
            if old:
                r = old[0]
            elif "(rescored)" in label:
                base = next(r for r in steps_by_label[vs]["runs"] if r["seed"] == seed)
                r = rescore_with_tta(data, splits, Path(base.get("run_dir") or base["imported_from"]), base)
            elif label in imports and seed == json.loads((Path(imports[label]) / "config.json").read_text())[
                "config"
            ].get("seed"):
                r = imported_run(Path(imports[label]), cfg, data, splits)
            else:
                folder = keep / re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
                r = run_step(data, splits, args.model, {}, seed, args.batch_size, folder, cfg=cfg)
                r["run_dir"] = str(folder / f"seed{seed}")  # kept: score the chosen one on the test part
            step["runs"].append(r)
            print(
                f"{label} seed {seed}: val acc {r['val_accuracy_best']:.4f} (epoch {r['best_epoch']}), "
                f"last {r['val_accuracy_last']:.4f}, {r['train_s'] / 60:.1f} min",
                flush=True,
            )
            save_progress(args.json, result)
    print()
    print(variants_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
