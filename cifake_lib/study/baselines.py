"""Simple baselines that size the shortcut: how much of the REAL/FAKE signal do raw pixels, colour
statistics or a frequency spectrum alone carry? Scikit-learn models on hand-made features, fitted on
the networks' training images and scored on the same test images as the networks.

Public work on CIFAKE reports about 82-87% accuracy from spectrum features alone; the colour
means differ between the classes (REAL about (125, 123, 114), FAKE about (115, 113, 99) in RGB).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..engine.evaluate import metrics_report

HIST_BINS = 16
SPECTRUM_BINS = 16


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Every pixel value scaled to 0-1: 3 x 32 x 32 = 3,072 features."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def colour_features(images: np.ndarray) -> np.ndarray:
    """Per-channel mean and standard deviation and a 16-bin histogram per channel (54 features)."""
    x = images.reshape(len(images), 3, -1).astype(np.float32)
    n = len(images)
    # 16 equal bins of 0-255 per channel (the top 4 bits of each value), counted per image in one bincount
    bins = (images.reshape(n, 3, -1) >> 4).astype(np.int64) + HIST_BINS * np.arange(n * 3).reshape(n, 3, 1)
    hist = np.bincount(bins.ravel(), minlength=n * 3 * HIST_BINS).reshape(n, 3 * HIST_BINS) / x.shape[2]
    return np.concatenate([x.mean(axis=2) / 255, x.std(axis=2) / 255, hist], axis=1).astype(np.float32)


def spectrum_features(images: np.ndarray) -> np.ndarray:
    """The radially averaged log power spectrum of the grey-level image, in 16 radial bins."""
    grey = images.astype(np.float32).mean(axis=1)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey), axes=(1, 2))) ** 2
    h, w = grey.shape[1:]
    yy, xx = np.indices((h, w))
    radius = np.hypot(yy - h // 2, xx - w // 2)
    bins = np.minimum((radius / radius.max() * SPECTRUM_BINS).astype(int), SPECTRUM_BINS - 1).ravel()
    ring = np.eye(SPECTRUM_BINS, dtype=np.float32)[bins]  # pixel -> radial bin, one-hot
    sums = power.reshape(len(images), -1) @ ring
    return np.log1p(sums / ring.sum(axis=0)).astype(np.float32)


def colour_and_spectrum(images: np.ndarray) -> np.ndarray:
    return np.concatenate([colour_features(images), spectrum_features(images)], axis=1)


def _logistic():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.1))


def _boosting():
    return HistGradientBoostingClassifier(max_iter=200, random_state=0)


@dataclass(frozen=True)
class Baseline:
    name: str
    features: Callable[[np.ndarray], np.ndarray]
    model: Callable[[], object]


BASELINES = (
    Baseline("logistic regression on raw pixels", pixel_features, _logistic),
    Baseline("gradient boosting on colour statistics", colour_features, _boosting),
    Baseline("gradient boosting on the power spectrum", spectrum_features, _boosting),
    Baseline("gradient boosting on colour + spectrum", colour_and_spectrum, _boosting),
)


def fit_baselines(
    images: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    n_boot: int = 1000,
    baselines=BASELINES,
) -> dict:
    """{name: metrics (as evaluate_model's, with fit_seconds and train_images)} of each baseline,
    fitted on ``train_idx`` and scored on ``test_idx``."""
    out = {}
    for b in baselines:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = b.model().fit(b.features(images[train_idx]), labels[train_idx])
        p = model.predict_proba(b.features(images[test_idx]))[:, 1]
        rep = metrics_report(labels[test_idx], p, None, 0.5, n_boot=n_boot)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        rep.update(fit_seconds=time.perf_counter() - t0, train_images=int(len(train_idx)), converged=converged)
        out[b.name] = rep
    return out


def shortcut_sentence(baselines: dict, networks: list) -> str:
    """How much of the networks' accuracy above chance the simple features reach, from the numbers:
    ``baselines`` {name: results.Baseline}, ``networks`` [results.ScoredModel]."""
    best_net = max(s.scores.accuracy for s in networks)
    best = max(baselines.values(), key=lambda b: b.scores.accuracy)
    share = (best.scores.accuracy - 0.5) / (best_net - 0.5) if best_net > 0.5 else float("nan")
    return (
        f"Simple features carry much of the signal: the best baseline ({best.name}) reaches accuracy "
        f"{best.scores.accuracy:.2%} (AUC {best.scores.auc:.4f}) against {best_net:.2%} for the better network, "
        f"{share:.0%} of the network's margin over chance (50%)."
    )
