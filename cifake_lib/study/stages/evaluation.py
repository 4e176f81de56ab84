"""05_comparative_evaluation: both networks on the same test images, against each other and the paper."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...atomic import write_json
from ...engine.evaluate import Evaluation, evaluate_model, write_evaluation
from ...engine.metrics import (
    METRICS,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    logit_margin,
    mcnemar_test,
    reliability_bins,
)
from ..compare import PAPER_CONFUSION, comparison_table, conclusion, display_name
from ..layout import StudyError
from ..notebook import Study

MODELS_COMPARED = ("resnet18", "custom_cnn")
RUN_FACTS = ("input_size", "pretrained", "train_images", "best_epoch")  # what ran, for the report's front


def evaluate_stage(study: Study, models=MODELS_COMPARED, n_boot: int = 1000) -> dict:
    """Score every model's best checkpoint on the same test images; McNemar between the first two;
    every seed run; the from-scratch ResNet-18 when there is one; calibration before and after
    temperature scaling fitted on validation. Writes each evaluation and OUT/evaluation/summary.json."""
    data, splits = study.load_data(), study.load_splits()
    seeds = {m: _evaluate_seeds(study, m, data, splits, n_boot) for m in models}
    main = {m: runs[0] for m, runs in seeds.items()}
    reports = {m: ev.metrics for m, ev in main.items()}
    preds = {m: ev.predictions for m, ev in main.items()}
    scratch = _scratch_comparison(study, models, main, data, splits, n_boot)
    mc = _mcnemar(preds[models[0]], preds[models[1]]) if len(models) >= 2 else None
    calibration = {m: _calibration(study, m, ev, data, splits) for m, ev in main.items()}
    seed_stats = seed_statistics(seeds)
    seed_mcnemar = (
        [
            {"seed_run": i, **_mcnemar(a.predictions, b.predictions)}
            for i, (a, b) in enumerate(zip(seeds[models[0]], seeds[models[1]]))
        ]
        if len(models) >= 2
        else []
    )
    summary = {
        "profile": study.profile,
        "synthetic": bool(data.synthetic),
        "data": data.provenance(),
        "test_source": splits.settings.get("test_source"),
        "eval_limit_per_class": study.eval_limit(),
        "metrics": {m: {k: r[k] for k in (*METRICS, "n", "confusion", "ci95")} for m, r in reports.items()},
        "runs": {m: {k: r.get(k) for k in RUN_FACTS} for m, r in reports.items()},
        "mcnemar": mc,
        "calibration": {m: {k: c[k] for k in ("temperature", "ece", "ece_scaled")} for m, c in calibration.items()},
        "seeds": seed_stats,
        "seed_mcnemar": seed_mcnemar,
        "scratch": {
            "metrics": {k: scratch["report"][k] for k in ("accuracy", "auc", "n", "ci95")},
            "mcnemar_vs_pretrained": scratch["mcnemar"],
        }
        if scratch
        else None,
        "conclusion": conclusion(reports, mc, synthetic=bool(data.synthetic))
        + extra_sentences(seed_stats, scratch, calibration),
        "notes": study.notes,
    }
    write_json(study.layout.summary_path, summary)
    return {
        "reports": reports,
        "predictions": preds,
        "mcnemar": mc,
        "calibration": calibration,
        "summary": summary,
        "seeds": seeds,
        "seed_stats": seed_stats,
        "seed_mcnemar": seed_mcnemar,
        "scratch": scratch,
    }


def _evaluate(study: Study, run, name: str, data, splits, n_boot: int, split: str = "test") -> Evaluation:
    """One run scored (and written to OUT/evaluation/<name>/)."""
    ev = evaluate_model(
        run,
        data,
        split=split,
        splits=splits,
        limit_per_class=study.eval_limit(),
        n_boot=n_boot,
        progress=split == "test",
    )
    write_evaluation(ev, study.layout.evaluation_dir(name))
    return ev


def _evaluate_seeds(study: Study, model: str, data, splits, n_boot: int) -> list[Evaluation]:
    """The main run with ``n_boot`` bootstrap draws, further seed runs with 200 (they feed mean +/- std)."""
    runs = study.layout.seed_runs(model)
    return [
        _evaluate(study, run, study.layout.run_name(model, i), data, splits, n_boot if i == 0 else 200)
        for i, run in enumerate(runs)
    ]


def _mcnemar(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    if list(a["path"]) != list(b["path"]):
        raise StudyError("the models were not scored on the same images")
    return mcnemar_test(a["label"], a["pred"], b["pred"])


def _scratch_comparison(study: Study, models, main: dict, data, splits, n_boot: int) -> dict | None:
    """The from-scratch ResNet-18 twin against the pretrained one, when 03 trained it."""
    if "resnet18" not in models:
        return None
    run = study.layout.run_dir("resnet18", tag="scratch")
    if not (run / "best.pt").exists():
        if not main["resnet18"].metrics.get("pretrained", True):
            study.notes.append(
                "Pretrained ImageNet weights were not available, so the ResNet-18 here was trained "
                "from scratch and the paper's pretrained-vs-scratch hypothesis could not be tested."
            )
        return None
    ev = _evaluate(study, run, study.layout.run_name("resnet18", tag="scratch"), data, splits, n_boot)
    return {"report": ev.metrics, "mcnemar": _mcnemar(main["resnet18"].predictions, ev.predictions)}


def _calibration(study: Study, model: str, test: Evaluation, data, splits) -> dict:
    """A temperature fitted on the validation logits; ECE on test before and after."""
    val = _evaluate(study, study.layout.require_run(model), f"{model}/val", data, splits, n_boot=1, split="val")
    t = fit_temperature(val.predictions["label"], logit_margin(val.logits))
    y, p = test.predictions["label"], test.predictions["p_fake"]
    scaled = apply_temperature(logit_margin(test.logits), t)
    return {
        "temperature": t,
        "val_n": val.metrics["n"],
        "ece": expected_calibration_error(y, p),
        "ece_scaled": expected_calibration_error(y, scaled),
        "bins": reliability_bins(y, p),
        "bins_scaled": reliability_bins(y, scaled),
    }


def seed_statistics(seeds: dict) -> dict:
    """{model: {metric: {"mean", "std", "n_seeds", "values"}}} over the seed runs."""
    out = {}
    for model, runs in seeds.items():
        out[model] = {}
        for m in METRICS:
            vals = [float(ev.metrics[m]) for ev in runs]
            out[model][m] = {
                "mean": float(np.mean(vals)),
                "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                "n_seeds": len(vals),
                "values": vals,
            }
    return out


def evaluation_seeds_table(result: dict) -> pd.DataFrame:
    """Test metrics as mean +/- standard deviation over each model's seed runs."""
    rows = {}
    for model, stats in result["seed_stats"].items():
        for m, st in stats.items():
            sd = f" +/- {st['std']:.4f}" if st["std"] is not None else " (one seed)"
            rows.setdefault(m, {})[f"{display_name(model)} (n={st['n_seeds']})"] = f"{st['mean']:.4f}{sd}"
    return pd.DataFrame(rows).T


