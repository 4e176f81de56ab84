"""05_comparative_evaluation, one step per function: score a run, then each statistic on the
scored runs, then the summary. Every step returns a typed value (:mod:`..results`); the tables
and plot inputs below turn those values into what a notebook cell displays.

The notebook calls the steps in order (score ResNet-18, score the custom CNN, the paired
difference, McNemar, the baselines, the other data, the seeds, the from-scratch twin, the
improved recipe, calibration, then :func:`summarize`), so a student sees each statistic
computed in its own cell.
"""

from __future__ import annotations

import pandas as pd

from ...engine.evaluate import evaluate_model, write_evaluation
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
from ..results import (
    Baseline,
    Calibration,
    ExtraSet,
    McNemar,
    PairedDifference,
    RecipeComparison,
    ScoredModel,
    ScratchComparison,
    SeedComparison,
    SeedPairTest,
    StudySummary,
    seed_spread,
)

MODELS_COMPARED = ("resnet18", "custom_cnn")
SMALL_EXTRA = 2_000  # fewer scored images than this: the extra row gets a caveat
SEED_BOOT = 200  # bootstrap draws for further seed runs (they feed mean +/- std, not intervals)


# ----------------------------------------------------------------------------- scoring


def score_run(
    study: Study, model: str, tag: str = "", seed_index: int = 0, n_boot: int = 1000, split: str = "test"
) -> ScoredModel:
    """``best.pt`` of one run scored on one part of the study's split (``test``, or ``val`` for
    calibration), with the per-class limit of the profile or EVAL_LIMIT_PER_CLASS; written to
    OUT/evaluation/<run name>/ (the validation scores to <run name>/val/)."""
    ev = evaluate_model(
        study.layout.require_run(model, seed_index, tag),
        study.load_data(),
        split=split,
        splits=study.load_splits(),
        limit_per_class=study.eval_limit(),
        n_boot=n_boot,
        progress=split == "test",
    )
    name = study.layout.run_name(model, seed_index, tag)
    write_evaluation(ev, study.layout.evaluation_dir(name if split == "test" else f"{name}/{split}"))
    return ScoredModel.from_evaluation(ev)


def score_seed_runs(
    study: Study, main: list[ScoredModel], n_boot: int = SEED_BOOT, tag: str = ""
) -> dict[str, list[ScoredModel]]:
    """{model: [the main run, seed run 1, ...]}: every further seed run 03/04 trained (SEEDS),
    of the paper-recipe runs or, with ``tag="improved"``, of the improved-recipe runs."""
    out = {}
    for scored in main:
        runs = study.layout.seed_runs(scored.model, tag=tag)
        further = [score_run(study, scored.model, tag=tag, seed_index=i, n_boot=n_boot) for i in range(1, len(runs))]
        out[scored.model] = [scored, *further]
    return out


def seed_spreads(seed_runs: dict[str, list[ScoredModel]]) -> dict:
    """{model: {metric: SeedSpread}}: mean, standard deviation and t interval over the seed runs."""
    return {m: {k: seed_spread([s.scores.value(k) for s in runs]) for k in METRICS} for m, runs in seed_runs.items()}


def seed_pair_tests(seed_runs: dict[str, list[ScoredModel]], models=MODELS_COMPARED) -> tuple[SeedPairTest, ...]:
    """McNemar between the two networks' runs with the same seed index."""
    a, b = (seed_runs[m] for m in models)
    return tuple(SeedPairTest(i, mcnemar(x, y)) for i, (x, y) in enumerate(zip(a, b)))


def _seed_comparison(a: list[ScoredModel], b: list[ScoredModel], names: tuple[str, str], metric: str):
    n = min(len(a), len(b))  # run i against run i: the same seed, the same test images
    diffs = [x.scores.value(metric) - y.scores.value(metric) for x, y in zip(a[:n], b[:n])]
    return SeedComparison(names[0], names[1], metric, seed_spread(diffs))


def seed_difference(
    seed_runs: dict[str, list[ScoredModel]], models=MODELS_COMPARED, metric: str = "accuracy"
) -> SeedComparison:
    """The first network minus the second, seed by seed, with a t interval over seeds."""
    return _seed_comparison(seed_runs[models[0]], seed_runs[models[1]], models, metric)


