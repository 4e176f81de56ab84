"""Dataset statistics for exploration: colour histograms, mean log-amplitude spectra, samples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.dataset import CifakeData
from ..data.labels import CIFAR10_CATEGORIES, CLASS_NAMES, category_name


def counts_table(data: CifakeData) -> pd.DataFrame:
    """Images per split and class, with totals."""
    rows = []
    for split, c in data.counts().items():
        rows.append({"split": split, "REAL": c["REAL"], "FAKE": c["FAKE"], "total": c["REAL"] + c["FAKE"]})
    frame = pd.DataFrame(rows).set_index("split")
    frame.loc["all"] = frame.sum()
    return frame


def category_table(data: CifakeData) -> pd.DataFrame:
    """Images per CIFAR-10 category and class."""
    frame = pd.crosstab(
        pd.Series([category_name(c) for c in data.categories], name="category"),
        pd.Series([CLASS_NAMES[int(v)] for v in data.labels], name="class"),
    )
    order = [c for c in list(CIFAR10_CATEGORIES) + ["unknown"] if c in frame.index]
    return frame.loc[order, [c for c in ("REAL", "FAKE") if c in frame.columns]]


def colour_stats(data: CifakeData, idx: np.ndarray | None = None) -> pd.DataFrame:
    """Mean and standard deviation of R, G, B (0-255) per class."""
    idx = np.arange(len(data)) if idx is None else idx
    rows = []
    for cls, name in sorted(CLASS_NAMES.items()):
        sel = idx[data.labels[idx] == cls]
        px = data.images[sel].astype(np.float32)
        row = {"class": name, "n": len(sel)}
        for ch, cname in enumerate("RGB"):
            row[f"{cname} mean"] = float(px[:, ch].mean())
            row[f"{cname} std"] = float(px[:, ch].std())
        rows.append(row)
    return pd.DataFrame(rows).set_index("class").round(2)


def colour_histograms(data: CifakeData, idx: np.ndarray | None = None, bins: int = 64) -> dict:
    """{class: {channel: density over `bins` equal bins of 0..255}}, plus the bin edges."""
    idx = np.arange(len(data)) if idx is None else idx
    edges = np.linspace(0, 256, bins + 1)
    out: dict = {"edges": edges}
    for cls, name in sorted(CLASS_NAMES.items()):
        sel = idx[data.labels[idx] == cls]
        out[name] = {
            c: np.histogram(data.images[sel, ch].ravel(), bins=edges, density=True)[0] for ch, c in enumerate("RGB")
        }
    return out


def mean_log_spectrum(images: np.ndarray) -> np.ndarray:
    """Mean log-amplitude 2-D spectrum (DC at the centre) of the grey-level images."""
    grey = images.astype(np.float32).mean(axis=1)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    total = np.zeros(grey.shape[1:], dtype=np.float64)
    for chunk in np.array_split(grey, max(1, len(grey) // 5000)):
        total += np.log(np.abs(np.fft.fft2(chunk)) + 1e-6).sum(axis=0)
    return np.fft.fftshift(total / len(grey))


def class_spectra(data: CifakeData, idx: np.ndarray | None = None, limit: int = 20000, seed: int = 0) -> dict:
    """{"REAL": spectrum, "FAKE": spectrum} from up to `limit` images per class."""
    idx = np.arange(len(data)) if idx is None else idx
    rng = np.random.default_rng(seed)
    out = {}
    for cls, name in sorted(CLASS_NAMES.items()):
        sel = idx[data.labels[idx] == cls]
        if len(sel) > limit:
            sel = np.sort(rng.choice(sel, limit, replace=False))
        out[name] = mean_log_spectrum(data.images[sel])
    return out


def sample_indices(data: CifakeData, per_cell: int = 2, seed: int = 0, idx: np.ndarray | None = None) -> dict:
    """{(category, class): [row indices]} with up to `per_cell` images each, seeded."""
    idx = np.arange(len(data)) if idx is None else idx
    rng = np.random.default_rng(seed)
    out = {}
    for c in sorted(set(data.categories[idx].tolist())):
        for cls, name in sorted(CLASS_NAMES.items()):
            sel = idx[(data.categories[idx] == c) & (data.labels[idx] == cls)]
            out[(category_name(c), name)] = (
                rng.choice(sel, min(per_cell, len(sel)), replace=False).tolist() if len(sel) else []
            )
    return out


def normalization_table(raw: np.ndarray, normalized) -> pd.DataFrame:
    """Per-channel min / mean / std / max of a batch before (0-1 scale) and after normalization."""
    import torch

    before = torch.as_tensor(raw).float() / 255
    after = torch.as_tensor(normalized).float()
    rows = []
    for stage, t in (("before (0-1)", before), ("after ImageNet normalization", after)):
        for ch, c in enumerate("RGB"):
            x = t[:, ch]
            rows.append(
                {
                    "stage": stage,
                    "channel": c,
                    "min": float(x.min()),
                    "mean": float(x.mean()),
                    "std": float(x.std()),
                    "max": float(x.max()),
                }
            )
    return pd.DataFrame(rows).set_index(["stage", "channel"]).round(3)


def train_rows(data: CifakeData) -> np.ndarray:
    """Rows of the source's train split: exploration statistics never touch a test split."""
    return np.flatnonzero(data.splits == "train")


def colour_reading(stats: pd.DataFrame) -> list[str]:
    """What the colour statistics show, in sentences built from the table beside them."""
    real, fake = stats.loc["REAL"], stats.loc["FAKE"]
    means = {c: fake[f"{c} mean"] - real[f"{c} mean"] for c in "RGB"}
    darker = "darker" if sum(means.values()) < 0 else "brighter"
    blue_yellow = lambda r: (r["R mean"] + r["G mean"]) / 2 - r["B mean"]  # noqa: E731 (a yellow-minus-blue index)
    shift = blue_yellow(fake) - blue_yellow(real)
    return [
        f"On the training images, FAKE is {darker} than REAL on average: mean RGB ({fake['R mean']:.1f}, "
        f"{fake['G mean']:.1f}, {fake['B mean']:.1f}) against ({real['R mean']:.1f}, {real['G mean']:.1f}, "
        f"{real['B mean']:.1f}), differences of {means['R']:+.1f}, {means['G']:+.1f} and {means['B']:+.1f} levels.",
        f"The yellow-minus-blue index ((R + G) / 2 - B) is {blue_yellow(fake):.1f} for FAKE and "
        f"{blue_yellow(real):.1f} for REAL ({shift:+.1f}): FAKE is "
        f"{'more yellow' if shift > 0 else 'more blue'} than REAL by that measure.",
    ]


def spectrum_reading(spectra: dict) -> list[str]:
    """Where the FAKE and REAL mean log-amplitude spectra differ, by radial frequency band."""
    diff = spectra["FAKE"] - spectra["REAL"]
    h, w = diff.shape
    yy, xx = np.indices((h, w))
    r = np.hypot(yy - h // 2, xx - w // 2) / (min(h, w) / 2)
    bands = {
        "low (inner third)": r < 1 / 3,
        "middle": (r >= 1 / 3) & (r < 2 / 3),
        "high (outer band and corners)": r >= 2 / 3,
    }
    mean = {k: float(diff[m].mean()) for k, m in bands.items()}
    strongest = max(mean, key=lambda k: abs(mean[k]))
    parts = ", ".join(f"{k} {v:+.3f}" for k, v in mean.items())
    return [
        f"Mean log-amplitude of FAKE minus REAL by frequency band: {parts}; the largest difference is in the "
        f"{strongest} frequencies."
    ]
