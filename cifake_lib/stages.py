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
from .metrics import apply_temperature, expected_calibration_error, fit_temperature, mcnemar_test, reliability_bins
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


def train_seeds(study: Study, cfg: TrainConfig, resume: bool = False) -> list[TrainResult]:
    """Train the model once per seed (SEEDS, or the profile's count): seed SEED + i into run i."""
    results = []
    for i in range(study.n_seeds()):
        seeded = TrainConfig.from_dict({**cfg.to_dict(), "seed": cfg.seed + i})
        results.append(train_stage(study, seeded, resume=resume, seed_index=i))
    return results


def train_scratch_twin(study: Study, cfg: TrainConfig, resume: bool = False) -> TrainResult | None:
    """ResNet-18 from scratch with the same recipe, to test the paper's hypothesis that
    pretraining helps. Only meaningful when the main run is pretrained; otherwise None and a note."""
    if not cfg.pretrained:
        study.notes.append("The main ResNet-18 run is not pretrained, so there is no separate from-scratch "
                           "twin: the pretrained-vs-scratch comparison needs the ImageNet weights.")
        return None
    scratch = TrainConfig.from_dict({**cfg.to_dict(), "pretrained": False, "weights": None})
    return train_stage(study, scratch, resume=resume, tag="scratch")


def seeds_table(results: list[TrainResult]) -> pd.DataFrame:
    rows = []
    for i, r in enumerate(results):
        best = r.history.loc[r.history["epoch"] == r.best_epoch].iloc[0]
        rows.append({"seed run": i, "best epoch": r.best_epoch, "val accuracy": best["val_accuracy"],
                     "val AUC": best["val_auc"], "train time (s)": r.history["epoch_time_s"].sum()})
    frame = pd.DataFrame(rows).set_index("seed run").round(4)
    if len(frame) > 1:
        frame.loc["mean"] = frame.mean().round(4)
        frame.loc["std"] = frame.iloc[:-1].std().round(4)
    return frame


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


def _evaluate_run(run, data, splits, out, limit, n_boot):
    rep = evaluate_model(run, data, split="test", out_dir=out, splits=splits, limit_per_class=limit,
                         n_boot=n_boot, progress=True)
    return rep, pd.read_csv(out / "predictions.csv")


def _temperature(run, data, splits, out, limit, test_pred: pd.DataFrame) -> dict:
    """Fit a temperature on validation predictions; ECE on test before and after."""
    val = evaluate_model(run, data, split="val", out_dir=out, splits=splits, limit_per_class=limit, n_boot=1,
                         progress=False)
    vp = pd.read_csv(out / "predictions.csv")
    t = fit_temperature(vp["label"], vp["p_fake"])
    scaled = apply_temperature(test_pred["p_fake"], t)
    return {"temperature": t, "val_n": val["n"],
            "ece": expected_calibration_error(test_pred["label"], test_pred["p_fake"]),
            "ece_scaled": expected_calibration_error(test_pred["label"], scaled),
            "bins": reliability_bins(test_pred["label"], test_pred["p_fake"]),
            "bins_scaled": reliability_bins(test_pred["label"], scaled)}