def extra_sentences(seed_stats: dict, scratch: dict | None, calibration: dict) -> list[str]:
    """Sentences on seed spread, pretraining and calibration, from the measured numbers."""
    out = []
    models = list(seed_stats)
    if len(models) == 2 and all(seed_stats[m]["accuracy"]["n_seeds"] > 1 for m in models):
        a, b = (seed_stats[m]["accuracy"] for m in models)
        gap = abs(a["mean"] - b["mean"])
        spread = max(a["std"], b["std"])
        da, db = (display_name(m) for m in models)
        out.append(
            f"Over {a['n_seeds']} and {b['n_seeds']} seeds, mean accuracy is {a['mean']:.4f} ({da}) and "
            f"{b['mean']:.4f} ({db}): a gap of {gap:.4f} against a seed-to-seed standard deviation of up to "
            f"{spread:.4f}, so the gap is {'larger' if gap > 2 * spread else 'not clearly larger'} than "
            "run-to-run noise."
        )
    if scratch is not None:
        mc = scratch["mcnemar"]
        out.append(
            f"ResNet-18 from scratch reaches accuracy {scratch['report']['accuracy']:.4f}; against the "
            f"pretrained one, McNemar's p = {mc['p_value']:.3g} (pretrained alone right on {mc['a_only']:,}, "
            f"scratch alone on {mc['b_only']:,})."
        )
    for m, c in calibration.items():
        out.append(
            f"{display_name(m)}: expected calibration error {c['ece']:.4f}, "
            f"{c['ece_scaled']:.4f} after temperature scaling (T = {c['temperature']:.2f}, fitted on validation)."
        )
    return out


