"""Robustness: test-time perturbations of the stored uint8 images, and trained models scored
under each of them.

Each perturbation takes and returns a uint8 N x 3 x H x W batch of the same shape and is
deterministic given its arguments (noise takes a seed). ``PERTURBATIONS`` lists the study's grid
of kinds and strengths. ``robustness_table`` scores runs at the 0.5 threshold and at the
threshold chosen on the clean validation split, so that a perturbation that only shifts the
scores is told apart from one that destroys the ranking.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import roc_auc_score
from torchvision.transforms.functional import gaussian_blur as _tv_blur
from tqdm.auto import tqdm

from ..data.dataset import CifakeData
from ..engine.checkpoint import load_run_model, run_config
from ..engine.inference import p_fake, predict_array
from ..engine.metrics import choose_threshold
from ..engine.runtime import resolve_device


def _check(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 N x 3 x H x W batch, got {images.shape} {images.dtype}")
    return images


SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def jpeg(images: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Re-encode each image as a baseline JPEG at ``quality`` (1-100) and decode it again.

    The default 4:2:0 chroma subsampling is what CIFAKE's own files and most re-saves use."""
    images = _check(images)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1-100, got {quality}")
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"subsampling must be one of {', '.join(SUBSAMPLING)}, got {subsampling!r}")
    out = np.empty_like(images)
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img.transpose(1, 2, 0)).save(
            buf, format="JPEG", quality=int(quality), subsampling=SUBSAMPLING[subsampling]
        )
        out[i] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).transpose(2, 0, 1)
    return out


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 2*ceil(3 sigma)+1)."""
    images = _check(images)
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    k = 2 * int(np.ceil(3 * sigma)) + 1
    x = torch.from_numpy(images).float()
    y = _tv_blur(x, kernel_size=[k, k], sigma=[float(sigma), float(sigma)])
    return y.round().clamp(0, 255).to(torch.uint8).numpy()


def gaussian_noise(images: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """Add i.i.d. Gaussian noise of standard deviation ``std`` (pixel levels, 0-255), clipped."""
    images = _check(images)
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    rng = np.random.default_rng(seed)
    noisy = images.astype(np.float32) + rng.normal(0.0, std, images.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def down_up(images: np.ndarray, factor: int) -> np.ndarray:
    """Downscale by ``factor`` (area-averaging) and upscale back (bilinear): lost detail."""
    images = _check(images)
    if factor < 1 or images.shape[-1] % factor:
        raise ValueError(f"factor must divide the image size {images.shape[-1]}, got {factor}")
    if factor == 1:
        return images.copy()
    x = torch.from_numpy(images).float()
    small = F.avg_pool2d(x, factor)
    back = F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return back.round().clamp(0, 255).to(torch.uint8).numpy()


def hflip(images: np.ndarray) -> np.ndarray:
    """Mirror left-right (a CIFAKE image and its mirror are equally real or fake)."""
    return np.ascontiguousarray(_check(images)[..., ::-1])


def identity(images: np.ndarray) -> np.ndarray:
    return _check(images).copy()


# (kind, strength label, function): the grid scored by 07_robustness and `cifake robustness`
PERTURBATIONS: list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = [
    ("clean", "-", identity),
    *[("jpeg", f"q{q}", lambda x, q=q: jpeg(x, q)) for q in (90, 75, 50, 30)],
    *[("blur", f"sigma {s}", lambda x, s=s: gaussian_blur(x, s)) for s in (0.5, 1.0)],
    *[("noise", f"std {s}", lambda x, s=s: gaussian_noise(x, s)) for s in (4, 8)],
    ("down-up", "x2", lambda x: down_up(x, 2)),
    ("hflip", "-", hflip),
]


# ----------------------------------------------------------------------------- scoring


def _scores(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    if np.isnan(t):
        return {"accuracy": float("nan"), "fake_recall": float("nan")}
    pred = (p >= t).astype(int)
    fake = y == 1
    return {
        "accuracy": float((pred == y).mean()),
        "fake_recall": float(pred[fake].mean()) if fake.any() else float("nan"),
    }


def _p_fake(model, images: np.ndarray, cfg, dev) -> np.ndarray:
    return p_fake(predict_array(model, images, cfg, dev, progress=False))


def robustness_table(
    runs: dict,
    data: CifakeData,
    idx: np.ndarray,
    val_idx: np.ndarray | None,
    device: str = "auto",
    perturbations=PERTURBATIONS,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per (model, perturbation, strength): AUC, accuracy and FAKE recall at 0.5 and at
    the validation threshold. ``runs`` maps a display name to a run folder. Without validation
    rows (``val_idx=None``: data the runs were not trained on) the @val columns are NaN."""
    dev = resolve_device(device)
    y = data.labels[idx]
    clean = data.images[idx]
    perturbed = {}
    rows = []
    for name, run in runs.items():
        model, ckpt = load_run_model(run, "best", dev)
        cfg = run_config(ckpt)
        t_val = (
            choose_threshold(data.labels[val_idx], _p_fake(model, data.images[val_idx], cfg, dev))
            if val_idx is not None
            else float("nan")
        )
        for kind, strength, fn in tqdm(perturbations, desc=f"robustness {name}", disable=not progress, leave=False):
            key = (kind, strength)
            if key not in perturbed:
                perturbed[key] = fn(clean)
            p = _p_fake(model, perturbed[key], cfg, dev)
            at_half, at_val = _scores(y, p, 0.5), _scores(y, p, t_val)
            rows.append(
                {
                    "model": name,
                    "perturbation": kind,
                    "strength": strength,
                    "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan"),
                    "accuracy@0.5": at_half["accuracy"],
                    "fake_recall@0.5": at_half["fake_recall"],
                    "threshold_val": t_val,
                    "accuracy@val": at_val["accuracy"],
                    "fake_recall@val": at_val["fake_recall"],
                    "mean_p_fake": float(p.mean()),
                }
            )
    frame = pd.DataFrame(rows)
    clean_acc = frame[frame["perturbation"] == "clean"].set_index("model")["accuracy@0.5"]
    frame["accuracy_drop@0.5"] = frame["model"].map(clean_acc) - frame["accuracy@0.5"]
    return frame


def format_robustness(frame: pd.DataFrame) -> str:
    cols = [
        "model",
        "perturbation",
        "strength",
        "auc",
        "accuracy@0.5",
        "fake_recall@0.5",
        "accuracy@val",
        "fake_recall@val",
    ]
    return frame[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}")
