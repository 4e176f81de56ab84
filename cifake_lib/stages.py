"""What each notebook does, as functions: a notebook cell calls one and displays the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .audit import audit
from .compare import DISPLAY_NAMES, comparison_table, conclusion
from .config import TrainConfig
from .evaluate import evaluate_model
from .metrics import expected_calibration_error, mcnemar_test, reliability_bins
from .notebook import Study, StudyError, write_json
from .preprocess import Preprocessor
from .splits import limit_parts, make_splits, save_manifest
from .train import TrainResult, train_model

MODELS_COMPARED = ("resnet18", "custom_cnn")


# ----------------------------------------------------------------------------- 01


def audit_summary(study: Study) -> dict:
    """Audit of the study's data, also saved as OUT/audit.json."""
    result = audit(study.load_data())
    write_json(study.out / "audit.json", result)
    return result


def duplicates_table(a: dict) -> pd.DataFrame:
    d = a["duplicates"]
    rows = [{"where": f"within {k}", "extra copies": v} for k, v in d["within"].items()]
    rows += [{"where": k, "extra copies": v} for k, v in d["by_class"].items()]
    rows.append({"where": "test images also in train (leaks)", "extra copies": d["across"]})
    rows.append({"where": "same bytes with both labels", "extra copies": d["label_conflicts"]})
    return pd.DataFrame(rows).set_index("where")


# ----------------------------------------------------------------------------- 02


def prepare_splits(study: Study, val_fraction: float = 0.1) -> pd.DataFrame:
    """Make the study's train/validation/test splits, save the manifest, return their sizes."""
    data = study.load_data()
    splits = make_splits(data, val_fraction=val_fraction, test_fraction=0.1, seed=study.seed)
    save_manifest(splits, data, study.splits_path)
    frame = pd.DataFrame(splits.sizes(data)).T
    frame.index.name = "part"
    return frame


def preprocessing_examples(study: Study, image_size: int, n: int = 6):
    """(uint8 images, their normalized model inputs, de-normalized views) for a few training images."""
    data = study.load_data()
    splits = study.load_splits()
    idx = splits.train[np.linspace(0, len(splits.train) - 1, n).astype(int)]
    raw = torch.from_numpy(data.images[idx])
    prep = Preprocessor(image_size)
    x = prep(raw)
    view = (x * prep.std + prep.mean).numpy()
    return raw.numpy(), x, view


def augmentation_examples(study: Study, n: int = 6, repeats: int = 4):
    data = study.load_data()
    splits = study.load_splits()
    img = torch.from_numpy(data.images[splits.train[:1]]).repeat(repeats, 1, 1, 1)
    prep = Preprocessor(data.image_size, augment=True)
    g = torch.Generator().manual_seed(study.seed)
    out = prep(img, train=True, generator=g)
    return (out * prep.std + prep.mean).numpy()


# ----------------------------------------------------------------------------- 03 / 04


def train_stage(study: Study, cfg: TrainConfig, resume: bool = False, seed_index: int = 0, tag: str = "") -> TrainResult:
    """Train one model of the study on its saved splits (a per-class subset when the config says so)."""
    data = study.load_data()
    splits = limit_parts(study.load_splits(), data, cfg.limit_per_class, seed=study.seed)
    run = study.run_dir(cfg.model, seed_index, tag)
    if resume and not (run / "last.pt").exists():
        resume = False
    return train_model(cfg, data, splits, run, resume=resume)


def training_summary(result: TrainResult, cfg: TrainConfig) -> pd.DataFrame:
    h = result.history
    best = h.loc[h["epoch"] == result.best_epoch].iloc[0]
    rows = {
        "model": cfg.model, "input size (px)": cfg.input_size, "pretrained": cfg.pretrained,
        "epochs": int(h["epoch"].max()), "best epoch": result.best_epoch,
        "best val accuracy": round(float(best["val_accuracy"]), 4), "best val AUC": round(float(best["val_auc"]), 4),
        "train wall time (s)": round(float(h["epoch_time_s"].sum()), 1),
        "mean throughput (img/s)": round(float(h["train_images_per_s"].mean()), 0),
    }
    return pd.DataFrame(rows.items(), columns=["", "value"]).set_index("")


# ----------------------------------------------------------------------------- 05