def evaluate_stage(study: Study, models=MODELS_COMPARED, n_boot: int = 1000) -> dict:
    """Score every model's best checkpoint on the same test images; McNemar between the first two;
    every seed run; the from-scratch ResNet-18 when there is one; calibration before and after
    temperature scaling fitted on validation."""
    data = study.load_data()
    splits = study.load_splits()
    limit = study.eval_limit()
    reports, preds, seeds = {}, {}, {}
    for model in models:
        runs = study.seed_runs(model)
        rep, pred = _evaluate_run(runs[0], data, splits, study.eval_dir / model, limit, n_boot)
        reports[model], preds[model] = rep, pred
        seeds[model] = [(rep, pred)] + [
            _evaluate_run(run, data, splits, study.eval_dir / f"{model}_seed{i}", limit, 200)
            for i, run in enumerate(runs[1:], start=1)
        ]
    scratch = None
    scratch_run = study.run_dir("resnet18", tag="scratch")
    if (scratch_run / "best.pt").exists() and "resnet18" in models:
        srep, spred = _evaluate_run(scratch_run, data, splits, study.eval_dir / "resnet18_scratch", limit, n_boot)
        scratch = {"report": srep, "mcnemar": mcnemar_test(preds["resnet18"]["label"], preds["resnet18"]["pred"],
                                                           spred["pred"])}
    elif "resnet18" in models and not reports["resnet18"].get("pretrained", True):
        study.notes.append("Pretrained ImageNet weights were not available, so the ResNet-18 here was trained from "
                           "scratch and the paper's pretrained-vs-scratch hypothesis could not be tested.")
    mc = None
    if len(models) >= 2:
        a, b = preds[models[0]], preds[models[1]]
        if list(a["path"]) != list(b["path"]):
            raise StudyError("the models were not scored on the same images")
        mc = mcnemar_test(a["label"], a["pred"], b["pred"])
    calibration = {m: _temperature(study.require_run(m), data, splits, study.eval_dir / m / "val", limit, p)
                   for m, p in preds.items()}
    seed_stats = seed_statistics(seeds)
    seed_mcnemar = []
    if len(models) >= 2:
        for i in range(min(len(seeds[models[0]]), len(seeds[models[1]]))):
            a, b = seeds[models[0]][i][1], seeds[models[1]][i][1]
            seed_mcnemar.append({"seed_run": i, **mcnemar_test(a["label"], a["pred"], b["pred"])})
    summary = {
        "profile": study.profile, "synthetic": bool(data.synthetic), "data": data.provenance(),
        "test_source": splits.settings.get("test_source"), "eval_limit_per_class": limit,
        "metrics": {m: {k: r[k] for k in ("accuracy", "precision", "recall", "f1", "auc", "n", "confusion", "ci95")}
                    for m, r in reports.items()},
        "mcnemar": mc,
        "calibration": {m: {k: c[k] for k in ("temperature", "ece", "ece_scaled")} for m, c in calibration.items()},
        "seeds": seed_stats, "seed_mcnemar": seed_mcnemar,
        "scratch": {"metrics": {k: scratch["report"][k] for k in ("accuracy", "auc", "n", "ci95")},
                    "mcnemar_vs_pretrained": scratch["mcnemar"]} if scratch else None,
        "conclusion": conclusion(reports, mc, synthetic=bool(data.synthetic)) + extra_sentences(seed_stats, scratch,
                                                                                              calibration),
        "notes": study.notes,
    }
    write_json(study.eval_dir / "summary.json", summary)
    return {"reports": reports, "predictions": preds, "mcnemar": mc, "calibration": calibration, "summary": summary,
            "seeds": seeds, "seed_stats": seed_stats, "seed_mcnemar": seed_mcnemar, "scratch": scratch}


def seed_statistics(seeds: dict) -> dict:
    """{model: {metric: {"mean", "std", "n_seeds", "values"}}} over the seed runs."""
    out = {}
    for model, runs in seeds.items():
        out[model] = {}
        for m in ("accuracy", "precision", "recall", "f1", "auc"):
            vals = [float(rep[m]) for rep, _ in runs]
            out[model][m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                             "n_seeds": len(vals), "values": vals}
    return out


def seed_table(result: dict) -> pd.DataFrame:
    rows = {}
    for model, stats in result["seed_stats"].items():
        name = DISPLAY_NAMES.get(model, model)
        for m, st in stats.items():
            sd = f" +/- {st['std']:.4f}" if st["std"] is not None else " (one seed)"
            rows.setdefault(m, {})[f"{name} (n={st['n_seeds']})"] = f"{st['mean']:.4f}{sd}"
    return pd.DataFrame(rows).T


