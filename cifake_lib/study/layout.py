"""The study folder (``OUT``): where each notebook writes what a later one reads.

One object knows every path, so the notebook set-up, the stages and the report agree:

    OUT/audit.json                        01: the data audit
    OUT/splits.json                       02: the split manifest every later notebook uses
    OUT/runs/<model>[_<tag>][_seed<i>]/   03/04: run folders (best.pt, history.csv, ...); tags:
                                          improved (the improved recipe), scratch
    OUT/evaluation/<name>/                05: predictions.csv, logits.npy, metrics.json per run
    OUT/evaluation/summary.json           05: the headline numbers and the conclusion
    OUT/evaluation/robustness.csv         07: scores under perturbations
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class StudyError(RuntimeError):
    """Something a notebook needs is missing; the message names the notebook that makes it."""


def training_notebook(model: str) -> str:
    return "03_train_resnet18" if model.startswith("resnet18") else "04_train_custom_cnn"


@dataclass(frozen=True)
class StudyLayout:
    out: Path

    @property
    def audit_path(self) -> Path:
        return self.out / "audit.json"

    @property
    def splits_path(self) -> Path:
        return self.out / "splits.json"

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    def run_name(self, model: str, seed_index: int = 0, tag: str = "") -> str:
        name = model + (f"_{tag}" if tag else "")
        return name if seed_index == 0 else f"{name}_seed{seed_index}"

    def run_dir(self, model: str, seed_index: int = 0, tag: str = "") -> Path:
        return self.runs_dir / self.run_name(model, seed_index, tag)

    @property
    def eval_dir(self) -> Path:
        return self.out / "evaluation"

    def evaluation_dir(self, name: str) -> Path:
        """Where 05 writes the evaluation of run ``name`` (a run_name, or ``<model>/val``)."""
        return self.eval_dir / name

    @property
    def summary_path(self) -> Path:
        return self.eval_dir / "summary.json"

    @property
    def robustness_path(self) -> Path:
        return self.eval_dir / "robustness.csv"

    # ------------------------------------------------------------------ what must exist
    def require_splits(self) -> Path:
        if not self.splits_path.exists():
            raise StudyError(
                f"no split manifest at {self.splits_path}: run 02_preprocessing.ipynb first (with the same OUT)"
            )
        return self.splits_path

    def require_run(self, model: str, seed_index: int = 0, tag: str = "") -> Path:
        run = self.run_dir(model, seed_index, tag)
        if not (run / "best.pt").exists():
            raise StudyError(
                f"no trained {model} at {run}: run {training_notebook(model)}.ipynb first (with the same OUT)"
            )
        return run

    def seed_runs(self, model: str, tag: str = "") -> list[Path]:
        """Every finished seed run of a model (seed 0 first)."""
        runs = [self.require_run(model, tag=tag)]
        while (self.run_dir(model, len(runs), tag) / "best.pt").exists():
            runs.append(self.run_dir(model, len(runs), tag))
        return runs

    def require_predictions(self, model: str) -> Path:
        path = self.evaluation_dir(model) / "predictions.csv"
        if not path.exists():
            raise StudyError(f"no test predictions for {model} at {path}: run 05_comparative_evaluation.ipynb first")
        return path

    # ------------------------------------------------------------------ what the report reads
    def summary(self):
        """The typed StudySummary 05 wrote (None before 05 has run)."""
        from .results import StudySummary

        return StudySummary.load(self.summary_path) if self.summary_path.exists() else None

    def run_configs(self) -> list[dict]:
        """config.json of every run of the study."""
        return [json.loads(p.read_text()) for p in sorted(self.runs_dir.glob("*/config.json"))]

    def test_source(self) -> str | None:
        if not self.splits_path.exists():
            return None
        return json.loads(self.splits_path.read_text())["settings"]["test_source"]