def evaluate_stage(study: Study, models=MODELS_COMPARED, n_boot: int = 1000) -> dict:
    """Score every model's best checkpoint on the same test images; McNemar between the first two."""
    data = study.load_data()
    splits = study.load_splits()
    limit = study.eval_limit()
    reports, preds = {}, {}
    for model in models:
        run = study.require_run(model)
        rep = evaluate_model(run, data, split="test", out_dir=study.eval_dir / model, splits=splits,
                             limit_per_class=limit, n_boot=n_boot, progress=True)
        reports[model] = rep
        preds[model] = pd.read_csv(study.eval_dir / model / "predictions.csv")
    mc = None
    if len(models) >= 2:
        a, b = preds[models[0]], preds[models[1]]
        if list(a["path"]) != list(b["path"]):
            raise StudyError("the models were not scored on the same images")
        mc = mcnemar_test(a["label"], a["pred"], b["pred"])
    calibration = {m: {"ece": expected_calibration_error(p["label"], p["p_fake"]),
                       "bins": reliability_bins(p["label"], p["p_fake"])} for m, p in preds.items()}
    summary = {
        "profile": study.profile, "synthetic": bool(data.synthetic), "data": data.provenance(),
        "test_source": splits.settings.get("test_source"), "eval_limit_per_class": limit,
        "metrics": {m: {k: r[k] for k in ("accuracy", "precision", "recall", "f1", "auc", "n", "confusion", "ci95")}
                    for m, r in reports.items()},
        "mcnemar": mc, "calibration": {m: c["ece"] for m, c in calibration.items()},
        "conclusion": conclusion(reports, mc, synthetic=bool(data.synthetic)),
        "notes": study.notes,
    }
    write_json(study.eval_dir / "summary.json", summary)
    return {"reports": reports, "predictions": preds, "mcnemar": mc, "calibration": calibration, "summary": summary}


def metrics_table(result: dict) -> pd.DataFrame:
    return comparison_table(result["reports"])


def category_frame(result: dict) -> pd.DataFrame:
    """Accuracy per CIFAR-10 category (rows) for each model and class (columns)."""
    cols = {}
    for model, rep in result["reports"].items():
        name = DISPLAY_NAMES.get(model, model)
        for cat, row in rep["per_category"].items():
            for cls in ("REAL", "FAKE"):
                cols.setdefault(f"{name} {cls}", {})[cat] = row[f"{cls}_accuracy"]
    return pd.DataFrame(cols)


def leak_free_table(result: dict) -> pd.DataFrame:
    rows = []
    for model, rep in result["reports"].items():
        lf = rep.get("leak_free")
        rows.append({
            "model": DISPLAY_NAMES.get(model, model),
            "test images": rep["n"],
            "leaked (bytes also in train/val)": rep.get("leaked_images_removed", 0),
            "accuracy (all)": round(rep["accuracy"], 4),
            "accuracy (leak-free)": round(lf["accuracy"], 4) if lf else "same images (no leaks)",
        })
    return pd.DataFrame(rows).set_index("model")


def mcnemar_table(mc: dict, names=MODELS_COMPARED) -> pd.DataFrame:
    a, b = (DISPLAY_NAMES.get(n, n) for n in names)
    rows = [("both correct", mc["both_correct"]), (f"only {a} correct", mc["a_only"]),
            (f"only {b} correct", mc["b_only"]), ("both wrong", mc["both_wrong"]),
            ("p-value (exact)", f"{mc['p_value']:.3g}")]
    return pd.DataFrame(rows, columns=["", "images"]).set_index("")


def load_summary(out: Path) -> dict | None:
    path = Path(out) / "evaluation" / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def confusion_panels(result: dict) -> dict:
    """Our confusion counts next to the paper's, for plots.plot_confusion_matrices."""
    from .compare import PAPER_CONFUSION

    panels = {}
    for model, rep in result["reports"].items():
        name = DISPLAY_NAMES.get(model, model)
        panels[f"{name} (ours, n={rep['n']:,})"] = rep["confusion"]
        if model in PAPER_CONFUSION:
            panels[f"{name} (paper, n=10,000)"] = PAPER_CONFUSION[model]
    return panels


def roc_inputs(result: dict) -> dict:
    return {DISPLAY_NAMES.get(m, m): (p["label"], p["p_fake"], result["reports"][m]["auc"])
            for m, p in result["predictions"].items()}


def calibration_inputs(result: dict) -> dict:
    return {DISPLAY_NAMES.get(m, m): (c["bins"], c["ece"]) for m, c in result["calibration"].items()}


def audit_details(a: dict) -> str:
    """Conversions, corrupt and ignored files, and a few duplicate groups, as text."""
    lines = [
        f"conversions: {a['converted'] or 'none'}",
        f"corrupt files skipped: {len(a['corrupt'])} {a['corrupt'][:5]}",
        f"ignored non-image files: {len(a['ignored'])} {a['ignored'][:5]}",
        "examples of duplicate groups:",
    ]
    lines += ["   " + " == ".join(group) for group in a["duplicates"]["examples"]] or ["   none"]
    return "\n".join(lines)
