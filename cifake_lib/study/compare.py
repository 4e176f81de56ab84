"""The paper's reported results, side-by-side tables, and a conclusion built from the numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..engine.metrics import METRICS
from .results import McNemar, RunFacts, ScoredModel, Scores

# Confusion counts reported by the paper on its 10,000-image test evaluation (FAKE positive).
PAPER_CONFUSION = {
    "resnet18": {"tp": 4703, "tn": 4955, "fp": 88, "fn": 254},
    "custom_cnn": {"tp": 4749, "tn": 4762, "fp": 281, "fn": 208},
}
DISPLAY_NAMES = {"resnet18": "ResNet-18", "custom_cnn": "Custom CNN", "resnet18_cifar": "ResNet-18 (32px stem)"}
SIGNIFICANCE = 0.05
PAPER_N = 10_000  # images behind the paper's confusion counts (4,957 FAKE, 5,043 REAL)


def display_name(model: str) -> str:
    """How a model (or a run name such as ``custom_cnn_seed1``) is named in tables and sentences."""
    return DISPLAY_NAMES.get(model, model)


# the paper's recipe per model: what a run must match for its numbers to count as a reproduction
PAPER_RECIPE = {
    "resnet18": {"pretrained": True, "input_size": 224},
    "custom_cnn": {"input_size": 224},
}
FULL_TRAIN_SPLIT = 75_000  # a run on fewer training images than this is a subset run


def recipe_differences(model: str, run: RunFacts) -> list[str]:
    """How a run differs from the paper's recipe (empty when it follows it)."""
    recipe = PAPER_RECIPE.get(model, {})
    out = []
    if recipe.get("pretrained") and run.pretrained is False:
        out.append("trained from scratch, not from ImageNet weights")
    if "input_size" in recipe and run.input_size not in (None, recipe["input_size"]):
        out.append(f"{run.input_size}px input instead of {recipe['input_size']}px")
    if run.train_images is not None and run.train_images < FULL_TRAIN_SPLIT:
        out.append(f"{run.train_images:,} training images instead of the full train split")
    return out


def recipe_unstated(run: RunFacts) -> list[str]:
    """This run's choices where the paper states nothing (batch size, validation split, precision)."""
    out = []
    if run.batch_size:
        out.append(f"batch size {run.batch_size}")
    if run.val_fraction:
        out.append(f"a {run.val_fraction:.0%} validation split carved from train")
    if run.arithmetic:
        out.append(run.arithmetic)
    return out