# ----------------------------------------------------------------------------- tables and plot inputs


def metrics_table(result: dict) -> pd.DataFrame:
    return comparison_table(result["reports"])


def category_frame(result: dict) -> pd.DataFrame:
    """Accuracy per CIFAR-10 category (rows) for each model and class (columns)."""
    cols = {}
    for model, rep in result["reports"].items():
        for cat, row in rep["per_category"].items():
            for cls in ("REAL", "FAKE"):
                cols.setdefault(f"{display_name(model)} {cls}", {})[cat] = row[f"{cls}_accuracy"]
    return pd.DataFrame(cols)


def leak_free_table(result: dict) -> pd.DataFrame:
    rows = []
    for model, rep in result["reports"].items():
        lf = rep.get("leak_free")
        rows.append(
            {
                "model": display_name(model),
                "test images": rep["n"],
                "leaked (bytes also in train/val)": rep.get("leaked_images_removed", 0),
                "accuracy (all)": round(rep["accuracy"], 4),
                "accuracy (leak-free)": round(lf["accuracy"], 4) if lf else "same images (no leaks)",
            }
        )
    return pd.DataFrame(rows).set_index("model")


def mcnemar_table(mc: dict, names=MODELS_COMPARED) -> pd.DataFrame:
    a, b = (display_name(n) for n in names)
    rows = [
        ("both correct", mc["both_correct"]),
        (f"only {a} correct", mc["a_only"]),
        (f"only {b} correct", mc["b_only"]),
        ("both wrong", mc["both_wrong"]),
        ("p-value (exact)", f"{mc['p_value']:.3g}"),
    ]
    return pd.DataFrame(rows, columns=["", "images"]).set_index("")


def confusion_panels(result: dict) -> dict:
    """Our confusion counts next to the paper's, for plots.plot_confusion_matrices."""
    panels = {}
    for model, rep in result["reports"].items():
        panels[f"{display_name(model)} (ours, n={rep['n']:,})"] = rep["confusion"]
        if model in PAPER_CONFUSION:
            panels[f"{display_name(model)} (paper, n=10,000)"] = PAPER_CONFUSION[model]
    return panels


def roc_inputs(result: dict) -> dict:
    return {
        display_name(m): (p["label"], p["p_fake"], result["reports"][m]["auc"])
        for m, p in result["predictions"].items()
    }


def calibration_inputs(result: dict, scaled: bool = False) -> dict:
    key, ece = ("bins_scaled", "ece_scaled") if scaled else ("bins", "ece")
    suffix = " after temperature scaling" if scaled else ""
    return {display_name(m) + suffix: (c[key], c[ece]) for m, c in result["calibration"].items()}


def calibration_table(result: dict) -> pd.DataFrame:
    rows = [
        {
            "model": display_name(m),
            "ECE (test)": round(c["ece"], 4),
            "temperature (fitted on val)": round(c["temperature"], 3),
            "ECE after scaling": round(c["ece_scaled"], 4),
            "val images": c["val_n"],
        }
        for m, c in result["calibration"].items()
    ]
    return pd.DataFrame(rows).set_index("model")


def scratch_table(result: dict) -> pd.DataFrame:
    """Pretrained vs from-scratch ResNet-18 on the same test images (empty when not run)."""
    if not result["scratch"]:
        return pd.DataFrame({"note": ["no from-scratch twin: see the notes above"]})
    pre, scr = result["reports"]["resnet18"], result["scratch"]["report"]
    rows = [
        {
            "run": name,
            "accuracy": round(r["accuracy"], 4),
            "accuracy 95% CI": f"[{r['ci95']['accuracy'][0]:.4f}, {r['ci95']['accuracy'][1]:.4f}]",
            "AUC": round(r["auc"], 4),
        }
        for name, r in (("pretrained", pre), ("from scratch", scr))
    ]
    frame = pd.DataFrame(rows).set_index("run")
    frame.attrs["mcnemar_p"] = result["scratch"]["mcnemar"]["p_value"]
    return frame
