"""The ``cifake`` command line: audit, synth, download, models, train, evaluate, predict, robustness.

Building the parser imports nothing heavy (no torch, numpy or pandas), so ``--help`` and
usage errors answer at once; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import __version__

EPILOG = "FAKE (AI-generated) is the positive class (label 1) in every output."
DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N"


class CliError(Exception):
    """An error reported as one line, without a traceback."""


def _number(kind, low, low_ok: bool, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low or (value == low and not low_ok):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _number(int, 1, True, "a positive integer")
_positive_float = _number(float, 0, False, "a positive number")
_non_negative_float = _number(float, 0, True, "a number >= 0")


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


# ----------------------------------------------------------------------------- commands


def cmd_audit(args) -> int:
    from .data.audit import audit, format_audit
    from .data.dataset import load_cifake

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt files are listed in the audit itself
        data = load_cifake(args.data, strict=args.strict, image_size=args.image_size, progress=not args.json)
    result = audit(data)
    print(json.dumps(result, indent=2) if args.json else format_audit(result))
    return 0


def cmd_synth(args) -> int:
    from .data.synth import make_synthetic_cifake

    root = make_synthetic_cifake(args.out, per_class=args.per_class, seed=args.seed, test=not args.no_test)
    print(f"wrote a SYNTHETIC dataset (not CIFAKE) to {root}: {args.per_class} images per class in train/")
    return 0


def cmd_download(args) -> int:
    from .data.download import DownloadError, download_cifake

    try:
        dest = download_cifake(args.dest, timeout=args.timeout)
    except DownloadError as exc:
        raise CliError(str(exc)) from None
    print(f"CIFAKE downloaded to {dest}")
    return 0


def cmd_models(args) -> int:
    from .engine.models import MODELS, build_model, count_parameters, format_layer_table, layer_table

    names = [args.name] if args.name else list(MODELS)
    for name in names:
        if name not in MODELS:
            raise CliError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
        model = build_model(name)
        total = count_parameters(model)
        print(f"{name}: {total:,} parameters, default input {MODELS[name].input_size}px")
        if args.name or args.layers:
            print(format_layer_table(layer_table(model, args.image_size or MODELS[name].input_size), total))
            print()
    return 0


def cmd_recipes(args) -> int:
    from .engine.recipes import RECIPE_DESCRIPTIONS, recipe_table

    models = [args.model] if args.model else None
    for name, text in RECIPE_DESCRIPTIONS.items():
        print(f"{name}: {text}")
    print()
    print(recipe_table(models))
    return 0


def _load_data(path, strict: bool = False, to_score: bool = False):
    """The data of --data (or $CIFAKE_DATA). ``to_score``: data to score rather than to train on,
    so a root with only test/ or a plain REAL/ FAKE/ folder is accepted too."""
    from .data.dataset import load_cifake
    from .paths import default_data

    path = path or default_data()
    if path is None:
        raise CliError("no data given: pass --data PATH (CIFAKE folder or zip) or set CIFAKE_DATA")
    return load_cifake(path, strict=strict, require_train=not to_score)


def train_config(args):
    """The TrainConfig of `cifake train`: the recipe's settings (--recipe, default paper), then the
    profile's (--profile), then the options given explicitly."""
    from .engine.config import cli_fields
    from .engine.recipes import recipe_config

    values = {f.name: getattr(args, f.name) for f in cli_fields() if getattr(args, f.name) is not None}
    recipe = values.pop("recipe", "paper")
    if args.profile:
        from .study.profiles import profile_config

        return profile_config(args.profile, recipe=recipe, **values)
    return recipe_config(recipe, **values)


def cmd_train(args) -> int:
    from .data.splits import limit_parts, load_manifest, make_splits
    from .engine.trainer import train_model

    cfg = train_config(args)
    data = _load_data(args.data)
    if args.splits:
        splits = load_manifest(args.splits, data)
    else:
        splits = make_splits(data, val_fraction=args.val_fraction, seed=args.split_seed, dedupe_train=args.dedupe_train)
    splits = limit_parts(splits, data, cfg.limit_per_class, seed=args.split_seed)
    print(
        f"training {cfg.model} ({cfg.recipe} recipe, {cfg.epochs} epochs) at {cfg.input_size}px "
        f"on {len(splits.train):,} images "
        f"(validation {len(splits.val):,}; test part: {splits.test_source}) -> {args.out}"
    )
    result = train_model(cfg, data, splits, args.out, resume=args.resume, progress=not args.no_progress)
    print(
        f"best epoch {result.best_epoch}: {cfg.select_metric} = {result.best_metric:.4f}; "
        f"checkpoints and history.csv in {args.out}"
    )
    return 0