def metrics_from_confusion(c: dict) -> dict:
    """accuracy, precision, recall, F1 from confusion counts (AUC is not recoverable)."""
    tp, tn, fp, fn = c["tp"], c["tn"], c["fp"], c["fn"]
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    return {
        "n": tp + tn + fp + fn,
        "accuracy": (tp + tn) / (tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "auc": float("nan"),
        "confusion": dict(c),
    }


def paper_metrics(model: str) -> dict | None:
    c = PAPER_CONFUSION.get(model)
    return metrics_from_confusion(c) if c else None


RATES = {  # confusion counts as rates, comparable between evaluation sets of any size and balance
    "FAKE caught (TP / FAKE)": ("tp", "fn"),
    "FAKE missed (FN / FAKE)": ("fn", "tp"),
    "REAL passed (TN / REAL)": ("tn", "fp"),
    "REAL flagged (FP / REAL)": ("fp", "tn"),
}


def confusion_rates(c: dict) -> dict:
    return {name: c[a] / (c[a] + c[b]) if c[a] + c[b] else float("nan") for name, (a, b) in RATES.items()}


def comparison_table(models: list[ScoredModel], synthetic: bool = False) -> pd.DataFrame:
    """Rows: metrics and confusion rates; for each model, ours (with 95% CI) and, on CIFAKE, the
    paper's value. Rates, not counts: the paper's evaluation set (10,000 images, 4,957 FAKE and
    5,043 REAL, as its confusion counts imply) is not ours."""
    reports = {s.model: s.scores for s in models}
    papers = {m: None if synthetic else paper_metrics(m) for m in reports}
    rows = []
    for m in METRICS:
        row = {"metric": m}
        for model, rep in reports.items():
            lo, hi = rep.interval(m)
            row[f"{display_name(model)}: ours"] = f"{rep.value(m):.4f} [{lo:.4f}, {hi:.4f}]"
            if not synthetic:
                p = papers[model]
                row[f"{display_name(model)}: paper"] = "not reported" if p is None or np.isnan(p[m]) else f"{p[m]:.4f}"
        rows.append(row)
    for name in RATES:
        row = {"metric": name}
        for model, rep in reports.items():
            row[f"{display_name(model)}: ours"] = f"{confusion_rates(rep.confusion)[name]:.4f}"
            if not synthetic:
                p = papers[model]
                row[f"{display_name(model)}: paper"] = f"{confusion_rates(p['confusion'])[name]:.4f}" if p else "-"
        rows.append(row)
    row = {"metric": "images (FAKE / REAL)"}
    for model, rep in reports.items():
        row[f"{display_name(model)}: ours"] = f"{rep.n:,} ({rep.n_fake:,} / {rep.n_real:,})"
        if not synthetic:
            row[f"{display_name(model)}: paper"] = f"{PAPER_N:,} (4,957 / 5,043)" if papers[model] else "-"
    rows.append(row)
    return pd.DataFrame(rows).set_index("metric")


def paper_notes() -> list[str]:
    """What the paper's own numbers imply, computed from its confusion counts."""
    r, c = (paper_metrics(m) for m in ("resnet18", "custom_cnn"))
    fake = {m: PAPER_CONFUSION[m]["tp"] + PAPER_CONFUSION[m]["fn"] for m in PAPER_CONFUSION}
    return [
        f"The paper's confusion counts add up to {r['n']:,} images for both models, {fake['resnet18']:,} FAKE and "
        f"{r['n'] - fake['resnet18']:,} REAL: not CIFAKE's balanced 20,000-image test split. Its reported validation "
        f"accuracy equals the accuracy these counts give ({r['accuracy']:.2%} and {c['accuracy']:.2%}), so the "
        "evaluation set may be the validation set that also picked the checkpoint. Rates are compared here, "
        "not counts.",
        f"The paper's conclusion credits ResNet-18 with the better recall, but its own counts give the custom CNN the "
        f"higher recall ({c['recall']:.3f} against {r['recall']:.3f}); ResNet-18 is ahead on precision "
        f"({r['precision']:.3f} against {c['precision']:.3f}) and accuracy.",
        "The custom CNN here is this project's reading of the paper's description: the paper names 3x3 convolutions "
        "with ReLU and max-pooling followed by dense layers; the widths (32, 64, 128), the adaptive max-pool, the "
        "2,048-256-2 head and dropout 0.3 are this project's choices.",
    ]


def conclusion(models: list[ScoredModel], mcnemar: McNemar | None, synthetic: bool = False) -> list[str]:
    """Sentences derived from measured numbers: who wins on what, is it significant, vs the paper.

    On synthetic demo data only the measured numbers are stated: no winner, no verdict and no
    comparison with the paper (the numbers say nothing about CIFAKE).
    """
    if synthetic:
        return [
            "These numbers come from SYNTHETIC demo data, not CIFAKE: they show that the pipeline runs, "
            "not how well the models detect AI-generated images."
        ] + [
            f"{display_name(s.model)}: accuracy {s.scores.accuracy:.2%} (95% CI {s.scores.ci95['accuracy'][0]:.2%} "
            f"to {s.scores.ci95['accuracy'][1]:.2%}), AUC {s.scores.auc:.4f} on the demo's test split."
            for s in models
        ]
    out = _comparison_sentences(models, mcnemar) if len(models) == 2 else []
    return out + [line for s in models if (line := paper_sentence(s))]


def _comparison_sentences(models: list[ScoredModel], mcnemar: McNemar | None) -> list[str]:
    ra, rb = (s.scores for s in models)
    da, db = (display_name(s.model) for s in models)
    wins = {da: [], db: []}
    for m in METRICS:
        va, vb = ra.value(m), rb.value(m)
        if np.isnan(va) or np.isnan(vb) or va == vb:
            continue
        wins[da if va > vb else db].append(f"{m} ({max(va, vb):.4f} vs {min(va, vb):.4f})")
    out = [f"{who} scores higher on " + ", ".join(w) + "." for who, w in wins.items() if w]
    if mcnemar is not None:
        p = mcnemar.p_value
        better = da if mcnemar.a_only > mcnemar.b_only else db
        verdict = "significant" if p < SIGNIFICANCE else "not significant"
        out.append(
            f"On the images where the two models disagree, {da} alone is right on {mcnemar.a_only:,} and "
            f"{db} alone on {mcnemar.b_only:,}; McNemar's exact test gives p = {p:.3g}, so the accuracy "
            f"difference is {verdict} at the {SIGNIFICANCE:.0%} level"
            + (f" (in favour of {better})." if p < SIGNIFICANCE else ".")
        )
    return out


def paper_difference(rep: Scores, paper_accuracy: float, paper_n: int = PAPER_N) -> dict:
    """Our accuracy minus the paper's, with a 95% interval and a two-sided z-test that count both
    sampling errors: ours from our bootstrap interval, the paper's from its n = 10,000 images."""
    from scipy.stats import norm

    lo, hi = rep.interval("accuracy")
    se = float(np.hypot((hi - lo) / (2 * 1.959964), np.sqrt(paper_accuracy * (1 - paper_accuracy) / paper_n)))
    diff = rep.accuracy - paper_accuracy
    return {
        "difference": diff,
        "ci95": [diff - 1.959964 * se, diff + 1.959964 * se],
        # with no sampling error at all, a difference is certain (p = 0) and none is p = 1
        "p_value": float(2 * norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0),
    }


def paper_sentence(scored: ScoredModel) -> str | None:
    """How a run's accuracy compares with the paper's, allowing for both sampling errors."""
    model, rep = scored.model, scored.scores
    paper = paper_metrics(model)
    if paper is None:
        return None
    d = paper_difference(rep, paper["accuracy"])
    lo, hi = rep.interval("accuracy")
    dlo, dhi = d["ci95"]
    rel = "above" if dlo > 0 else "below" if dhi < 0 else "consistent with"
    differs = recipe_differences(model, scored.run)
    caveat = (
        f" This run departs from the paper's recipe ({'; '.join(differs)}), so the comparison says how this "
        "configuration does, not whether the paper reproduces."
        if differs
        else ""
    )
    unstated = recipe_unstated(scored.run)
    if unstated:
        caveat += " Choices the paper leaves open: " + "; ".join(unstated) + "."
    return (
        f"{display_name(model)}: accuracy {rep.accuracy:.2%} (95% CI {lo:.2%} to {hi:.2%}) is {rel} the paper's "
        f"{paper['accuracy']:.2%}: a difference of {d['difference'] * 100:+.2f} percentage points (95% CI "
        f"{dlo * 100:+.2f} to {dhi * 100:+.2f}, counting the paper's own sampling error on its {PAPER_N:,} images; "
        f"z-test p = {d['p_value']:.3g}).{caveat}"
    )
