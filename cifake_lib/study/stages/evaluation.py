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
    paired_bootstrap_difference,
    reliability_bins,
)
from ..baselines import fit_baselines, shortcut_sentence
from ..compare import PAPER_CONFUSION, comparison_table, conclusion, display_name
from ..compare import paper_notes as compare_paper_notes
from ..layout import StudyError
from ..notebook import Study

MODELS_COMPARED = ("resnet18", "custom_cnn")
RUN_FACTS = (
    "recipe",
    "epochs",
    "input_size",
    "pretrained",
    "train_images",
    "best_epoch",
    "batch_size",
    "val_fraction",
    "arithmetic",
    "tf32",
)  # what ran, for the report's front
SUMMARY_KEYS = (*METRICS, "n", "confusion", "ci95", "average_precision", "tpr_at_fpr")
SMALL_EXTRA = 2_000  # fewer scored images than this: the extra row gets a caveat


def evaluate_stage(study: Study, models=MODELS_COMPARED, n_boot: int = 1000) -> dict:
    """Score every model's best checkpoint on the same test images; McNemar and a paired bootstrap
    difference between the first two; every seed run; the from-scratch ResNet-18 when there is
    one; calibration before and after temperature scaling fitted on validation; simple baselines
    on the same images; every EXTRA_TEST_DATA set. Writes each evaluation and summary.json."""
    data, splits = study.load_data(), study.load_splits()
    seeds = {m: _evaluate_seeds(study, m, data, splits, n_boot) for m in models}
    main = {m: runs[0] for m, runs in seeds.items()}
    r = {
        "reports": {m: ev.metrics for m, ev in main.items()},
        "predictions": {m: ev.predictions for m, ev in main.items()},
        "seeds": seeds,
        "seed_stats": seed_statistics(seeds),
    }
    pair = models[:2] if len(models) >= 2 else None
    r["scratch"] = _scratch_comparison(study, models, main, data, splits, n_boot)
    r["recipes"] = _recipe_comparison(study, models, main, data, splits, n_boot)
    r["mcnemar"] = _mcnemar(*(r["predictions"][m] for m in pair)) if pair else None
    r["difference"] = _difference(main[pair[0]], main[pair[1]], n_boot) if pair else None
    r["seed_mcnemar"] = (
        [
            {"seed_run": i, **_mcnemar(a.predictions, b.predictions)}
            for i, (a, b) in enumerate(zip(*(seeds[m] for m in pair)))
        ]
        if pair
        else []
    )
    r["calibration"] = {m: _calibration(study, m, ev, data, splits) for m, ev in main.items()}
    r["baselines"] = _baselines(study, data, main[models[-1]], n_boot)
    r["extra"] = [
        _extra_data(study, i, p, models, n_boot) for i, p in enumerate(study.params.get("EXTRA_TEST_DATA", []))
    ]
    r["summary"] = _summary(study, data, splits, r)
    write_json(study.layout.summary_path, r["summary"])
    return r


def _summary(study: Study, data, splits, r: dict) -> dict:
    reports, scratch, synthetic = r["reports"], r["scratch"], bool(data.synthetic)
    sentences = conclusion(reports, r["mcnemar"], synthetic=synthetic)
    sentences += extra_sentences(r["seed_stats"], scratch, r["calibration"])
    if not synthetic:
        sentences += [recipe_sentence(m, c, reports[m]) for m, c in r["recipes"].items()]
    if r["difference"] and not synthetic:
        sentences.append(difference_sentence(r["difference"], list(reports)))
    if r["baselines"]:
        sentences.append(shortcut_sentence(r["baselines"], reports))
    return {
        "profile": study.profile,
        "synthetic": synthetic,
        "data": data.provenance(),
        "test_source": splits.settings.get("test_source"),
        "eval_limit_per_class": study.eval_limit(),
        "metrics": {m: {k: x[k] for k in SUMMARY_KEYS} for m, x in reports.items()},
        "runs": {m: {k: x.get(k) for k in RUN_FACTS} for m, x in reports.items()},
        "mcnemar": r["mcnemar"],
        "difference": r["difference"],
        "calibration": {
            m: {k: c[k] for k in ("temperature", "ece", "ece_scaled")} for m, c in r["calibration"].items()
        },
        "seeds": r["seed_stats"],
        "seed_mcnemar": r["seed_mcnemar"],
        "scratch": {
            "metrics": {k: scratch["report"][k] for k in ("accuracy", "auc", "n", "ci95")},
            "run": {k: scratch["report"].get(k) for k in RUN_FACTS},
            "mcnemar_vs_pretrained": scratch["mcnemar"],
        }
        if scratch
        else None,
        "recipes": {
            m: {
                "metrics": {k: c["report"][k] for k in SUMMARY_KEYS},
                "run": {k: c["report"].get(k) for k in RUN_FACTS},
                "mcnemar_vs_paper": c["mcnemar"],
                "difference_vs_paper": c["difference"],
            }
            for m, c in r["recipes"].items()
        },
        "baselines": {
            n: {k: b[k] for k in (*SUMMARY_KEYS, "fit_seconds", "train_images", "converged")}
            for n, b in r["baselines"].items()
        },
        "extra": [
            {k: e[k] for k in ("path", "source", "fingerprint", "split", "n", "small", "metrics")} for e in r["extra"]
        ],
        "conclusion": sentences,
        "notes": study.notes,
    }