def _threshold(text: str):
    if text == "val":
        return text
    try:
        return float(text)
    except ValueError:
        raise CliError(f"--threshold must be a number in [0, 1] or 'val', got {text!r}") from None


def cmd_evaluate(args) -> int:
    from pathlib import Path

    from .engine.checkpoint import load_run_model
    from .engine.evaluate import evaluate_model, format_metrics, write_evaluation

    load_run_model(Path(args.run), "best")  # fail on a bad run before the data is loaded
    threshold = _threshold(args.threshold)
    data = _load_data(args.data, to_score=True)
    ev = evaluate_model(
        args.run, data, split=args.split, threshold=threshold, limit_per_class=args.limit_per_class, device=args.device
    )
    out = write_evaluation(ev, args.out or Path(args.run) / args.split)
    print(format_metrics(ev.metrics))
    print(f"wrote predictions.csv, logits.npy and metrics.json to {out}")
    return 0


PREDICT_COLUMNS = ("path", "p_fake", "label", "error")


def _write_predictions(rows, fh, fmt: str) -> tuple[int, int]:
    """Stream prediction rows to a text file as JSON lines or CSV; (rows written, failed files)."""
    import csv

    writer = csv.DictWriter(fh, PREDICT_COLUMNS, restval="") if fmt == "csv" else None
    if writer:
        writer.writeheader()
    n = failed = 0
    for row in rows:
        n, failed = n + 1, failed + ("error" in row)
        if writer:
            writer.writerow(row)
        else:
            fh.write(json.dumps(row) + "\n")
        fh.flush()
    return n, failed


def cmd_predict(args) -> int:
    import io

    from .atomic import atomic_write
    from .engine.predict import predict_files

    rows = predict_files(args.run, args.paths, device=args.device, threshold=args.threshold)
    if not args.output:
        n, failed = _write_predictions(rows, sys.stdout, args.format)
    else:
        counts = []

        def write(binary):  # the output file appears only when complete (atomic_write)
            text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
            counts.extend(_write_predictions(rows, text, args.format))
            text.detach()  # leave the binary file to atomic_write, which syncs and renames it

        atomic_write(args.output, write)
        n, failed = counts
        print(f"wrote {n:,} rows to {args.output}", file=sys.stderr)
    if failed:
        print(f"cifake predict: {failed} of {n} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def cmd_robustness(args) -> int:
    from pathlib import Path

    import numpy as np

    from .data.splits import load_manifest, subset_per_class
    from .engine.checkpoint import load_run_model
    from .engine.evaluate import rows_to_score
    from .study.perturb import format_robustness, robustness_table

    _, ckpt = load_run_model(Path(args.run), "best")  # fail on a bad run before the data is loaded
    data = _load_data(args.data, to_score=True)
    if ckpt["data"]["fingerprint"] == data.fingerprint:
        splits = load_manifest(Path(args.run) / "splits.json", data)
        idx, val, where = splits.test, splits.val, splits.test_source
    else:  # data the run was not trained on: its test images (a plain folder: all), no validation threshold
        idx, val, where = rows_to_score(data, "test", None), None, f"test images of {data.source}"
    if args.limit_per_class:
        idx = subset_per_class(data, idx, args.limit_per_class, np.random.default_rng(0))
    frame = robustness_table({Path(args.run).name: args.run}, data, idx, val, device=args.device)
    at_val = (
        f"@val = threshold chosen on clean validation ({frame['threshold_val'].iloc[0]:.3f})"
        if val is not None
        else "@val columns need the run's own validation images, which this data does not hold: left empty"
    )
    print(f"robustness of {args.run} on {len(idx):,} images ({where}); {at_val}")
    print(format_robustness(frame))
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifake",
        description="Tell real photographs from AI-generated images on CIFAKE (Bird & Lotfi).",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"cifake {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        _add_audit,
        _add_synth,
        _add_download,
        _add_models,
        _add_recipes,
        _add_train,
        _add_evaluate,
        _add_predict,
        _add_robustness,
    ):
        add(sub)
    return parser


def _add_audit(sub) -> None:
    p = sub.add_parser(
        "audit",
        help="check a dataset: counts, sizes, conversions, corrupt files, duplicates",
        description=(
            "Load a CIFAKE-layout folder or zip (decoding once, then cached) and report counts per "
            "split and class, image sizes and modes as found, conversions, corrupt and ignored "
            "files, mean RGB per class and exact duplicates by content hash (within splits and "
            "test-in-train leaks). Exit code 0 when the data is usable."
        ),
        epilog=EPILOG,
    )
    p.add_argument("data", help="folder (<root>/train/{REAL,FAKE}/...) or the Kaggle zip")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON (stable keys, see README)")
    p.add_argument("--strict", action="store_true", help="fail on corrupt image files instead of skipping them")
    p.add_argument("--image-size", type=_positive_int, default=32, help="decode size in pixels (default 32)")
    p.set_defaults(func=cmd_audit)


