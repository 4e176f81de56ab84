"""Evaluate a trained run on a split: an :class:`Evaluation` (metrics, predictions, logits),
written as predictions.csv, logits.npy and metrics.json (stable interfaces).

``predictions.csv`` columns: ``path``, ``label`` (1 = FAKE), ``category``, ``p_fake``, ``pred``.
``metrics.json`` top-level keys: ``accuracy``, ``precision``, ``recall``, ``f1``, ``auc``,
``threshold``, ``n``, ``confusion`` (``tp``, ``tn``, ``fp``, ``fn``), plus ``average_precision``,
``tpr_at_fpr`` (``"0.01"``, ``"0.001"``), ``ci95`` (bootstrap),
``per_category``, ``leak_free`` (when test images duplicate training images), ``near_duplicate_free``
(without test images that have a near-copy in training or validation: data/neardup.py), ``split``,
``test_source``, ``synthetic`` and ``provenance``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write, write_json
from ..data.dataset import CifakeData
from ..data.labels import CLASS_NAMES, category_name
from ..data.neardup import dataset_hashes, near_copies
from ..data.splits import Splits, load_manifest, subset_per_class
from ..provenance import provenance
from .checkpoint import load_run_model, run_config
from .config import TrainConfig
from .inference import p_fake, predict_array
from .metrics import METRICS, binary_metrics, bootstrap_ci, choose_threshold, proportion_ci, ranking_metrics
from .runtime import resolve_device

PREDICTION_COLUMNS = ["path", "label", "category", "p_fake", "pred"]
SEEN_HASHES = "seen_hashes.npy"  # in a run folder: sha256 of every training and validation image
TEST_READS = "test_reads.jsonl"  # in a run folder: one line per evaluation read of held-out data


def per_category_accuracy(labels: np.ndarray, categories: np.ndarray, pred: np.ndarray) -> dict:
    """{category: {"n", "accuracy", "accuracy_ci95", "REAL_accuracy", "FAKE_accuracy", ..._ci95}}
    for CIFAR-10 categories, with Wilson 95% intervals."""
    out = {}
    for c in sorted(set(categories.tolist())):
        m = categories == c
        right = int((pred[m] == labels[m]).sum())
        row = {"n": int(m.sum()), "accuracy": right / int(m.sum()), "accuracy_ci95": proportion_ci(right, int(m.sum()))}
        for cls, name in CLASS_NAMES.items():
            mc = m & (labels == cls)
            k = int((pred[mc] == cls).sum())
            row[f"{name}_accuracy"] = k / int(mc.sum()) if mc.any() else None
            row[f"{name}_accuracy_ci95"] = proportion_ci(k, int(mc.sum())) if mc.any() else None
        out[category_name(c)] = row
    return out


def metrics_report(labels, p_fake, categories=None, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0) -> dict:
    """Point metrics, bootstrap 95% intervals and (optionally) per-category accuracy."""
    labels = np.asarray(labels)
    p_fake = np.asarray(p_fake)
    rep = binary_metrics(labels, p_fake, threshold)
    rep.update(ranking_metrics(labels, p_fake))
    rep["ci95"] = bootstrap_ci(labels, p_fake, threshold, n_boot=n_boot, seed=seed)
    rep["confusion_fractions"] = {k: v / rep["n"] for k, v in rep["confusion"].items()}
    if categories is not None:
        rep["per_category"] = per_category_accuracy(labels, np.asarray(categories), (p_fake >= threshold).astype(int))
    return rep


@dataclass
class Evaluation:
    """One run scored on one set of images: values, not files (``write_evaluation`` writes them)."""

    metrics: dict  # what metrics.json holds
    predictions: pd.DataFrame  # PREDICTION_COLUMNS, one row per image
    logits: np.ndarray  # float32 N x 2, row i belongs to predictions row i


def evaluate_model(
    run_dir: str | os.PathLike,
    data: CifakeData,
    *,
    split: str = "test",
    threshold: float | str = 0.5,
    limit_per_class: int | None = None,
    splits: Splits | None = None,
    device: str = "auto",
    n_boot: int = 1000,
    progress: bool = True,
) -> Evaluation:
    """Score ``best.pt`` of a run on one split of ``data``.

    On the data the run was trained on, ``split`` is a part of the run's split manifest
    (``test`` or ``val``). On any other labelled data (another copy of CIFAKE with its official
    test/, another generator's images, a plain REAL/ FAKE/ folder) no manifest is needed:
    ``split`` names the source's own ``test`` or ``train`` images. Either way ``leak_free``
    counts the scored images whose bytes the run saw in training or validation. ``threshold``
    is a number, or ``"val"`` for the threshold maximising Youden's J on the run's validation split.
    """
    run_dir = Path(run_dir)
    if threshold != "val" and (not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1):
        raise ValueError(f"threshold must be a number in [0, 1] or 'val', got {threshold!r}")
    dev = resolve_device(device)
    model, ckpt = load_run_model(run_dir, "best", dev)
    cfg = run_config(ckpt)
    if data.image_size != ckpt.get("data_image_size", data.image_size):
        raise ValueError(f"the run was trained on {ckpt['data_image_size']}px data, this data is {data.image_size}px")
    own = ckpt["data"]["fingerprint"] == data.fingerprint
    if own:
        splits = splits if splits is not None else load_manifest(run_dir / "splits.json", data)
    elif threshold == "val":
        raise ValueError("--threshold val needs the run's validation images: pass the data the run was trained on")
    idx = rows_to_score(data, split, splits if own else None)
    if limit_per_class:
        idx = subset_per_class(data, idx, limit_per_class, np.random.default_rng(0))
    t0 = time.perf_counter()
    logits = predict_array(model, data.images[idx], cfg, dev, progress=progress, desc="evaluate")
    seconds = time.perf_counter() - t0
    rule = "fixed"
    if threshold == "val":
        val_logits = predict_array(model, data.images[splits.val], cfg, dev, progress=progress, desc="validation")
        threshold, rule = choose_threshold(data.labels[splits.val], p_fake(val_logits)), "Youden's J on validation"
    p = p_fake(logits)
    rep = metrics_report(data.labels[idx], p, data.categories[idx], float(threshold), n_boot=n_boot)
    rep.update(
        threshold_rule=rule,
        split=split,
        synthetic=bool(data.synthetic),
        foreign_data=not own,
        test_source=splits.settings.get("test_source") if own else f"{split} images of {data.source}",
        images_per_s=float(len(idx) / seconds) if seconds > 0 else None,
        data={
            "source": data.source,
            "fingerprint": data.fingerprint,
            "converted": data.report.converted,
            "unreadable": len(data.report.corrupt),
            "unreadable_first": sorted(data.report.corrupt)[:20],
        },
        **run_facts(run_dir, cfg, ckpt, dev),
    )
    rep.update(seen_image_reports(run_dir, data, idx, splits if own else None, split, p, float(threshold), n_boot))
    rep["provenance"] = {
        **provenance(dev),
        "run": str(run_dir),
        "data": data.provenance(),
        "checkpoint_provenance": ckpt.get("provenance"),
    }
    frame = pd.DataFrame(
        {
            "path": data.paths[idx],
            "label": data.labels[idx],
            "category": [category_name(c) for c in data.categories[idx]],
            "p_fake": p,
            "pred": (p >= threshold).astype(int),
        }
    )[PREDICTION_COLUMNS]
    return Evaluation(rep, frame, logits.astype(np.float32))


def rows_to_score(data: CifakeData, split: str, splits: Splits | None) -> np.ndarray:
    """Rows of ``split``: a part of the run's manifest (own data), or the source's own split."""
    if splits is not None:
        if split not in ("test", "val"):
            raise ValueError(f"on the run's own data, split must be 'test' or 'val', got {split!r}")
        return splits.part(split)
    if split == "val":
        raise ValueError("split 'val' needs the data the run was trained on; on other data use 'test' or 'train'")
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train' on data the run was not trained on, got {split!r}")
    idx = np.flatnonzero(data.splits == split)
    if not len(idx):
        raise ValueError(f"{data.source} has no {split}/ images (it has: {', '.join(data.counts())})")
    return idx


def seen_hashes(run_dir: Path, data: CifakeData, splits: Splits | None) -> np.ndarray:
    """Content hashes (sha256 hex) of every image the run trained or validated on."""
    path = run_dir / SEEN_HASHES
    if path.exists():
        return np.load(path).astype(str)
    if splits is not None:  # a run written before seen_hashes.npy existed, scored on its own data
        return data.hashes[np.concatenate([splits.train, splits.val])]
    return np.array([], dtype=str)


def run_facts(run_dir: Path, cfg: TrainConfig, ckpt: dict, scored_on=None) -> dict:
    """What the report needs to know about the run that made the predictions (and, with
    ``scored_on``, the device that scored them)."""
    manifest = run_dir / "splits.json"
    doc = json.loads(manifest.read_text()) if manifest.exists() else None
    config = run_dir / "config.json"
    amp = json.loads(config.read_text()).get("amp") if config.exists() else None
    device = str((ckpt.get("provenance") or {}).get("device", ""))
    cuda = "cpu" not in device and bool(device)
    tf32 = bool(cfg.tf32) and cuda  # training and its validation
    arithmetic = (
        "bf16 autocast" + (" with TF32 matmuls" if tf32 else " (CPU)" if not cuda else "")
        if amp == "torch.bfloat16"
        else "fp32" + (" (TF32 matmuls on CUDA)" if tf32 else "")
    )
    return {
        "model": cfg.model,
        "recipe": cfg.recipe,
        "epochs": int(cfg.epochs),
        "tta": bool(cfg.tta),
        "pretrained": bool(cfg.pretrained),
        "input_size": int(cfg.input_size),
        "train_images": doc["sizes"]["train"]["total"] if doc else None,
        "best_epoch": int(ckpt["epoch"]),
        "batch_size": int(cfg.batch_size),
        "val_fraction": doc["settings"].get("val_fraction") if doc else None,
        "arithmetic": arithmetic,
        # TF32 of the training run's validation, and of this scoring (both follow the run's config;
        # they differ only when a run trained on one kind of device is scored on another)
        "tf32": tf32,
        "tf32_scoring": bool(cfg.tf32) and scored_on is not None and scored_on.type == "cuda",
    }


def leak_report(seen: np.ndarray, labels: np.ndarray, p: np.ndarray, threshold: float, n_boot: int) -> dict:
    """How many scored images the run saw in training or validation, and the metrics without them
    (None when there are none to remove, or nothing would be left)."""
    keep = ~seen
    out = {"leak_free": None, "leaked_images_removed": int(seen.sum())}
    if seen.any() and keep.any():
        out["leak_free"] = metrics_report(labels[keep], p[keep], None, threshold, n_boot=n_boot)
    return out


def seen_image_reports(run_dir: Path, data: CifakeData, idx, splits, split: str, p, threshold: float, n_boot: int):
    """Scored images the run saw (same bytes) and, on held-out images, those with a near-copy
    among what it saw, each with the metrics without them; a held-out read is logged.
    ``splits`` is the run's manifest on its own data, None on other data."""
    seen = np.isin(data.hashes[idx], seen_hashes(run_dir, data, splits))
    out = leak_report(seen, data.labels[idx], p, threshold, n_boot)
    if split != "val":  # held-out images: near-copies of what the run saw, and a logged read
        own = splits is not None
        near = held_out_near_copies(data, idx, np.concatenate([splits.train, splits.val])) if own else None
        out.update(near_duplicate_report(near, data.labels[idx], p, threshold, n_boot))
        log_test_read(run_dir, data, split, len(idx), own)
    return out


_NEAR: dict[tuple, np.ndarray] = {}  # (data, scored rows, seen rows) -> mask: 05 scores many runs on one split


def held_out_near_copies(data: CifakeData, idx: np.ndarray, seen_rows: np.ndarray) -> np.ndarray:
    """Which of the scored rows have a near-copy among the seen rows (computed once per split)."""
    import hashlib

    key = (data.fingerprint, hashlib.sha1(idx.tobytes()).hexdigest(), hashlib.sha1(seen_rows.tobytes()).hexdigest())
    if key not in _NEAR:
        _NEAR[key] = near_copies(data.images, idx, seen_rows, hashes=dataset_hashes(data))
    return _NEAR[key]


def near_duplicate_report(near, labels: np.ndarray, p: np.ndarray, threshold: float, n_boot: int) -> dict:
    """How many scored images have a near-copy (data/neardup.py) among the run's training and
    validation images, and the metrics without them. ``near`` is None on other data, where the
    run's training pixels are not at hand: not checked."""
    if near is None:
        return {"near_duplicates_removed": None, "near_duplicate_free": None}
    keep = ~near
    out = {"near_duplicates_removed": int(near.sum()), "near_duplicate_free": None}
    if near.any() and keep.any():
        out["near_duplicate_free"] = metrics_report(labels[keep], p[keep], None, threshold, n_boot=n_boot)
    return out


def log_test_read(run_dir: Path, data: CifakeData, split: str, n: int, own: bool) -> None:
    """Append one line to the run's TEST_READS log: which held-out data ``evaluate_model`` scored,
    when, at which commit, so that "the test part was read once" can be checked afterwards
    (robustness and Grad-CAM, which look at test images for other purposes, are not logged)."""
    from ..provenance import git_commit, utc_now

    line = {
        "utc": utc_now(),
        "data": data.source,
        "fingerprint": data.fingerprint,
        "split": split,
        "own_data": own,
        "images": int(n),
        "git_commit": git_commit(),
    }
    try:
        with open(run_dir / TEST_READS, "a") as fh:
            fh.write(json.dumps(line) + "\n")
    except OSError as exc:  # a run folder one may read but not write: score anyway, and say so
        warnings.warn(f"could not log this read of {split} data in {run_dir / TEST_READS}: {exc}", stacklevel=2)


def test_reads(run_dir: str | os.PathLike) -> list[dict]:
    """Every evaluation read of held-out data logged for a run (oldest first)."""
    path = Path(run_dir) / TEST_READS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def write_evaluation(ev: Evaluation, out_dir: str | os.PathLike) -> Path:
    """predictions.csv, logits.npy (float32 N x 2) and metrics.json in ``out_dir``, each atomically."""
    out = Path(out_dir)
    atomic_write(out / "predictions.csv", ev.predictions.to_csv(index=False, float_format="%.6f"))
    atomic_write(out / "logits.npy", lambda fh: np.save(fh, ev.logits))
    write_json(out / "metrics.json", ev.metrics)
    return out


def format_metrics(rep: dict) -> str:
    """A short table of metrics with their 95% intervals."""
    lines = [
        f"{rep.get('model', '')} on {rep.get('split', '')} ({rep['n']:,} images, threshold {rep['threshold']:.3f})"
    ]
    if rep.get("synthetic"):
        lines.append("!! SYNTHETIC demo data, not CIFAKE !!")
    if rep.get("test_source"):
        lines.append(f"test part: {rep['test_source']}")
    lines.append(f"{'metric':<10}{'value':>9}   95% CI")
    for m in METRICS:
        lo, hi = rep["ci95"][m]
        lines.append(f"{m:<10}{rep[m]:>9.4f}   [{lo:.4f}, {hi:.4f}]")
    c = rep["confusion"]
    lines.append(f"confusion (FAKE positive): TP {c['tp']:,}  TN {c['tn']:,}  FP {c['fp']:,}  FN {c['fn']:,}")
    if rep.get("leak_free"):
        lf = rep["leak_free"]
        lines.append(f"leak-free subset ({lf['n']:,} images): accuracy {lf['accuracy']:.4f}, AUC {lf['auc']:.4f}")
    if rep.get("near_duplicate_free"):
        nd = rep["near_duplicate_free"]
        lines.append(
            f"without {rep['near_duplicates_removed']:,} near-copies of training images ({nd['n']:,} images): "
            f"accuracy {nd['accuracy']:.4f}, AUC {nd['auc']:.4f}"
        )
    return "\n".join(lines)