def _difference(a: Evaluation, b: Evaluation, n_boot: int) -> dict:
    """Model A minus model B on the same images, with paired bootstrap 95% intervals."""
    pa, pb = _same_images(a.predictions, b.predictions)
    return paired_bootstrap_difference(pa["label"], pa["p_fake"], pb["p_fake"], n_boot=n_boot)


def difference_sentence(d: dict, models: list[str]) -> str:
    a, b = (display_name(m) for m in models)
    acc, auc = d["accuracy"], d["auc"]
    return (
        f"{a} minus {b}: accuracy {acc['difference'] * 100:+.2f} percentage points (paired bootstrap 95% CI "
        f"{acc['ci95'][0] * 100:+.2f} to {acc['ci95'][1] * 100:+.2f}), AUC {auc['difference']:+.4f} "
        f"({auc['ci95'][0]:+.4f} to {auc['ci95'][1]:+.4f})."
    )


def _baselines(study: Study, data, reference: Evaluation, n_boot: int) -> dict:
    """The simple baselines, fitted on the training images of ``reference``'s run and scored on
    the images it was scored on."""
    from ...data.splits import load_manifest

    run = study.layout.require_run(reference.metrics["model"])
    train = load_manifest(run / "splits.json", data).train
    test = data.index_of(reference.predictions["path"].tolist())
    return fit_baselines(data.images, data.labels, train, test, n_boot=n_boot)


def _extra_data(study: Study, index: int, path: str, models, n_boot: int) -> dict:
    """Each model's main run on labelled data it was not trained on (cross-source, cross-generator)."""
    from ...data.dataset import load_cifake

    extra = load_cifake(path, progress=False, require_train=False)
    split = "test" if extra.has_test else "train"
    out = {"path": str(path), "source": extra.source, "fingerprint": extra.fingerprint, "split": split, "metrics": {}}
    for model in models:
        ev = evaluate_model(study.layout.require_run(model), extra, split=split, n_boot=n_boot, progress=False)
        write_evaluation(ev, study.layout.evaluation_dir(f"extra{index}/{model}"))
        out["metrics"][model] = {k: ev.metrics[k] for k in (*SUMMARY_KEYS, "leaked_images_removed")}
        out["n"] = ev.metrics["n"]
    out["small"] = out["n"] < SMALL_EXTRA
    return out


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