def extra_sentences(seed_stats: dict, scratch: dict | None, calibration: dict) -> list[str]:
    """Sentences on seed spread, pretraining and calibration, from the measured numbers."""
    out = []
    models = list(seed_stats)
    if len(models) == 2 and all(seed_stats[m]["accuracy"]["n_seeds"] > 1 for m in models):
        a, b = (seed_stats[m]["accuracy"] for m in models)
        gap = abs(a["mean"] - b["mean"])
        spread = max(a["std"], b["std"])
        da, db = (DISPLAY_NAMES.get(m, m) for m in models)
        out.append(f"Over {a['n_seeds']} and {b['n_seeds']} seeds, mean accuracy is {a['mean']:.4f} ({da}) and "
                   f"{b['mean']:.4f} ({db}): a gap of {gap:.4f} against a seed-to-seed standard deviation of up to "
                   f"{spread:.4f}, so the gap is {'larger' if gap > 2 * spread else 'not clearly larger'} than run-to-run noise.")
    if scratch is not None:
        mc = scratch["mcnemar"]
        acc_s = scratch["report"]["accuracy"]
        out.append(f"ResNet-18 from scratch reaches accuracy {acc_s:.4f}; against the pretrained one, McNemar's "
                   f"p = {mc['p_value']:.3g} (pretrained alone right on {mc['a_only']:,}, scratch alone on {mc['b_only']:,}).")
    for m, c in calibration.items():
        out.append(f"{DISPLAY_NAMES.get(m, m)}: expected calibration error {c['ece']:.4f}, "
                   f"{c['ece_scaled']:.4f} after temperature scaling (T = {c['temperature']:.2f}, fitted on validation).")
    return out


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


def calibration_inputs(result: dict, scaled: bool = False) -> dict:
    key, ece = ("bins_scaled", "ece_scaled") if scaled else ("bins", "ece")
    suffix = " after temperature scaling" if scaled else ""
    return {DISPLAY_NAMES.get(m, m) + suffix: (c[key], c[ece]) for m, c in result["calibration"].items()}


def calibration_table(result: dict) -> pd.DataFrame:
    rows = [{"model": DISPLAY_NAMES.get(m, m), "ECE (test)": round(c["ece"], 4), "temperature (fitted on val)": round(c["temperature"], 3),
             "ECE after scaling": round(c["ece_scaled"], 4), "val images": c["val_n"]} for m, c in result["calibration"].items()]
    return pd.DataFrame(rows).set_index("model")


def scratch_table(result: dict) -> pd.DataFrame:
    """Pretrained vs from-scratch ResNet-18 on the same test images (empty when not run)."""
    if not result["scratch"]:
        return pd.DataFrame({"note": ["no from-scratch twin: see the notes above"]})
    pre, scr = result["reports"]["resnet18"], result["scratch"]["report"]
    rows = [{"run": name, "accuracy": round(r["accuracy"], 4),
             "accuracy 95% CI": f"[{r['ci95']['accuracy'][0]:.4f}, {r['ci95']['accuracy'][1]:.4f}]",
             "AUC": round(r["auc"], 4)} for name, r in (("pretrained", pre), ("from scratch", scr))]
    frame = pd.DataFrame(rows).set_index("run")
    frame.attrs["mcnemar_p"] = result["scratch"]["mcnemar"]["p_value"]
    return frame


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


# ----------------------------------------------------------------------------- 06