def improved_seed_runs(study: Study, recipes: dict, n_boot: int = SEED_BOOT) -> dict[str, list[ScoredModel]]:
    """{model: every improved-recipe seed run, scored}, for the models 03/04 trained with it."""
    return score_seed_runs(study, [c.improved for c in recipes.values()], n_boot=n_boot, tag="improved")


def recipe_seed_differences(
    paper_runs: dict[str, list[ScoredModel]], improved_runs: dict[str, list[ScoredModel]], metric: str = "accuracy"
) -> tuple[SeedComparison, ...]:
    """For each model trained with both recipes: improved minus paper, seed by seed."""
    return tuple(
        _seed_comparison(runs, paper_runs[m], (f"{m}, improved recipe", f"{m}, paper recipe"), metric)
        for m, runs in improved_runs.items()
    )


# ----------------------------------------------------------------------------- statistics


def _same_images(a: ScoredModel, b: ScoredModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two prediction frames, after checking that they score the same images in the same order."""
    pa, pb = a.predictions, b.predictions
    if list(pa["path"]) != list(pb["path"]):
        raise StudyError(f"{a.model} and {b.model} were not scored on the same images")
    return pa, pb


def paired_difference(a: ScoredModel, b: ScoredModel, n_boot: int = 1000) -> PairedDifference:
    """Accuracy and AUC of A minus B on the same images, with paired bootstrap 95% intervals."""
    pa, pb = _same_images(a, b)
    return PairedDifference.from_json(
        paired_bootstrap_difference(pa["label"], pa["p_fake"], pb["p_fake"], n_boot=n_boot)
    )


def mcnemar(a: ScoredModel, b: ScoredModel) -> McNemar:
    """McNemar's exact test: only the images on which A and B disagree count."""
    pa, pb = _same_images(a, b)
    return McNemar.from_json(mcnemar_test(pa["label"], pa["pred"], pb["pred"]))


def calibrate_all(study: Study, models: list[ScoredModel]) -> dict[str, Calibration]:
    """{model: Calibration} of each scored network (a temperature fitted on its validation split)."""
    return {s.model: calibrate(study, s) for s in models}


def calibrate(study: Study, scored: ScoredModel) -> Calibration:
    """A temperature fitted on the run's validation logits; ECE on test before and after."""
    val = score_run(study, scored.model, n_boot=1, split="val").evaluation
    t = fit_temperature(val.predictions["label"], logit_margin(val.logits))
    y, p = scored.predictions["label"], scored.predictions["p_fake"]
    scaled = apply_temperature(logit_margin(scored.evaluation.logits), t)
    return Calibration(
        temperature=t,
        ece=expected_calibration_error(y, p),
        ece_scaled=expected_calibration_error(y, scaled),
        val_n=int(val.metrics["n"]),
        bins=tuple(reliability_bins(y, p)),
        bins_scaled=tuple(reliability_bins(y, scaled)),
    )


def study_baselines(study: Study, reference: ScoredModel, n_boot: int = 1000) -> dict[str, Baseline]:
    """The simple baselines, fitted on the training images of ``reference``'s run and scored on
    the images it was scored on."""
    from ...data.splits import load_manifest

    data = study.load_data()
    train = load_manifest(study.layout.require_run(reference.model) / "splits.json", data).train
    test = data.index_of(reference.predictions["path"].tolist())
    fitted = fit_baselines(data.images, data.labels, train, test, n_boot=n_boot)
    return {name: Baseline.from_json(name, rep) for name, rep in fitted.items()}


def score_extra_sets(study: Study, models=MODELS_COMPARED, n_boot: int = 1000) -> tuple[ExtraSet, ...]:
    """Each model's main run on every EXTRA_TEST_DATA set (data it was not trained on)."""
    return tuple(
        score_extra_set(study, i, p, models, n_boot) for i, p in enumerate(study.params.get("EXTRA_TEST_DATA", []))
    )


def score_extra_set(study: Study, index: int, path: str, models=MODELS_COMPARED, n_boot: int = 1000) -> ExtraSet:
    from ...data.dataset import load_cifake
    from ..results import Scores

    extra = load_cifake(path, progress=False, require_train=False)
    split = "test" if extra.has_test else "train"
    scores = {}
    for model in models:
        ev = evaluate_model(study.layout.require_run(model), extra, split=split, n_boot=n_boot, progress=False)
        write_evaluation(ev, study.layout.evaluation_dir(f"extra{index}/{model}"))
        scores[model] = Scores.from_metrics(ev.metrics)
    n = next(iter(scores.values())).n
    return ExtraSet(str(path), extra.source, extra.fingerprint, split, n, n < SMALL_EXTRA, scores)


def score_scratch_twin(study: Study, pretrained: ScoredModel, n_boot: int = 1000) -> ScratchComparison | None:
    """The from-scratch ResNet-18 twin against the pretrained one, when 03 trained it (else None,
    with a note when the main run itself could not be pretrained)."""
    run = study.layout.run_dir("resnet18", tag="scratch")
    if not (run / "best.pt").exists():
        if pretrained.run.pretrained is False:
            study.notes.append(
                "Pretrained ImageNet weights were not available, so the ResNet-18 here was trained "
                "from scratch and the paper's pretrained-vs-scratch hypothesis could not be tested."
            )
        return None
    scratch = score_run(study, "resnet18", tag="scratch", n_boot=n_boot)
    return ScratchComparison(scratch, mcnemar(pretrained, scratch))


def score_improved_runs(study: Study, main: list[ScoredModel], n_boot: int = 1000) -> dict[str, RecipeComparison]:
    """{model: improved-recipe run against the paper-recipe run} for each model 03/04 trained
    with the improved recipe."""
    out = {}
    for paper in main:
        if not (study.layout.run_dir(paper.model, tag="improved") / "best.pt").exists():
            continue
        improved = score_run(study, paper.model, tag="improved", n_boot=n_boot)
        out[paper.model] = RecipeComparison(
            improved, mcnemar(improved, paper), paired_difference(improved, paper, n_boot)
        )
    return out


# ----------------------------------------------------------------------------- the summary


def summarize(
    study: Study,
    models: list[ScoredModel],
    *,
    mcnemar: McNemar | None = None,
    difference: PairedDifference | None = None,
    calibration: dict | None = None,
    seeds: dict | None = None,
    seed_mcnemar: tuple = (),
    network_seeds: SeedComparison | None = None,
    recipe_seeds: tuple = (),
    scratch: ScratchComparison | None = None,
    recipes: dict | None = None,
    baselines: dict | None = None,
    extra: tuple = (),
) -> StudySummary:
    """The study's results in one typed value, with the conclusion computed from them; written
    to OUT/evaluation/summary.json (read by the report)."""
    data = study.load_data()
    synthetic = bool(data.synthetic)
    calibration, seeds, recipes, baselines = calibration or {}, seeds or {}, recipes or {}, baselines or {}
    seed_differences = ((network_seeds,) if network_seeds else ()) + tuple(recipe_seeds)
    sentences = conclusion(models, mcnemar, synthetic=synthetic)
    sentences += [seed_sentence(c, synthetic) for c in seed_differences]
    sentences += extra_sentences(scratch, calibration)
    if not synthetic:
        by_model = {s.model: s for s in models}
        sentences += [recipe_sentence(c, by_model[m]) for m, c in recipes.items()]
        if difference is not None:
            sentences.append(difference_sentence(difference, models))
    if baselines:
        sentences.append(shortcut_sentence(baselines, models))
    summary = StudySummary(
        profile=study.profile,
        synthetic=synthetic,
        data=data.provenance(),
        test_source=study.load_splits().settings.get("test_source"),
        eval_limit_per_class=study.eval_limit(),
        models={s.model: s for s in models},
        mcnemar=mcnemar,
        difference=difference,
        calibration=calibration,
        seeds=seeds,
        seed_mcnemar=tuple(seed_mcnemar),
        seed_differences=tuple(seed_differences),
        scratch=scratch,
        recipes=recipes,
        baselines=baselines,
        extra=tuple(extra),
        conclusion=tuple(sentences),
        notes=tuple(study.notes),
    )
    summary.save(study.layout.summary_path)
    return summary


# ----------------------------------------------------------------------------- sentences


def difference_sentence(d: PairedDifference, models: list[ScoredModel]) -> str:
    a, b = (display_name(s.model) for s in models)
    acc, auc = d.accuracy, d.auc
    return (
        f"{a} minus {b}: accuracy {acc.difference * 100:+.2f} percentage points (paired bootstrap 95% CI "
        f"{acc.ci95[0] * 100:+.2f} to {acc.ci95[1] * 100:+.2f}), AUC {auc.difference:+.4f} "
        f"({auc.ci95[0]:+.4f} to {auc.ci95[1]:+.4f})."
    )


def recipe_sentence(c: RecipeComparison, paper: ScoredModel) -> str:
    """Improved against paper recipe for one model, from the measured numbers."""
    imp, d, mc = c.improved.scores, c.difference_vs_paper.accuracy, c.mcnemar_vs_paper
    lo, hi = imp.interval("accuracy")
    return (
        f"{display_name(paper.model)} with the improved recipe: accuracy {imp.accuracy:.2%} (95% CI "
        f"{lo:.2%} to {hi:.2%}), AUC {imp.auc:.4f}, against "
        f"{paper.scores.accuracy:.2%} and {paper.scores.auc:.4f} with the paper's recipe: {d.difference * 100:+.2f} "
        f"percentage points (paired bootstrap 95% CI {d.ci95[0] * 100:+.2f} to {d.ci95[1] * 100:+.2f}; "
        f"McNemar p = {mc.p_value:.3g})."
    )


def _run_name(name: str) -> str:
    model, _, recipe = name.partition(", ")
    return display_name(model) + (f" ({recipe})" if recipe else "")


def seed_sentence(c: SeedComparison, synthetic: bool = False) -> str:
    """A difference between two recipes or architectures at the level of training runs, in one
    sentence: it names a winner only when the seed-level 95% interval excludes zero, says "one
    run" when there is one per arm, and on synthetic demo data gives the numbers only."""
    a, b, d = _run_name(c.a), _run_name(c.b), c.difference
    if d.n_seeds < 2:
        return (
            f"{a} minus {b}: {c.metric} {d.mean * 100:+.2f} percentage points from one run of each, so no "
            "seed-level interval: the image-level tests above compare these two checkpoints, not the recipes or "
            "architectures behind them (SEEDS in notebooks 03/04 trains more runs)."
        )
    lo, hi = d.ci95
    verdict = (
        f"a difference at the level of training runs, in favour of {a if d.mean > 0 else b}"
        if d.excludes_zero
        else "no difference beyond seed-to-seed variation"
    )
    numbers = (
        f"{a} minus {b} over {d.n_seeds} seeds: {c.metric} {d.mean * 100:+.2f} percentage points (per seed "
        + ", ".join(f"{v * 100:+.2f}" for v in d.values)
        + f"; seed-level 95% CI {lo * 100:+.2f} to {hi * 100:+.2f}, t over seeds)"
    )
    return numbers + ("." if synthetic else f": {verdict}.")


def extra_sentences(scratch: ScratchComparison | None, calibration: dict) -> list[str]:
    """Sentences on pretraining and calibration, from the measured numbers."""
    out = []
    if scratch is not None:
        mc = scratch.mcnemar_vs_pretrained
        out.append(
            f"ResNet-18 from scratch reaches accuracy {scratch.scratch.scores.accuracy:.4f}; against the "
            f"pretrained one, McNemar's p = {mc.p_value:.3g} (pretrained alone right on {mc.a_only:,}, "
            f"scratch alone on {mc.b_only:,})."
        )
    for m, c in calibration.items():
        out.append(
            f"{display_name(m)}: expected calibration error {c.ece:.4f}, "
            f"{c.ece_scaled:.4f} after temperature scaling (T = {c.temperature:.2f}, fitted on validation)."
        )
    return out


def paper_notes() -> list[str]:
    """What the paper's own numbers imply (its evaluation set, its recall claim, the custom CNN)."""
    return compare_paper_notes()


# ----------------------------------------------------------------------------- tables and plot inputs


def scores_table(scored: ScoredModel) -> pd.DataFrame:
    """One scored run: what ran, each metric with its 95% interval, and the confusion counts."""
    s, run = scored.scores, scored.run
    rows = [("run", f"{display_name(scored.model)}, {run.recipe} recipe, best epoch {run.best_epoch}", "")]
    rows += [(m, round(s.value(m), 4), f"[{s.interval(m)[0]:.4f}, {s.interval(m)[1]:.4f}]") for m in METRICS]
    rows += [(f"{k.upper()} (images)", s.confusion[k], "") for k in ("tp", "fn", "tn", "fp")]
    rows.append(("images (FAKE / REAL)", f"{s.n:,} ({s.n_fake:,} / {s.n_real:,})", ""))
    frame = pd.DataFrame(rows, columns=["metric", "value", "95% CI (bootstrap)"]).set_index("metric")
    frame.attrs["caption"] = (
        f"{display_name(scored.model)}: {scored.run.recipe} recipe, best epoch {scored.run.best_epoch}"
    )
    return frame


def metrics_table(models: list[ScoredModel], synthetic: bool) -> pd.DataFrame:
    return comparison_table(models, synthetic=synthetic)


def difference_table(d: PairedDifference, models: list[ScoredModel]) -> pd.DataFrame:
    """Accuracy and AUC of the first network minus the second, with paired bootstrap intervals."""
    a, b = (display_name(s.model) for s in models)
    return pd.DataFrame(
        [
            {
                "metric": f"{k}: {a} - {b}",
                "difference": round(getattr(d, k).difference, 4),
                "95% CI (paired bootstrap)": f"[{getattr(d, k).ci95[0]:+.4f}, {getattr(d, k).ci95[1]:+.4f}]",
                "bootstrap draws": d.n_boot,
            }
            for k in ("accuracy", "auc")
        ]
    ).set_index("metric")


def mcnemar_table(mc: McNemar, models: list[ScoredModel]) -> pd.DataFrame:
    a, b = (display_name(s.model) for s in models)
    rows = [
        ("both correct", mc.both_correct),
        (f"only {a} correct", mc.a_only),
        (f"only {b} correct", mc.b_only),
        ("both wrong", mc.both_wrong),
        ("p-value (exact)", f"{mc.p_value:.3g}"),
    ]
    return pd.DataFrame(rows, columns=["", "images"]).set_index("")


def _ci_cell(s, key: str) -> str:
    lo, hi = s.interval(key)
    return f"{s.value(key):.4f} [{lo:.4f}, {hi:.4f}]"


def _difference_cell(d) -> str:
    return f"{d.difference:+.4f} [{d.ci95[0]:+.4f}, {d.ci95[1]:+.4f}]"


def baselines_table(models: list[ScoredModel], baselines: dict) -> pd.DataFrame:
    """The simple baselines beside both networks, on the same test images, with 95% intervals."""
    rows = [
        {
            "model": f"{display_name(s.model)} (network)",
            "accuracy [95% CI]": _ci_cell(s.scores, "accuracy"),
            "AUC [95% CI]": _ci_cell(s.scores, "auc"),
            "training images": s.run.train_images,
            "fit time (s)": None,
        }
        for s in models
    ]
    rows += [
        {
            "model": name,
            "accuracy [95% CI]": _ci_cell(b.scores, "accuracy"),
            "AUC [95% CI]": _ci_cell(b.scores, "auc"),
            "training images": b.train_images,
            "fit time (s)": round(b.fit_seconds, 1),
        }
        for name, b in baselines.items()
    ]
    return pd.DataFrame(rows).set_index("model")


def extra_data_table(extra: tuple[ExtraSet, ...]) -> pd.DataFrame:
    """One row per EXTRA_TEST_DATA set and model (cross-source / cross-generator), with a caveat when small."""
    if not extra:
        return pd.DataFrame({"note": ["no EXTRA_TEST_DATA given: only the study's own test images were scored"]})
    rows = []
    for e in extra:
        for m, s in e.scores.items():
            rows.append(
                {
                    "data": e.source,
                    "split": e.split,
                    "model": display_name(m),
                    "images": s.n,
                    "accuracy [95% CI]": _ci_cell(s, "accuracy"),
                    "AUC [95% CI]": _ci_cell(s, "auc"),
                    "seen in training": s.leaked_images_removed,
                    "caveat": f"small set (< {SMALL_EXTRA:,} images): wide intervals" if e.small else "",
                }
            )
    return pd.DataFrame(rows).set_index(["data", "model"])


def confusion_panels(models: list[ScoredModel], synthetic: bool) -> dict:
    """Our confusion counts next to the paper's, for plots.plot_confusion_matrices."""
    panels = {}
    for s in models:
        panels[f"{display_name(s.model)} (ours, n={s.scores.n:,})"] = s.scores.confusion
        if s.model in PAPER_CONFUSION and not synthetic:  # demo numbers never beside the paper's
            panels[f"{display_name(s.model)} (paper: 4,957 FAKE, 5,043 REAL)"] = PAPER_CONFUSION[s.model]
    return panels


def roc_inputs(models: list[ScoredModel]) -> dict:
    return {display_name(s.model): (s.predictions["label"], s.predictions["p_fake"], s.scores.auc) for s in models}


def category_frame(models: list[ScoredModel]) -> pd.DataFrame:
    """Accuracy per CIFAR-10 category (rows) for each model and class (columns)."""
    cols = {}
    for s in models:
        for cat, row in s.evaluation.metrics["per_category"].items():
            for cls in ("REAL", "FAKE"):
                cols.setdefault(f"{display_name(s.model)} {cls}", {})[cat] = row[f"{cls}_accuracy"]
    return pd.DataFrame(cols)


def category_intervals(models: list[ScoredModel]) -> pd.DataFrame:
    """Per-category accuracy of each model and class with Wilson 95% intervals."""
    cols = {}
    for s in models:
        for cat, row in s.evaluation.metrics["per_category"].items():
            for cls in ("REAL", "FAKE"):
                acc, ci = row[f"{cls}_accuracy"], row.get(f"{cls}_accuracy_ci95")
                cols.setdefault(f"{display_name(s.model)} {cls}", {})[cat] = (
                    f"{acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if acc is not None and ci else "-"
                )
    return pd.DataFrame(cols)


def leak_free_table(models: list[ScoredModel]) -> pd.DataFrame:
    rows = []
    for s in models:
        metrics = s.evaluation.metrics
        lf, nd = metrics.get("leak_free"), metrics.get("near_duplicate_free")
        rows.append(
            {
                "model": display_name(s.model),
                "test images": s.scores.n,
                "leaked (bytes also in train/val)": metrics.get("leaked_images_removed", 0),
                "accuracy (all)": round(s.scores.accuracy, 4),
                "accuracy (leak-free)": round(lf["accuracy"], 4) if lf else "same images (no leaks)",
                "near-copies of train/val images": metrics.get("near_duplicates_removed"),
                "accuracy (without near-copies)": round(nd["accuracy"], 4) if nd else "same images (none)",
            }
        )
    return pd.DataFrame(rows).set_index("model")


def evaluation_seeds_table(seeds: dict) -> pd.DataFrame:
    """Test metrics per seed run, with mean +/- standard deviation and a t 95% interval over seeds."""
    rows = {}
    for model, stats in seeds.items():
        for m, st in stats.items():
            col = f"{display_name(model)} (n={st.n_seeds})"
            per_seed = ", ".join(f"{v:.4f}" for v in st.values)
            if st.std is None:
                rows.setdefault(m, {})[col] = f"{st.mean:.4f} (one run)"
            else:
                lo, hi = st.ci95
                rows.setdefault(m, {})[col] = f"{st.mean:.4f} +/- {st.std:.4f} [{lo:.4f}, {hi:.4f}] ({per_seed})"
    return pd.DataFrame(rows).T


def seed_difference_table(comparisons) -> pd.DataFrame:
    """Seed-level differences: per-seed values, mean, standard deviation and the t interval (a
    note when there is nothing to compare, e.g. no improved-recipe runs)."""
    if not comparisons:
        return pd.DataFrame({"note": ["nothing to compare: no model was trained with both recipes in this run"]})
    rows = []
    for c in comparisons:
        d = c.difference
        rows.append(
            {
                "comparison": f"{_run_name(c.a)} - {_run_name(c.b)}",
                "metric": c.metric,
                "per seed": ", ".join(f"{v:+.4f}" for v in d.values),
                "mean": round(d.mean, 4),
                "std": "one run" if d.std is None else round(d.std, 4),
                "seed-level 95% CI": "one run: none" if d.ci95 is None else f"[{d.ci95[0]:+.4f}, {d.ci95[1]:+.4f}]",
            }
        )
    return pd.DataFrame(rows).set_index("comparison")


def seed_pair_table(tests: tuple[SeedPairTest, ...], models=MODELS_COMPARED) -> pd.DataFrame:
    """McNemar's test per seed index between the two networks' runs."""
    a, b = (display_name(m) for m in models)
    rows = [
        {
            "seed run": t.seed_run,
            f"only {a} correct": t.mcnemar.a_only,
            f"only {b} correct": t.mcnemar.b_only,
            "images": t.mcnemar.n,
            "p-value (exact)": f"{t.mcnemar.p_value:.3g}",
        }
        for t in tests
    ]
    return pd.DataFrame(rows).set_index("seed run")


def scratch_table(pretrained: ScoredModel, scratch: ScratchComparison | None) -> pd.DataFrame:
    """Pretrained vs from-scratch ResNet-18 on the same test images (a note when not run)."""
    if scratch is None:
        return pd.DataFrame({"note": ["no from-scratch twin: see the notes above"]})
    rows = [
        {
            "run": name,
            "accuracy": round(s.accuracy, 4),
            "accuracy 95% CI": f"[{s.interval('accuracy')[0]:.4f}, {s.interval('accuracy')[1]:.4f}]",
            "AUC": round(s.auc, 4),
        }
        for name, s in (("pretrained", pretrained.scores), ("from scratch", scratch.scratch.scores))
    ]
    frame = pd.DataFrame(rows).set_index("run")
    frame.attrs["mcnemar_p"] = scratch.mcnemar_vs_pretrained.p_value
    return frame


def recipes_table(models: list[ScoredModel], recipes: dict) -> pd.DataFrame:
    """Paper vs improved recipe for each model trained with both, on the same test images."""
    if not recipes:
        return pd.DataFrame({"note": ["no model was trained with the improved recipe in this profile"]})
    by_model = {s.model: s for s in models}
    rows = []
    for model, c in recipes.items():
        for recipe, s in (("paper", by_model[model]), ("improved", c.improved)):
            rows.append(
                {
                    "model": display_name(model),
                    "recipe": recipe,
                    "accuracy [95% CI]": _ci_cell(s.scores, "accuracy"),
                    "AUC [95% CI]": _ci_cell(s.scores, "auc"),
                    "best epoch": s.run.best_epoch,
                    "images": s.scores.n,
                }
            )
        d = c.difference_vs_paper
        rows.append(
            {
                "model": display_name(model),
                "recipe": "improved - paper",
                "accuracy [95% CI]": _difference_cell(d.accuracy),
                "AUC [95% CI]": _difference_cell(d.auc),
                "best epoch": None,
                "images": f"McNemar p = {c.mcnemar_vs_paper.p_value:.3g}",
            }
        )
    return pd.DataFrame(rows).set_index(["model", "recipe"])


def calibration_table(calibration: dict) -> pd.DataFrame:
    rows = [
        {
            "model": display_name(m),
            "ECE (test)": round(c.ece, 4),
            "temperature (fitted on val)": round(c.temperature, 3),
            "ECE after scaling": round(c.ece_scaled, 4),
            "val images": c.val_n,
        }
        for m, c in calibration.items()
    ]
    return pd.DataFrame(rows).set_index("model")


def calibration_inputs(calibration: dict, scaled: bool = False) -> dict:
    """{model: (reliability bins, ECE)} before (or, ``scaled``, after) temperature scaling."""
    return {
        display_name(m): (list(c.bins_scaled), c.ece_scaled) if scaled else (list(c.bins), c.ece)
        for m, c in calibration.items()
    }
