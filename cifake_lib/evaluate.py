"""Evaluate a trained run on a split: predictions.csv and metrics.json (stable interfaces).

``predictions.csv`` columns: ``path``, ``label`` (1 = FAKE), ``category``, ``p_fake``, ``pred``.
``metrics.json`` top-level keys: ``accuracy``, ``precision``, ``recall``, ``f1``, ``auc``,
``threshold``, ``n``, ``confusion`` (``tp``, ``tn``, ``fp``, ``fn``), plus ``ci95`` (bootstrap),
``per_category``, ``leak_free`` (when test images duplicate training images), ``split``,
``test_source``, ``synthetic`` and ``provenance``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import TrainConfig
from .data import CifakeData
from .labels import CLASS_NAMES, category_name
from .metrics import binary_metrics, bootstrap_ci, choose_threshold
from .provenance import provenance
from .splits import Splits, subset_per_class, load_manifest
from .train import DistInfo, load_run_model, make_runtime, predict_batches, resolve_device

PREDICTION_COLUMNS = ["path", "label", "category", "p_fake", "pred"]


def predict_images(model, images: np.ndarray, cfg: TrainConfig, device, batch_size: int = 512,
                   progress: bool = True) -> np.ndarray:
    """p_fake for a uint8 N x 3 x H x W array, preprocessed as the run's training data was."""
    rt = make_runtime(cfg, device, augment=False)
    if rt.prep.channels_last:
        model = model.to(memory_format=torch.channels_last)
    t = torch.from_numpy(np.ascontiguousarray(images))
    if device.type == "cuda":
        t = t.to(device)
    idx = torch.arange(len(t), device=t.device)
    p, _ = predict_batches(model, t, None, idx, rt, batch_size, progress=progress, desc="evaluate")
    return p.float().cpu().numpy()


def predict_rows(model, data: CifakeData, idx: np.ndarray, cfg: TrainConfig, device, batch_size: int = 512,
                 progress: bool = True) -> np.ndarray:
    """p_fake for rows ``idx`` of ``data`` (numpy, same order)."""
    return predict_images(model, data.images[np.asarray(idx, dtype=np.int64)], cfg, device, batch_size, progress)


def per_category_accuracy(labels: np.ndarray, categories: np.ndarray, pred: np.ndarray) -> dict:
    """{category: {"n", "accuracy", "REAL_accuracy", "FAKE_accuracy"}} for CIFAR-10 categories."""
    out = {}
    for c in sorted(set(categories.tolist())):
        m = categories == c
        row = {"n": int(m.sum()), "accuracy": float((pred[m] == labels[m]).mean())}
        for cls, name in CLASS_NAMES.items():
            mc = m & (labels == cls)
            row[f"{name}_accuracy"] = float((pred[mc] == cls).mean()) if mc.any() else None
        out[category_name(c)] = row
    return out


def metrics_report(labels, p_fake, categories=None, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0) -> dict:
    """Point metrics, bootstrap 95% intervals and (optionally) per-category accuracy."""
    labels = np.asarray(labels)
    p_fake = np.asarray(p_fake)
    rep = binary_metrics(labels, p_fake, threshold)
    rep["ci95"] = bootstrap_ci(labels, p_fake, threshold, n_boot=n_boot, seed=seed)
    rep["confusion_fractions"] = {k: v / rep["n"] for k, v in rep["confusion"].items()}
    if categories is not None:
        rep["per_category"] = per_category_accuracy(labels, np.asarray(categories), (p_fake >= threshold).astype(int))
    return rep


