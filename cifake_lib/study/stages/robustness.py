"""07_robustness: both models (and their improved-recipe runs, when 03/04 trained them) on the test
part under JPEG, blur, noise, down-up scaling and a flip."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...data.splits import subset_per_class
from ..compare import display_name
from ..notebook import Study
from ..perturb import robustness_table
from .evaluation import MODELS_COMPARED


def robustness_rows(study: Study) -> tuple[np.ndarray, np.ndarray]:
    """(test rows, validation rows) to perturb: the test part and the validation split (for the
    threshold chosen on validation), each cut to the per-class evaluation limit when there is one."""
    data, splits = study.load_data(), study.load_splits()
    idx, val = splits.test, splits.val
    limit = study.eval_limit()
    if limit:
        rng = np.random.default_rng(0)
        idx = subset_per_class(data, idx, limit, rng)
        val = subset_per_class(data, val, limit, rng)
    return idx, val


def runs_to_test(study: Study, models=MODELS_COMPARED) -> dict:
    """{display name: run folder}: each model's main run and, when 03/04 trained it, its
    improved-recipe run."""
    runs = {display_name(m): study.layout.require_run(m) for m in models}
    for m in models:
        improved = study.layout.run_dir(m, tag="improved")
        if (improved / "best.pt").exists():
            runs[improved_name(m)] = improved
    return runs


def describe_rows(rows: tuple[np.ndarray, np.ndarray], runs: dict) -> str:
    return f"{len(rows[0]):,} test and {len(rows[1]):,} validation images; runs: {', '.join(runs)}"


def score_perturbations(study: Study, runs: dict, rows: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Every run on the test rows under every perturbation (JPEG, blur, noise, down-up scaling,
    flip); saved as OUT/evaluation/robustness.csv."""
    frame = robustness_table(runs, study.load_data(), *rows)
    study.layout.eval_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(study.layout.robustness_path, index=False)
    return frame


def perturbation_list() -> pd.DataFrame:
    """The perturbations and their strengths, as applied to the stored 32x32 images."""
    from ..perturb import PERTURBATIONS

    strengths: dict[str, list[str]] = {}
    for name, strength, _ in PERTURBATIONS:
        strengths.setdefault(name, []).append(strength)
    return pd.DataFrame([{"perturbation": name, "strengths": ", ".join(s)} for name, s in strengths.items()]).set_index(
        "perturbation"
    )


def improved_name(model: str) -> str:
    return f"{display_name(model)} (improved recipe)"


def recipe_robustness_reading(frame: pd.DataFrame, models=MODELS_COMPARED) -> list[str]:
    """Whether the improved recipe changes robustness: accuracy at 0.5 under each perturbation,
    improved minus paper recipe, summarised by its extremes and mean."""
    out = []
    for m in models:
        paper, improved = display_name(m), improved_name(m)
        if improved not in set(frame["model"]):
            continue
        key = ["perturbation", "strength"]
        a = frame[frame["model"] == paper].set_index(key)["accuracy@0.5"]
        b = frame[frame["model"] == improved].set_index(key)["accuracy@0.5"]
        diff = (b - a).drop(("clean", "-"), errors="ignore")
        lo, hi = diff.idxmin(), diff.idxmax()
        out.append(
            f"{paper}, improved minus paper recipe, accuracy at 0.5 under perturbation: mean {diff.mean():+.4f}; "
            f"largest gain {diff[hi]:+.4f} ({hi[0]} {hi[1]}: {a[hi]:.4f} -> {b[hi]:.4f}), "
            f"smallest {diff[lo]:+.4f} ({lo[0]} {lo[1]}: {a[lo]:.4f} -> {b[lo]:.4f})."
        )
    return out


def robustness_view(
    frame: pd.DataFrame, metrics=("accuracy@0.5", "accuracy@val", "fake_recall@0.5", "auc")
) -> pd.DataFrame:
    """Perturbations as rows, (metric, model) as columns; the full table is robustness.csv."""
    order = list(dict.fromkeys(zip(frame["perturbation"], frame["strength"])))
    view = frame.set_index(["perturbation", "strength", "model"])[list(metrics)].unstack("model").round(4)
    return view.loc[order]


def robustness_reading(frame: pd.DataFrame) -> list[str]:
    out = []
    for model, g in frame.groupby("model", sort=False):
        g = g[g["perturbation"] != "clean"]
        worst = g.loc[g["accuracy@0.5"].idxmin()]
        flip = g[g["perturbation"] == "hflip"].iloc[0]
        out.append(
            f"{model}: the largest drop at threshold 0.5 comes from {worst['perturbation']} "
            f"{worst['strength']} (accuracy {worst['accuracy@0.5']:.4f}, {worst['accuracy_drop@0.5']:.4f} "
            f"below clean; AUC {worst['auc']:.4f}); a horizontal flip changes accuracy by "
            f"{-flip['accuracy_drop@0.5']:+.4f}."
        )
    return out