def _same_images(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two prediction frames, after checking that they score the same images in the same order."""
    if list(a["path"]) != list(b["path"]):
        raise StudyError("the models were not scored on the same images")
    return a, b


def _mcnemar(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    a, b = _same_images(a, b)
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


def _recipe_comparison(study: Study, models, main: dict, data, splits, n_boot: int) -> dict:
    """{model: improved-recipe run against the paper-recipe run on the same test images} for each
    model 03/04 trained with the improved recipe."""
    out = {}
    for model in models:
        run = study.layout.run_dir(model, tag="improved")
        if not (run / "best.pt").exists():
            continue
        ev = _evaluate(study, run, study.layout.run_name(model, tag="improved"), data, splits, n_boot)
        out[model] = {
            "report": ev.metrics,
            "predictions": ev.predictions,
            "mcnemar": _mcnemar(ev.predictions, main[model].predictions),
            "difference": _difference(ev, main[model], n_boot),
        }
    return out


def recipe_sentence(model: str, c: dict, paper: dict) -> str:
    """Improved against paper recipe for one model, from the measured numbers."""
    imp, d, mc = c["report"], c["difference"]["accuracy"], c["mcnemar"]
    return (
        f"{display_name(model)} with the improved recipe: accuracy {imp['accuracy']:.2%} (95% CI "
        f"{imp['ci95']['accuracy'][0]:.2%} to {imp['ci95']['accuracy'][1]:.2%}), AUC {imp['auc']:.4f}, against "
        f"{paper['accuracy']:.2%} and {paper['auc']:.4f} with the paper's recipe: {d['difference'] * 100:+.2f} "
        f"percentage points (paired bootstrap 95% CI {d['ci95'][0] * 100:+.2f} to {d['ci95'][1] * 100:+.2f}; "
        f"McNemar p = {mc['p_value']:.3g})."
    )


def recipes_table(result: dict) -> pd.DataFrame:
    """Paper vs improved recipe for each model trained with both, on the same test images."""
    if not result["recipes"]:
        return pd.DataFrame({"note": ["no model was trained with the improved recipe in this profile"]})
    rows = []
    for model, c in result["recipes"].items():
        for recipe, r in (("paper", result["reports"][model]), ("improved", c["report"])):
            rows.append(
                {
                    "model": display_name(model),
                    "recipe": recipe,
                    "accuracy [95% CI]": _ci_cell(r, "accuracy"),
                    "AUC [95% CI]": _ci_cell(r, "auc"),
                    "best epoch": r.get("best_epoch"),
                    "images": r["n"],
                }
            )
        d, mc = c["difference"], c["mcnemar"]
        rows.append(
            {
                "model": display_name(model),
                "recipe": "improved - paper",
                "accuracy [95% CI]": f"{d['accuracy']['difference']:+.4f} "
                f"[{d['accuracy']['ci95'][0]:+.4f}, {d['accuracy']['ci95'][1]:+.4f}]",
                "AUC [95% CI]": f"{d['auc']['difference']:+.4f} "
                f"[{d['auc']['ci95'][0]:+.4f}, {d['auc']['ci95'][1]:+.4f}]",
                "best epoch": None,
                "images": f"McNemar p = {mc['p_value']:.3g}",
            }
        )
    return pd.DataFrame(rows).set_index(["model", "recipe"])


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
    return comparison_table(result["reports"], synthetic=result["summary"]["synthetic"])


def paper_notes() -> list[str]:
    """What the paper's own numbers imply (its evaluation set, its recall claim, the custom CNN)."""
    return compare_paper_notes()


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
        if model in PAPER_CONFUSION and not result["summary"]["synthetic"]:  # demo numbers never beside the paper's
            panels[f"{display_name(model)} (paper: 4,957 FAKE, 5,043 REAL)"] = PAPER_CONFUSION[model]
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


def _ci_cell(m: dict, key: str) -> str:
    lo, hi = m["ci95"][key]
    return f"{m[key]:.4f} [{lo:.4f}, {hi:.4f}]"


def baselines_table(result: dict) -> pd.DataFrame:
    """The simple baselines beside both networks, on the same test images, with 95% intervals."""
    rows = [
        {
            "model": f"{display_name(m)} (network)",
            "accuracy [95% CI]": _ci_cell(r, "accuracy"),
            "AUC [95% CI]": _ci_cell(r, "auc"),
            "training images": r.get("train_images"),
            "fit time (s)": None,
        }
        for m, r in result["reports"].items()
    ]
    rows += [
        {
            "model": name,
            "accuracy [95% CI]": _ci_cell(b, "accuracy"),
            "AUC [95% CI]": _ci_cell(b, "auc"),
            "training images": b["train_images"],
            "fit time (s)": round(b["fit_seconds"], 1),
        }
        for name, b in result["baselines"].items()
    ]
    return pd.DataFrame(rows).set_index("model")


def difference_table(result: dict) -> pd.DataFrame:
    """Accuracy and AUC of the first network minus the second, with paired bootstrap intervals."""
    d = result["difference"]
    if d is None:
        return pd.DataFrame({"note": ["one model only: no difference to report"]})
    return pd.DataFrame(
        [
            {
                "metric": k,
                "difference": round(d[k]["difference"], 4),
                "95% CI (paired bootstrap)": f"[{d[k]['ci95'][0]:+.4f}, {d[k]['ci95'][1]:+.4f}]",
            }
            for k in ("accuracy", "auc")
        ]
    ).set_index("metric")


def extra_data_table(result: dict) -> pd.DataFrame:
    """One row per EXTRA_TEST_DATA set and model (cross-source / cross-generator), with a caveat when small."""
    if not result["extra"]:
        return pd.DataFrame({"note": ["no EXTRA_TEST_DATA given: only the study's own test images were scored"]})
    rows = []
    for e in result["extra"]:
        for m, r in e["metrics"].items():
            rows.append(
                {
                    "data": e["source"],
                    "split": e["split"],
                    "model": display_name(m),
                    "images": r["n"],
                    "accuracy [95% CI]": _ci_cell(r, "accuracy"),
                    "AUC [95% CI]": _ci_cell(r, "auc"),
                    "seen in training": r["leaked_images_removed"],
                    "caveat": f"small set (< {SMALL_EXTRA:,} images): wide intervals" if e["small"] else "",
                }
            )
    return pd.DataFrame(rows).set_index(["data", "model"])


def category_intervals(result: dict) -> pd.DataFrame:
    """Per-category accuracy of each model and class with Wilson 95% intervals."""
    cols = {}
    for model, rep in result["reports"].items():
        for cat, row in rep["per_category"].items():
            for cls in ("REAL", "FAKE"):
                acc, ci = row[f"{cls}_accuracy"], row.get(f"{cls}_accuracy_ci95")
                cols.setdefault(f"{display_name(model)} {cls}", {})[cat] = (
                    f"{acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if acc is not None and ci else "-"
                )
    return pd.DataFrame(cols)
