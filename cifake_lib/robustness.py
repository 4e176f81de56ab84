"""Robustness: trained models on perturbed test images (JPEG, blur, noise, down-up, flip).

Scores at the 0.5 threshold and at the threshold chosen on the clean validation split, so that
a perturbation that only shifts the scores is told apart from one that destroys the ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import CifakeData
from .evaluate import predict_images
from .metrics import choose_threshold
from .perturb import PERTURBATIONS
from .train import DistInfo, load_run_model, resolve_device


def _scores(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    pred = (p >= t).astype(int)
    fake = y == 1
    return {"accuracy": float((pred == y).mean()), "fake_recall": float(pred[fake].mean()) if fake.any() else float("nan")}


def robustness_table(runs: dict, data: CifakeData, idx: np.ndarray, val_idx: np.ndarray, device: str = "auto",
                     perturbations=PERTURBATIONS, progress: bool = True) -> pd.DataFrame:
    """One row per (model, perturbation, strength): AUC, accuracy and FAKE recall at 0.5 and at
    the validation threshold. ``runs`` maps a display name to a run folder."""
    dev = resolve_device(device, DistInfo())
    y = data.labels[idx]
    clean = data.images[idx]
    perturbed = {}
    rows = []
    for name, run in runs.items():
        model, ckpt = load_run_model(run, "best", dev)
        cfg = TrainConfig.from_dict(ckpt["config"])
        t_val = choose_threshold(data.labels[val_idx], predict_images(model, data.images[val_idx], cfg, dev,
                                                                      cfg.eval_batch_size, progress=False))
        for kind, strength, fn in tqdm(perturbations, desc=f"robustness {name}", disable=not progress, leave=False):
            key = (kind, strength)
            if key not in perturbed:
                perturbed[key] = fn(clean)
            p = predict_images(model, perturbed[key], cfg, dev, cfg.eval_batch_size, progress=False)
            at_half, at_val = _scores(y, p, 0.5), _scores(y, p, t_val)
            rows.append({
                "model": name, "perturbation": kind, "strength": strength,
                "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan"),
                "accuracy@0.5": at_half["accuracy"], "fake_recall@0.5": at_half["fake_recall"],
                "threshold_val": t_val, "accuracy@val": at_val["accuracy"], "fake_recall@val": at_val["fake_recall"],
                "mean_p_fake": float(p.mean()),
            })
    frame = pd.DataFrame(rows)
    clean_acc = frame[frame["perturbation"] == "clean"].set_index("model")["accuracy@0.5"]
    frame["accuracy_drop@0.5"] = frame["model"].map(clean_acc) - frame["accuracy@0.5"]
    return frame


def format_robustness(frame: pd.DataFrame) -> str:
    cols = ["model", "perturbation", "strength", "auc", "accuracy@0.5", "fake_recall@0.5", "accuracy@val", "fake_recall@val"]
    return frame[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}")
