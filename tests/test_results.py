"""The typed results of the study (study/results.py), where a run's settings come from, and the
report reading attributes rather than string paths."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from cifake_lib.study import results as R
from cifake_lib.study.profiles import resolve_settings

ROOT = Path(__file__).resolve().parents[1]


def _scores(acc: float, **extra) -> dict:
    ci = {m: [acc - 0.01, acc + 0.01] for m in ("accuracy", "precision", "recall", "f1", "auc")}
    return {
        "accuracy": acc,
        "precision": 0.9,
        "recall": 0.8,
        "f1": 0.85,
        "auc": 0.95,
        "n": 200,
        "confusion": {"tp": 80, "tn": 90, "fp": 10, "fn": 20},
        "ci95": ci,
        "average_precision": 0.94,
        "tpr_at_fpr": {"0.01": 0.5, "0.001": 0.25},
        **extra,
    }


def _run(recipe="paper", pretrained=False) -> dict:
    return {
        "recipe": recipe,
        "epochs": 10,
        "input_size": 32,
        "pretrained": pretrained,
        "train_images": 90_000,
        "best_epoch": 7,
        "batch_size": 128,
        "val_fraction": 0.1,
        "arithmetic": "fp32",
        "tf32": False,
    }


def _mcnemar(n=200) -> dict:
    return {
        "n": n,
        "both_correct": 150,
        "a_only": 20,
        "b_only": 10,
        "both_wrong": 20,
        "p_value": 0.09,
        "test": "McNemar exact (two-sided binomial on discordant pairs)",
    }


def _difference() -> dict:
    return {
        "accuracy": {"difference": 0.05, "ci95": [0.01, 0.09]},
        "auc": {"difference": 0.01, "ci95": [-0.01, 0.03]},
        "n_boot": 1000,
    }


def summary_json() -> dict:
    """A summary.json with every part filled in, as notebook 05 writes it."""
    bins = [{"confidence": 0.75, "accuracy": 0.7, "n": 12}, {"confidence": None, "accuracy": None, "n": 0}]
    spread = {"mean": 0.9, "std": 0.01, "n_seeds": 2, "values": [0.89, 0.91], "ci95": [0.81, 0.99]}
    return {
        "version": R.SUMMARY_VERSION,
        "profile": "cpu",
        "synthetic": False,
        "data": {"source": "zip cifake-train.zip", "fingerprint": "ab" * 32, "synthetic": False},
        "test_source": "carved from train",
        "eval_limit_per_class": None,
        "metrics": {"resnet18": _scores(0.95), "custom_cnn": _scores(0.9)},
        "runs": {"resnet18": _run(pretrained=True), "custom_cnn": _run()},
        "mcnemar": _mcnemar(),
        "difference": _difference(),
        "calibration": {
            m: {"temperature": 1.3, "ece": 0.02, "ece_scaled": 0.01, "val_n": 400, "bins": bins, "bins_scaled": bins}
            for m in ("resnet18", "custom_cnn")
        },
        "seeds": {m: {k: spread for k in ("accuracy", "precision", "recall", "f1", "auc")} for m in ("resnet18",)},
        "seed_mcnemar": [{"seed_run": 0, **_mcnemar()}, {"seed_run": 1, **_mcnemar()}],
        "seed_differences": [
            {
                "a": "custom_cnn, improved recipe",
                "b": "custom_cnn, paper recipe",
                "metric": "accuracy",
                "difference": {**spread, "mean": 0.02, "values": [0.019, 0.021], "ci95": [0.0073, 0.0327]},
            }
        ],
        "scratch": {"metrics": _scores(0.93), "run": _run(), "mcnemar_vs_pretrained": _mcnemar()},
        "recipes": {
            "custom_cnn": {
                "metrics": _scores(0.97),
                "run": _run("improved"),
                "mcnemar_vs_paper": _mcnemar(),
                "difference_vs_paper": _difference(),
            }
        },
        "baselines": {
            "logistic regression on raw pixels": {
                **_scores(0.7),
                "fit_seconds": 3.5,
                "train_images": 90_000,
                "converged": False,
            }
        },
        "extra": [
            {
                "path": "/data/other",
                "source": "dir /data/other",
                "fingerprint": "cd" * 32,
                "split": "train",
                "n": 6,
                "small": True,
                "metrics": {
                    m: {
                        **_scores(0.5, leaked_images_removed=0),
                        "auc": None,
                        "ci95": {**_scores(0.5)["ci95"], "auc": [None, None]},
                    }
                    for m in ("resnet18", "custom_cnn")
                },
            }
        ],
        "conclusion": ["ResNet-18 scores higher on accuracy."],
        "notes": ["a note"],
    }


def test_summary_round_trips_through_the_typed_results():
    raw = json.loads(json.dumps(summary_json(), allow_nan=False))  # standard JSON values only
    summary = R.StudySummary.from_json(raw)
    assert summary.to_json() == raw
    assert R.StudySummary.from_json(summary.to_json()).to_json() == raw
    # null stands for NaN: an AUC undefined on a one-class set, an empty reliability bin
    assert math.isnan(summary.extra[0].scores["resnet18"].auc)
    assert math.isnan(summary.extra[0].scores["resnet18"].interval("auc")[0])
    json.dumps(summary.to_json(), allow_nan=False)  # no NaN tokens: any JSON reader takes it
    # attributes, not string paths
    assert summary.models["resnet18"].scores.interval("accuracy") == (0.94, 0.96)
    assert summary.models["resnet18"].run.pretrained is True and summary.n == 200
    assert summary.recipes["custom_cnn"].difference_vs_paper.accuracy.ci95 == (0.01, 0.09)
    assert summary.recipes["custom_cnn"].improved.run.recipe == "improved"
    assert summary.scratch.mcnemar_vs_pretrained.a_only == 20
    assert summary.baselines["logistic regression on raw pixels"].converged is False
    assert summary.extra[0].scores["custom_cnn"].leaked_images_removed == 0
    assert [t.seed_run for t in summary.seed_mcnemar] == [0, 1]
    assert summary.seeds["resnet18"]["accuracy"].values == (0.89, 0.91)
    assert summary.seed_differences[0].difference.excludes_zero and summary.seed_differences[0].metric == "accuracy"
    assert summary.calibration["custom_cnn"].bins[0]["n"] == 12


def test_summary_save_and_load(tmp_path):
    summary = R.StudySummary.from_json(summary_json())
    path = summary.save(tmp_path / "evaluation" / "summary.json")
    assert R.StudySummary.load(path).to_json() == summary.to_json()
    assert R.StudySummary.load(path).models == summary.models  # no NaN there: equal as values
    assert json.loads(path.read_text())["version"] == R.SUMMARY_VERSION


def test_summary_versions():
    old = {k: v for k, v in summary_json().items() if k != "version"}  # version 1 had no field
    with pytest.raises(ValueError, match="predates the typed results .* run notebook 05 again"):
        R.StudySummary.from_json(old)
    with pytest.raises(ValueError, match="newer than this cifake"):
        R.StudySummary.from_json({**summary_json(), "version": R.SUMMARY_VERSION + 1})


def test_scored_model_without_predictions_says_why():
    scored = R.StudySummary.from_json(summary_json()).models["resnet18"]
    with pytest.raises(ValueError, match="not kept in summary.json"):
        scored.predictions  # noqa: B018


def test_seed_spread():
    one, two = R.seed_spread([0.9]), R.seed_spread([0.9, 0.92])
    assert one.std is None and one.n_seeds == 1
    assert two.mean == pytest.approx(0.91) and two.std == pytest.approx(0.0141421, rel=1e-4)


# ----------------------------------------------------------------------------- where settings come from


def test_each_setting_says_where_it_came_from():
    resolved = resolve_settings(
        "smoke",
        "custom_cnn",
        "improved",
        parameters={"batch_size": 32, "lr": None, "seed": 3},
        explicit={"epochs": 2},
        given_by={"batch_size": "BATCH_SIZE", "lr": "LR", "seed": "SEED"},
    )
    cfg = resolved.config
    assert (cfg.batch_size, cfg.seed, cfg.epochs, cfg.limit_per_class) == (32, 3, 2, 150)
    assert resolved.source("batch_size") == "parameter BATCH_SIZE"  # the notebook's parameter, by name
    assert resolved.source("lr") == "recipe"  # LR=None keeps the layer below: improved's 2e-3
    assert resolved.source("epochs") == "explicit"  # over the profile's 1 and the recipe's
    assert resolved.source("limit_per_class") == "profile"
    assert resolved.source("optimizer") == "recipe" and cfg.optimizer == "adamw"
    assert resolved.source("select_metric") == "default"
    table = resolved.table()
    assert table.loc["batch_size", "from"] == "parameter BATCH_SIZE" and table.loc["batch_size", "value"] == "32"
    short = resolved.table(set_only=True)
    assert "select_metric" not in short.index and "batch_size" in short.index


def test_profile_config_is_the_resolved_config():
    from cifake_lib.study.profiles import profile_config

    assert (
        profile_config("cpu", "resnet18", epochs=3)
        == resolve_settings("cpu", "resnet18", explicit={"epochs": 3}).config
    )
    assert profile_config("cpu", "custom_cnn", limit_per_class=0).limit_per_class is None


# ----------------------------------------------------------------------------- the report reads attributes


def test_export_reads_the_summary_by_attribute():
    """No subscript of export.py names a key of summary.json: the report reads the typed summary."""
    keys = set(summary_json()) | {"ci95", "difference_vs_paper", "mcnemar_vs_paper", "run", "n", "accuracy", "auc"}
    tree = ast.parse((ROOT / "cifake_lib" / "export.py").read_text())

    def root(node):
        while isinstance(node, (ast.Subscript, ast.Attribute)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    walks = [
        (node.lineno, node.slice.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and node.slice.value in keys
        and root(node) not in ("meta", "paper", "out")  # run facts, the paper's numbers, notebook outputs
    ]
    assert walks == []


def test_front_page_from_the_typed_summary():
    from cifake_lib import export

    summary = R.StudySummary.from_json(summary_json())
    meta = {
        "profile": "cpu",
        "date": "2026-12-06 05:00",
        "git_commit": "0123456789abcdef",
        "data": {"synthetic": False, "fingerprint": "ab" * 32, "source": "zip cifake-train.zip"},
        "overrides": {"EPOCHS": 1},
    }
    page = export.front_html(meta, summary, [("A figure <caption>", "iVBOR")])
    assert "95.00%" in page and "Custom CNN" in page and "improved recipe (ours)" in page
    assert "ResNet-18 (paper)" in page and "baseline: logistic regression on raw pixels" in page
    assert "A figure &lt;caption&gt;" in page  # escaped by the template
    assert "Made with overrides of the cpu profile (EPOCHS=1)" in page
    assert "Custom CNN at 32x32 px, trained from scratch on 90,000 training images, improved recipe" in page
    rows = export.headline_rows(summary, synthetic=True)
    assert not [r for r in rows if r.kind == "paper"]  # demo numbers never beside the paper's
    assert export.front_html(meta, None, []).count("No evaluation summary was found") == 2