def evaluate_model(
    run_dir: str | os.PathLike,
    data: CifakeData,
    *,
    split: str = "test",
    out_dir: str | os.PathLike | None = None,
    threshold: float | str = 0.5,
    limit_per_class: int | None = None,
    splits: Splits | None = None,
    device: str = "auto",
    n_boot: int = 1000,
    progress: bool = True,
) -> dict:
    """Score ``best.pt`` of a run on one split; write predictions.csv and metrics.json.

    ``threshold`` is a number, or ``"val"`` to use the threshold maximising Youden's J on the
    run's validation split. Returns the metrics dict that was written.
    """
    run_dir = Path(run_dir)
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    dev = resolve_device(device, DistInfo())
    model, ckpt = load_run_model(run_dir, "best", dev)
    cfg = TrainConfig.from_dict(ckpt["config"])
    if data.image_size != ckpt.get("data_image_size", data.image_size):
        raise ValueError(f"the run was trained on {ckpt['data_image_size']}px data, this data is {data.image_size}px")
    splits = splits if splits is not None else load_manifest(run_dir / "splits.json", data)
    idx = splits.part(split)
    if limit_per_class:
        idx = subset_per_class(data, idx, limit_per_class, np.random.default_rng(0))
    t0 = time.perf_counter()
    p = predict_rows(model, data, idx, cfg, dev, cfg.eval_batch_size, progress)
    seconds = time.perf_counter() - t0
    chosen = "fixed"
    if threshold == "val":
        val_idx = splits.val
        p_val = predict_rows(model, data, val_idx, cfg, dev, cfg.eval_batch_size, progress)
        threshold = choose_threshold(data.labels[val_idx], p_val)
        chosen = "Youden's J on validation"
    elif not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1] or 'val', got {threshold!r}")
    labels, cats = data.labels[idx], data.categories[idx]
    pred = (p >= threshold).astype(int)
    rep = metrics_report(labels, p, cats, float(threshold), n_boot=n_boot)
    rep["threshold_rule"] = chosen
    rep["split"] = split
    rep["test_source"] = splits.settings.get("test_source")
    rep["synthetic"] = bool(data.synthetic)
    rep["model"] = cfg.model
    rep["pretrained"] = bool(cfg.pretrained)
    rep["input_size"] = int(cfg.input_size)
    run_manifest = run_dir / "splits.json"
    rep["train_images"] = (json.loads(run_manifest.read_text())["sizes"]["train"]["total"]
                           if run_manifest.exists() else None)
    rep["best_epoch"] = int(ckpt["epoch"])
    rep["images_per_s"] = float(len(idx) / seconds) if seconds > 0 else None
    rep["leak_free"] = None
    if split == "test":
        leak_free = set(splits.test_leak_free.tolist())
        keep = np.array([i in leak_free for i in idx])
        if not keep.all() and keep.any():
            rep["leak_free"] = metrics_report(labels[keep], p[keep], None, float(threshold), n_boot=n_boot)
        rep["leaked_images_removed"] = int((~keep).sum())
    rep["provenance"] = {**provenance(dev), "run": str(run_dir), "data": data.provenance(),
                         "checkpoint_provenance": ckpt.get("provenance")}
    out = Path(out_dir) if out_dir is not None else run_dir / split
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({
        "path": data.paths[idx],
        "label": labels,
        "category": [category_name(c) for c in cats],
        "p_fake": p,
        "pred": pred,
    })[PREDICTION_COLUMNS]
    frame.to_csv(out / "predictions.csv", index=False, float_format="%.6f")
    (out / "metrics.json").write_text(json.dumps(rep, indent=2, default=float))
    return rep


def format_metrics(rep: dict) -> str:
    """A short table of metrics with their 95% intervals."""
    lines = [f"{rep.get('model', '')} on {rep.get('split', '')} ({rep['n']:,} images, threshold {rep['threshold']:.3f})"]
    if rep.get("synthetic"):
        lines.append("!! SYNTHETIC demo data, not CIFAKE !!")
    if rep.get("test_source"):
        lines.append(f"test part: {rep['test_source']}")
    lines.append(f"{'metric':<10}{'value':>9}   95% CI")
    for m in ("accuracy", "precision", "recall", "f1", "auc"):
        lo, hi = rep["ci95"][m]
        lines.append(f"{m:<10}{rep[m]:>9.4f}   [{lo:.4f}, {hi:.4f}]")
    c = rep["confusion"]
    lines.append(f"confusion (FAKE positive): TP {c['tp']:,}  TN {c['tn']:,}  FP {c['fp']:,}  FN {c['fn']:,}")
    if rep.get("leak_free"):
        lf = rep["leak_free"]
        lines.append(f"leak-free subset ({lf['n']:,} images): accuracy {lf['accuracy']:.4f}, AUC {lf['auc']:.4f}")
    return "\n".join(lines)