def _add_synth(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="write a small SYNTHETIC dataset in the CIFAKE layout (tests, demos)",
        description=(
            "Write train/ (and test/) with REAL and FAKE JPEGs whose FAKE images carry an "
            "upsampling artifact a small CNN learns quickly. The folder is marked synthetic and "
            "every later stage says so. It is not CIFAKE."
        ),
    )
    p.add_argument("out", help="folder to create")
    p.add_argument("--per-class", type=_positive_int, default=200, help="training images per class (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-test", action="store_true", help="write train/ only (a test part is then carved)")
    p.set_defaults(func=cmd_synth)


def _add_download(sub) -> None:
    p = sub.add_parser(
        "download",
        help="download CIFAKE from Kaggle (needs network and Kaggle credentials)",
        description=(
            "Fetch the Kaggle dataset birdy654/cifake-real-and-ai-generated-synthetic-images with "
            "kagglehub into a temporary folder and move it to DEST only when complete. Offline, it "
            "stops within seconds and says how to get the data by hand."
        ),
    )
    p.add_argument("dest", help="new or empty folder to put the dataset in")
    p.add_argument("--timeout", type=_positive_float, default=5.0, help="seconds to wait for Kaggle (default 5)")
    p.set_defaults(func=cmd_download)


def _add_models(sub) -> None:
    p = sub.add_parser(
        "models",
        help="list the models, or show one's layer table",
        description="List registered models with parameter counts; name one for its layer table.",
    )
    p.add_argument("name", nargs="?", help="a model name (shows its layers)")
    p.add_argument("--layers", action="store_true", help="show the layer table of every model")
    p.add_argument("--image-size", type=_positive_int, help="input size for the output shapes")
    p.set_defaults(func=cmd_models)


# option types of TrainConfig fields whose range the annotation does not tell
_FIELD_TYPES = {
    "seed": int,
    **dict.fromkeys(("weight_decay", "warmup_epochs", "label_smoothing", "ema_decay"), _non_negative_float),
}


def _add_config_option(p, f) -> None:
    """One `cifake train` option from a TrainConfig field (its name, help and choices)."""
    flag = "--" + f.name.replace("_", "-")
    meta = f.metadata
    if isinstance(f.default, bool):
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=meta["help"])
    elif meta["choices"]:
        p.add_argument(flag, choices=meta["choices"], required=f.name == "model", help=meta["help"])
    elif f.name in _FIELD_TYPES:
        p.add_argument(flag, type=_FIELD_TYPES[f.name], help=meta["help"])
    elif "int" in str(f.type):
        p.add_argument(flag, type=_positive_int, help=meta["help"])
    elif "float" in str(f.type):
        p.add_argument(flag, type=_positive_float, help=meta["help"])
    else:
        p.add_argument(flag, help=meta["help"])


def _add_recipes(sub) -> None:
    from .engine.registry import MODELS

    p = sub.add_parser(
        "recipes",
        help="show the named training recipes (paper, improved) and their settings per model",
        description="Show the settings each named recipe gives each model: `cifake train --recipe NAME` "
        "starts from them, and any option given explicitly overrides one. The paper recipe is the "
        "paper's settings and nothing else; the improved one was chosen on validation accuracy "
        "(benchmarks/ABLATION.md).",
        epilog=EPILOG,
    )
    p.add_argument("--model", choices=list(MODELS), help="only this model")
    p.set_defaults(func=cmd_recipes)


