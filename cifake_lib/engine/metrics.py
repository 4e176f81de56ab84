"""Classification metrics with FAKE = 1 as the positive class, computed with scikit-learn.

Also: bootstrap confidence intervals, McNemar's exact test between two models, a threshold
chosen on validation, and calibration (expected calibration error, reliability bins).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

METRICS = ("accuracy", "precision", "recall", "f1", "auc")


def binary_metrics(y_true, p_fake, threshold: float = 0.5) -> dict:
    """accuracy, precision, recall, F1, AUC-ROC and the confusion counts (FAKE positive).

    A prediction is FAKE when ``p_fake >= threshold``. AUC is NaN when only one class is present.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(p_fake, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true and p_fake must be 1-D of equal length, got {y.shape} and {p.shape}")
    if len(y) == 0:
        raise ValueError("no predictions to score")
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = len(np.unique(y)) == 2
    return {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "threshold": float(threshold),
        "confusion": {"tp": int(tp), "tn": int(tn), "fp": int(fp), "fn": int(fn)},
    }


def bootstrap_ci(
    y_true, p_fake, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Percentile bootstrap intervals {metric: [low, high]} for the five metrics."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(p_fake, dtype=float)
    pred = (p >= threshold).astype(int)
    rng = np.random.default_rng(seed)
    n = len(y)
    stats = {m: np.empty(n_boot) for m in METRICS}
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        yb, pb, db = y[idx], pred[idx], p[idx]
        tp = int(((pb == 1) & (yb == 1)).sum())
        fp = int(((pb == 1) & (yb == 0)).sum())
        fn = int(((pb == 0) & (yb == 1)).sum())
        stats["accuracy"][b] = (pb == yb).mean()
        stats["precision"][b] = tp / (tp + fp) if tp + fp else 0.0
        stats["recall"][b] = tp / (tp + fn) if tp + fn else 0.0
        stats["f1"][b] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        stats["auc"][b] = roc_auc_score(yb, db) if 0 < yb.sum() < n else np.nan
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for m, v in stats.items():
        v = v[~np.isnan(v)]
        out[m] = [float(np.percentile(v, lo)), float(np.percentile(v, hi))] if len(v) else [float("nan")] * 2
    return out


FPR_POINTS = (0.01, 0.001)  # where forensics papers read the ROC curve


def ranking_metrics(y_true, p_fake) -> dict:
    """Average precision (FAKE positive) and the true-positive rate at 1% and 0.1% false-positive
    rate: the ROC curve read where a detector must rarely accuse a real photograph."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(p_fake, dtype=float)
    if len(np.unique(y)) < 2:
        return {"average_precision": float("nan"), "tpr_at_fpr": {str(f): float("nan") for f in FPR_POINTS}}
    fpr, tpr, _ = roc_curve(y, p)
    return {
        "average_precision": float(average_precision_score(y, p)),
        # the best TPR among operating points whose FPR does not exceed the target
        "tpr_at_fpr": {str(f): float(tpr[fpr <= f].max()) for f in FPR_POINTS},
    }


def proportion_ci(k: int, n: int, level: float = 0.95) -> list[float]:
    """Wilson score interval for k successes out of n (e.g. per-category accuracy)."""
    if n == 0:
        return [float("nan"), float("nan")]
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return [float(ci.low), float(ci.high)]


def paired_bootstrap_difference(
    y_true, p_a, p_b, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Accuracy and AUC of model A minus model B on the same images, with paired percentile
    bootstrap intervals (each draw resamples images, keeping both models' scores of an image)."""
    y = np.asarray(y_true).astype(int)
    pa, pb = np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    ok_a, ok_b = (pa >= threshold).astype(int) == y, (pb >= threshold).astype(int) == y
    rng = np.random.default_rng(seed)
    n = len(y)
    acc, auc = np.empty(n_boot), np.full(n_boot, np.nan)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        acc[b] = ok_a[idx].mean() - ok_b[idx].mean()
        if 0 < y[idx].sum() < n:
            auc[b] = roc_auc_score(y[idx], pa[idx]) - roc_auc_score(y[idx], pb[idx])
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    both = len(np.unique(y)) == 2
    auc_point = roc_auc_score(y, pa) - roc_auc_score(y, pb) if both else float("nan")
    auc = auc[~np.isnan(auc)]
    return {
        "accuracy": {
            "difference": float(ok_a.mean() - ok_b.mean()),
            "ci95": [float(np.percentile(acc, lo)), float(np.percentile(acc, hi))],
        },
        "auc": {
            "difference": float(auc_point),
            "ci95": [float(np.percentile(auc, lo)), float(np.percentile(auc, hi))] if len(auc) else [np.nan] * 2,
        },
        "n_boot": int(n_boot),
    }


def choose_threshold(y_true, p_fake) -> float:
    """The threshold maximising Youden's J (TPR - FPR) on the given (validation) predictions."""
    y = np.asarray(y_true).astype(int)
    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, np.asarray(p_fake, dtype=float))
    best = int(np.argmax(tpr - fpr))
    return float(min(max(thr[best], 0.0), 1.0))


def mcnemar_test(y_true, pred_a, pred_b) -> dict:
    """McNemar's exact test: do models A and B err on different images more than by chance?

    Counts the images only A gets right (``a_only``) and only B gets right (``b_only``); the
    p-value is the two-sided binomial test of ``a_only`` among the discordant pairs at 1/2.
    """
    y = np.asarray(y_true).astype(int)
    a_ok = np.asarray(pred_a).astype(int) == y
    b_ok = np.asarray(pred_b).astype(int) == y
    a_only = int((a_ok & ~b_ok).sum())
    b_only = int((~a_ok & b_ok).sum())
    discordant = a_only + b_only
    p = float(binomtest(a_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "n": int(len(y)),
        "both_correct": int((a_ok & b_ok).sum()),
        "a_only": a_only,
        "b_only": b_only,
        "both_wrong": int((~a_ok & ~b_ok).sum()),
        "p_value": p,
        "test": "McNemar exact (two-sided binomial on discordant pairs)",
    }


def reliability_bins(y_true, p_fake, n_bins: int = 15) -> list[dict]:
    """Equal-width bins of the predicted probability of the predicted class (confidence)."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(p_fake, dtype=float)
    pred = (p >= 0.5).astype(int)
    conf = np.where(pred == 1, p, 1 - p)
    correct = pred == y
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    rows = []
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        m = (conf >= lo) & ((conf < hi) if i < n_bins - 1 else (conf <= hi))
        rows.append(
            {
                "low": float(lo),
                "high": float(hi),
                "n": int(m.sum()),
                "confidence": float(conf[m].mean()) if m.any() else float("nan"),
                "accuracy": float(correct[m].mean()) if m.any() else float("nan"),
            }
        )
    return rows


def expected_calibration_error(y_true, p_fake, n_bins: int = 15) -> float:
    """ECE: the n-weighted mean |accuracy - confidence| over the reliability bins."""
    rows = reliability_bins(y_true, p_fake, n_bins)
    n = sum(r["n"] for r in rows)
    return float(sum(r["n"] * abs(r["accuracy"] - r["confidence"]) for r in rows if r["n"]) / n)


def logit_margin(logits) -> np.ndarray:
    """The FAKE-minus-REAL logit of N x 2 logits: the one number a 2-class softmax depends on."""
    z = np.asarray(logits, dtype=np.float64)
    return z[:, 1] - z[:, 0]


def apply_temperature(margin, temperature: float) -> np.ndarray:
    """p_fake after dividing the logit margin (``logit_margin``) by ``temperature``."""
    return expit(np.asarray(margin, dtype=np.float64) / temperature)


def fit_temperature(y_true, margin) -> float:
    """Temperature (0.05-20) minimising the negative log-likelihood of held-out logit margins.

    Fitted on float logits, not on rounded probabilities: a margin of 20 and one of 40 are
    different evidence, although both round to p_fake = 1.000000.
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(y_true).astype(int)
    z = np.asarray(margin, dtype=np.float64)
    sign = np.where(y == 1, 1.0, -1.0)

    def nll(log_t):
        # -log sigmoid(sign * z / T), computed stably for large margins
        return float(np.mean(np.logaddexp(0.0, -sign * z / np.exp(log_t))))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))