def gradcam_stage(study: Study, model: str, per_group: int = 4, per_class_mean: int = 200) -> dict:
    """Grad-CAM on test images the model got right and wrong (from 05's predictions), one image
    per CIFAR category and class, and the mean map per class."""
    from .explain import cam_maps, centre_share
    from .labels import CIFAR10_CATEGORIES
    from .train import load_run_model

    data = study.load_data()
    pred = pd.read_csv(study.require_evaluation(model))
    net, ckpt = load_run_model(study.require_run(model), "best", "cpu")
    cfg = TrainConfig.from_dict(ckpt["config"])
    rng = np.random.default_rng(study.seed)
    rows = data.index_of(pred["path"].tolist())
    correct = (pred["label"] == pred["pred"]).to_numpy()
    groups = {}
    for cls, cname in ((0, "REAL"), (1, "FAKE")):
        for ok, word in ((True, "correct"), (False, "wrong")):
            sel = np.flatnonzero((pred["label"].to_numpy() == cls) & (correct == ok))
            groups[f"{cname}, {word}"] = rows[rng.choice(sel, min(per_group, len(sel)), replace=False)] if len(sel) else []
    by_category = []
    cats = pred["category"].to_numpy()
    for cat in CIFAR10_CATEGORIES:
        for cls in (0, 1):
            sel = np.flatnonzero((cats == cat) & (pred["label"].to_numpy() == cls) & correct)
            if len(sel):
                by_category.append((f"{cat} {'FAKE' if cls else 'REAL'}", rows[rng.choice(sel)]))
    from .explain import target_layer

    out = {"model": model, "groups": {}, "categories": None, "mean": {}, "centre_share": {},
           "layer": target_layer(net, cfg.model, cfg.input_size)[1], "input_size": cfg.input_size}
    for name, idx in groups.items():
        if len(idx):
            cams, preds_, p, views = cam_maps(net, cfg, data.images[np.asarray(idx)])
            out["groups"][name] = (views, cams, [f"p_fake {v:.2f}" for v in p])
    if by_category:
        idx = np.array([i for _, i in by_category])
        cams, _, p, views = cam_maps(net, cfg, data.images[idx])
        out["categories"] = (views, cams, [t for t, _ in by_category])
    for cls, cname in ((0, "REAL"), (1, "FAKE")):
        sel = rows[pred["label"].to_numpy() == cls]
        sel = rng.choice(sel, min(per_class_mean, len(sel)), replace=False)
        cams, _, _, _ = cam_maps(net, cfg, data.images[np.sort(sel)])
        out["mean"][cname] = cams.mean(axis=0)
        out["centre_share"][cname] = float(centre_share(cams).mean())
    return out


def gradcam_reading(cams: dict) -> list[str]:
    """What the maps show, in sentences built from the measured centre shares."""
    name = DISPLAY_NAMES.get(cams["model"], cams["model"])
    real, fake = cams["centre_share"]["REAL"], cams["centre_share"]["FAKE"]
    where = "more" if fake > real else "less"
    if max(float(m.max()) for m in cams["mean"].values()) == 0:
        return [f"{name}: the Grad-CAM maps of {cams['layer']} are flat (all zero) at {cams['input_size']}px input, "
                "so they show nothing about where the model looks."]
    return [f"Maps from {cams['layer']} of {name} at {cams['input_size']}px input.",
        f"{name}: on average {fake:.0%} of the Grad-CAM mass lies in the central quarter of FAKE test images "
        f"and {real:.0%} for REAL ones (a uniform map would put 25% there), so its evidence for FAKE sits {where} "
        f"in the centre than its evidence for REAL.",
    ]


# ----------------------------------------------------------------------------- 07


def robustness_stage(study: Study, models=MODELS_COMPARED) -> pd.DataFrame:
    """Both models on the test part under every perturbation; saved as OUT/evaluation/robustness.csv."""
    from .robustness import robustness_table
    from .splits import subset_per_class

    data = study.load_data()
    splits = study.load_splits()
    idx, val = splits.test, splits.val
    limit = study.eval_limit()
    if limit:
        rng = np.random.default_rng(0)
        idx = subset_per_class(data, idx, limit, rng)
        val = subset_per_class(data, val, limit, rng)
    runs = {DISPLAY_NAMES.get(m, m): study.require_run(m) for m in models}
    frame = robustness_table(runs, data, idx, val)
    study.eval_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(study.eval_dir / "robustness.csv", index=False)
    return frame


def robustness_view(frame: pd.DataFrame, metrics=("accuracy@0.5", "accuracy@val", "fake_recall@0.5", "auc")) -> pd.DataFrame:
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
        out.append(f"{model}: the largest drop at threshold 0.5 comes from {worst['perturbation']} "
                   f"{worst['strength']} (accuracy {worst['accuracy@0.5']:.4f}, {worst['accuracy_drop@0.5']:.4f} "
                   f"below clean; AUC {worst['auc']:.4f}); a horizontal flip changes accuracy by "
                   f"{-flip['accuracy_drop@0.5']:+.4f}.")
    return out