def _add_train(sub) -> None:
    from .engine.config import cli_fields
    from .study.profiles import PROFILES

    p = sub.add_parser(
        "train",
        help="train a model, printing one table row per epoch",
        description=(
            "Train a model on the train part of the splits, validating each epoch. Writes RUN_DIR/"
            "history.csv, last.pt (every epoch), best.pt (best validation metric), config.json, "
            "splits.json. Defaults are the paper's recipe (Adam, lr 1e-3, cross-entropy, 10 epochs); "
            "--recipe improved starts from this project's improved recipe instead (`cifake recipes` "
            "lists both), and any option given explicitly overrides the recipe."
        ),
        epilog=EPILOG,
    )
    p.add_argument("--data", help="CIFAKE folder or zip (default $CIFAKE_DATA)")
    p.add_argument("--out", required=True, help="run folder for checkpoints and history")
    p.add_argument("--profile", choices=["auto", *PROFILES], help="take defaults from a profile (smoke, cpu, paper)")
    for f in cli_fields():
        _add_config_option(p, f)
    splits = p.add_argument_group("splits (recorded in RUN_DIR/splits.json)")
    splits.add_argument("--val-fraction", type=_fraction, default=0.1, help="validation share of train (default 0.1)")
    splits.add_argument("--split-seed", type=int, default=0, help="seed of the split (default 0)")
    splits.add_argument("--dedupe-train", action="store_true", help="drop exact duplicates from training")
    splits.add_argument("--splits", help="use this split manifest (splits.json) instead of making one")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs)")
    p.set_defaults(func=cmd_train)


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a run's best.pt on labelled data: predictions.csv + metrics.json",
        description="Score RUN_DIR/best.pt on labelled images and write predictions.csv, logits.npy and "
        "metrics.json (with bootstrap 95% intervals), then print the table. On the data the run was "
        "trained on, --split picks a part of the run's split manifest (test or val). On any other data "
        "(the official test split in another copy of CIFAKE, a root with only test/, another "
        "generator's images, or a plain folder of REAL/ and FAKE/ images of any size and format) no "
        "manifest is needed: --split test (default) scores its test/ images (a plain folder: all of "
        "them) and --split train its train/ images. metrics.json counts the scored images whose bytes "
        "the run saw in training or validation (leaked_images_removed) and, when there are any, gives "
        "the metrics without them (leak_free); on the run's own data the same for test images with a "
        "near-copy among them (near_duplicates_removed, near_duplicate_free). Every evaluation of held-out "
        "data is logged in RUN_DIR/test_reads.jsonl.",
        epilog=EPILOG,
    )
    p.add_argument("--run", required=True, help="run folder written by cifake train")
    p.add_argument(
        "--data", help="labelled data to score: CIFAKE layout, test/ only, or REAL/ + FAKE/ (default $CIFAKE_DATA)"
    )
    p.add_argument(
        "--split",
        choices=["test", "val", "train"],
        default="test",
        help="test (default); val: the run's validation part (its own data only); train: another source's train/",
    )
    p.add_argument("--limit-per-class", type=_positive_int, help="score a stratified subset")
    p.add_argument(
        "--threshold", default="0.5", help="decision threshold on p_fake, or 'val' (Youden's J on validation)"
    )
    p.add_argument("--out", help="output folder (default RUN_DIR/SPLIT)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_evaluate)


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="p_fake for image files or folders, one JSON line (or CSV row) each",
        description="Score image files with a trained run. Folders are searched recursively for "
        ".jpg .jpeg .png .webp .gif .bmp .tif .tiff (any letter case); files given by name are read "
        "whatever their suffix. Each image is decoded by content, converted to RGB (transparency on white) "
        "and brought to 32x32 as CIFAKE's training images were: an antialiased bicubic downscale, after a "
        "box pre-reduction for large photographs (never a nearest-pixel pick); then the run's own "
        "preprocessing. A file that cannot be read gets an error instead of a score, and the exit code "
        "is 1 if any failed. More than 256 files show a progress bar on stderr.",
        epilog=EPILOG,
    )
    p.add_argument("--run", required=True, help="run folder with best.pt")
    p.add_argument("paths", nargs="+", help="image files or folders")
    p.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        default="jsonl",
        help="jsonl: one {path, p_fake, label} object per line (default); csv: columns path, p_fake, label, error",
    )
    p.add_argument("--output", metavar="FILE", help="write the rows to FILE (atomically) instead of stdout")
    p.add_argument("--threshold", type=float, default=0.5, help="p_fake at or above this is FAKE (default 0.5)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_predict)


def _add_robustness(sub) -> None:
    p = sub.add_parser(
        "robustness",
        help="accuracy, AUC and FAKE recall under JPEG, blur, noise, down-up and flip",
        description="Score a run's best.pt on test images under test-time perturbations of the 32x32 "
        "images (JPEG quality 90/75/50/30, Gaussian blur sigma 0.5/1.0, Gaussian noise, "
        "downscale-upscale, horizontal flip), at 0.5 and at the threshold chosen on validation. On the "
        "run's own data it scores the run's test part; on other labelled data (CIFAKE layout, test/ "
        "only, or REAL/ + FAKE/) its test images, and the @val columns stay empty.",
        epilog=EPILOG,
    )
    p.add_argument("--run", required=True, help="run folder written by cifake train")
    p.add_argument("--data", help="labelled data: the run's own, or any other (default $CIFAKE_DATA)")
    p.add_argument("--limit-per-class", type=_positive_int, help="score a stratified subset of the test part")
    p.add_argument("--csv", help="also write the table as CSV")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_robustness)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data.sources import DataError
    from .engine.errors import CheckpointError, WeightsUnavailableError

    try:
        return int(args.func(args) or 0)
    except (CliError, DataError, CheckpointError, WeightsUnavailableError, FileNotFoundError, ValueError) as exc:
        print(f"cifake {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
