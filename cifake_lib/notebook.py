"""Notebook set-up: turn the `parameters` cell into a validated study configuration.

Papermill only warns about parameter names a notebook does not declare; :func:`setup` fails on
them instead, and on values of the wrong type, so a typo in a batch run stops the run at once.
All notebooks of a study share one output folder (``OUT``): 02 writes the split manifest there,
03 and 04 their runs, 05 the evaluation; a later notebook says what is missing and which
notebook makes it.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .config import ConfigError, TrainConfig
from .profiles import PROFILES, profile_config, resolve_profile

# name -> (accepted types, description); None in the types means "profile default"
PARAMETERS = {
    "DATA": ((str,), "CIFAKE folder or zip; '' = $CIFAKE_DATA, data/, else synthetic demo data"),
    "PROFILE": ((str,), "auto, smoke, cpu or paper"),
    "OUT": ((str,), "study folder shared by the notebooks; '' = report/work"),
    "SEED": ((int,), "random seed"),
    "MODEL": ((str,), "model name"),
    "EPOCHS": ((int, type(None)), "epochs (None = profile)"),
    "IMAGE_SIZE": ((int, type(None)), "model input size in pixels (None = profile)"),
    "BATCH_SIZE": ((int, type(None)), "batch size (None = profile)"),
    "LR": ((float, int, type(None)), "Adam learning rate (None = 1e-3)"),
    "PRETRAINED": ((bool, str), "True, False or 'auto' (ImageNet weights when available)"),
    "WEIGHTS": ((str,), "local ImageNet ResNet-18 weights file ('' = torch hub cache)"),
    "AUGMENT": ((bool,), "random flip + translation during training"),
    "LIMIT_PER_CLASS": ((int, type(None)), "training images per class (None = profile, 0 = all)"),
    "EVAL_LIMIT_PER_CLASS": ((int, type(None)), "test images per class (None = profile, 0 = all)"),
    "RESUME": ((bool,), "continue an interrupted run from last.pt"),
    "VAL_FRACTION": ((float,), "validation share carved from train"),
    "SEEDS": ((int, type(None)), "number of training seeds (None = profile)"),
    "COMPARE_SCRATCH": ((bool,), "also train ResNet-18 from scratch when the main run is pretrained"),
}
SYNTH_PER_CLASS = 300
_COMMON = ("DATA", "PROFILE", "OUT", "SEED")
_TRAIN = ("MODEL", "EPOCHS", "IMAGE_SIZE", "BATCH_SIZE", "LR", "PRETRAINED", "WEIGHTS", "AUGMENT",
          "LIMIT_PER_CLASS", "RESUME")
NOTEBOOK_PARAMETERS = {
    "01_data_exploration": _COMMON,
    "02_preprocessing": _COMMON + ("IMAGE_SIZE", "VAL_FRACTION"),
    "03_train_resnet18": _COMMON + _TRAIN + ("SEEDS", "COMPARE_SCRATCH"),
    "04_train_custom_cnn": _COMMON + _TRAIN + ("SEEDS",),
    "05_comparative_evaluation": _COMMON + ("EVAL_LIMIT_PER_CLASS",),
    "06_explainability": _COMMON + ("EVAL_LIMIT_PER_CLASS",),
    "07_robustness": _COMMON + ("EVAL_LIMIT_PER_CLASS",),
}
# test images per class scored in 05 when the profile sets no limit
EVAL_LIMITS = {"smoke": 300, "cpu": None, "paper": None}


class StudyError(RuntimeError):
    """Something a notebook needs is missing; the message names the notebook that makes it."""


def _collect(namespace: dict, allowed: tuple[str, ...]) -> dict:
    given = {k: v for k, v in namespace.items() if k.isupper() and not k.startswith("_")}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for this notebook; it accepts {', '.join(allowed)}"
        )
    missing = sorted(set(allowed) - set(given))
    if missing:
        raise ConfigError(f"the parameters cell must define {', '.join(missing)}")
    for name, value in given.items():
        types, what = PARAMETERS[name]
        if isinstance(value, bool) and bool not in types:
            raise ConfigError(f"{name}={value!r}: expected {what}")
        if not isinstance(value, types):
            raise ConfigError(f"{name}={value!r} has type {type(value).__name__}: expected {what}")
    return given


@dataclass
class Study:
    """The validated configuration of one notebook run, and where the study's files live."""

    stage: str
    params: dict
    profile: str
    data_path: Path
    synthetic_fallback: bool
    out: Path
    seed: int
    notes: list[str] = field(default_factory=list)
    _data: object = None

    # ------------------------------------------------------------------ paths
    @property
    def splits_path(self) -> Path:
        return self.out / "splits.json"

    def run_dir(self, model: str, seed_index: int = 0, tag: str = "") -> Path:
        name = model + (f"_{tag}" if tag else "")
        return self.out / "runs" / (name if seed_index == 0 else f"{name}_seed{seed_index}")

    @property
    def eval_dir(self) -> Path:
        return self.out / "evaluation"

    # ------------------------------------------------------------------ data
    def load_data(self):
        from .data import load_cifake

        if self._data is None:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                self._data = load_cifake(self.data_path, progress=True)
        return self._data

    def load_splits(self):
        from .splits import load_manifest

        if not self.splits_path.exists():
            raise StudyError(f"no split manifest at {self.splits_path}: run 02_preprocessing.ipynb first "
                             f"(with the same OUT)")
        return load_manifest(self.splits_path, self.load_data())

    def require_run(self, model: str, seed_index: int = 0, tag: str = "") -> Path:
        run = self.run_dir(model, seed_index, tag)
        if not (run / "best.pt").exists():
            nb = "03_train_resnet18" if model.startswith("resnet18") else "04_train_custom_cnn"
            raise StudyError(f"no trained {model} at {run}: run {nb}.ipynb first (with the same OUT)")
        return run

    def seed_runs(self, model: str) -> list[Path]:
        """Every finished seed run of a model (seed 0 first)."""
        runs = [self.require_run(model)]
        i = 1
        while (self.run_dir(model, i) / "best.pt").exists():
            runs.append(self.run_dir(model, i))
            i += 1
        return runs

    def require_evaluation(self, model: str) -> Path:
        path = self.eval_dir / model / "predictions.csv"
        if not path.exists():
            raise StudyError(f"no test predictions for {model} at {path}: run 05_comparative_evaluation.ipynb first")
        return path

    # ------------------------------------------------------------------ training
    def train_config(self, model: str | None = None, **extra) -> TrainConfig:
        p = self.params
        model = model or p["MODEL"]
        pretrained = p.get("PRETRAINED", False)
        if model == "custom_cnn":
            pretrained = False
        elif pretrained == "auto":
            pretrained = self.pretrained_available()
            if not pretrained:
                self.notes.append("ImageNet weights for ResNet-18 are not available here (offline, not in the "
                                  "torch hub cache, no WEIGHTS file): this ResNet-18 is trained FROM SCRATCH.")
        elif pretrained not in (True, False):
            raise ConfigError(f"PRETRAINED={pretrained!r}: expected True, False or 'auto'")
        overrides = dict(
            epochs=p.get("EPOCHS"), image_size=p.get("IMAGE_SIZE"), batch_size=p.get("BATCH_SIZE"),
            lr=float(p["LR"]) if p.get("LR") is not None else None, seed=self.seed, pretrained=pretrained,
            weights=p.get("WEIGHTS") or None, augment=p.get("AUGMENT"), limit_per_class=p.get("LIMIT_PER_CLASS"),
        )
        overrides.update(extra)
        return profile_config(self.profile, model, **overrides)

    def pretrained_available(self) -> bool:
        from .models import WeightsUnavailableError, load_resnet18_state

        try:
            load_resnet18_state(self.params.get("WEIGHTS") or None, timeout=2.0)
            return True
        except WeightsUnavailableError:
            return False

    def n_seeds(self) -> int:
        value = self.params.get("SEEDS")
        if value is None:
            return PROFILES[self.profile]["seeds"]
        if value < 1:
            raise ConfigError(f"SEEDS={value}: expected at least 1")
        return value

    def eval_limit(self) -> int | None:
        value = self.params.get("EVAL_LIMIT_PER_CLASS")
        if value is None:
            return EVAL_LIMITS[self.profile]
        return value or None

    # ------------------------------------------------------------------ display
    def table(self) -> pd.DataFrame:
        rows = [("stage", self.stage), ("profile", self.profile), ("data", str(self.data_path)),
                ("synthetic demo data", self.synthetic_fallback), ("study folder (OUT)", str(self.out)),
                ("seed", self.seed)]
        rows += [(k.lower(), v) for k, v in self.params.items() if k not in ("DATA", "PROFILE", "OUT", "SEED")]
        return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")

    def banner(self) -> str:
        if self.synthetic_fallback or (self._data is not None and getattr(self._data, "synthetic", False)):
            return ("SYNTHETIC DEMO DATA - NOT CIFAKE: no CIFAKE data was found (DATA, $CIFAKE_DATA, data/), "
                    "so these results only show that the pipeline runs.")
        return ""


def setup(stage: str, namespace: dict) -> Study:
    """Validate the notebook's parameters (the UPPER_CASE names in ``namespace``) into a Study."""
    if stage not in NOTEBOOK_PARAMETERS:
        raise ConfigError(f"unknown notebook stage {stage!r}; known: {', '.join(NOTEBOOK_PARAMETERS)}")
    given = _collect(namespace, NOTEBOOK_PARAMETERS[stage])
    if stage.startswith("03") and not given["MODEL"].startswith("resnet18"):
        raise ConfigError(f"MODEL={given['MODEL']!r}: this notebook trains resnet18 or resnet18_cifar")
    if stage.startswith("04") and given["MODEL"] != "custom_cnn":
        raise ConfigError(f"MODEL={given['MODEL']!r}: this notebook trains custom_cnn")
    profile = resolve_profile(given.get("PROFILE", "auto"))
    out = Path(given.get("OUT") or paths.REPO_ROOT / "report" / "work").expanduser().resolve()
    data_value = given.get("DATA", "")
    synthetic = False
    if data_value:
        data_path = Path(data_value).expanduser().resolve()
        if not data_path.exists():
            raise ConfigError(f"DATA={data_value!r} does not exist")
    else:
        data_path, synthetic = default_study_data(out)
    return Study(stage, given, profile, data_path, synthetic, out, int(given.get("SEED", 0)))


def show_header(study: Study):
    """Display the synthetic-data banner (if any) and the validated settings."""
    from IPython.display import HTML, display

    if study.banner():
        display(HTML(f'<div class="cifake-banner" style="background:#b00020;color:white;padding:8px;'
                     f'font-weight:bold">{study.banner()}</div>'))
    display(study.table())


def show_notes(study: Study):
    from IPython.display import Markdown, display

    for note in study.notes:
        display(Markdown(f"**Note:** {note}"))


def show_sentences(lines: list[str]):
    """Display sentences as a bullet list (built from measured numbers by the caller)."""
    from IPython.display import Markdown, display

    display(Markdown("\n".join(f"- {line}" for line in lines)))


def model_overview(cfg: TrainConfig, max_rows: int = 25) -> tuple[int, pd.DataFrame]:
    """(parameter count, layer table) of the configured model at its input size.

    Deep models are summarised per top-level block (ResNet's layer1 ... layer4) so that the
    table stays readable; `cifake models NAME` prints every layer.
    """
    from .models import build_model, count_parameters, layer_table

    model = build_model(cfg.model)
    rows = pd.DataFrame(layer_table(model, cfg.input_size))
    if len(rows) > max_rows:
        rows["block"] = rows["layer"].str.split(".").str[0]
        rows = rows.groupby("block", sort=False).agg(
            layers=("layer", "size"), types=("type", lambda t: ", ".join(dict.fromkeys(t))),
            output=("output", "last"), params=("params", "sum")).reset_index().rename(columns={"block": "layer"})
    return count_parameters(model), rows.set_index("layer")


def config_table(cfg: TrainConfig) -> pd.DataFrame:
    d = cfg.to_dict()
    d["input_size (px)"] = cfg.input_size
    return pd.DataFrame(list(d.items()), columns=["setting", "value"]).set_index("setting")


def default_study_data(out: Path) -> tuple[Path, bool]:
    """$CIFAKE_DATA, else data/ in the repository, else a synthetic demo set under OUT."""
    from .sources import DataError, open_source
    from .synth import make_synthetic_cifake

    candidate = paths.default_data()
    if candidate is not None:
        try:
            open_source(candidate)
            return candidate.resolve(), False
        except DataError as exc:
            print(f"note: {candidate} is not usable CIFAKE data ({exc}); using synthetic demo data", file=sys.stderr)
    synth = out / "synthetic-demo-data"
    if not (synth / "train").exists():
        make_synthetic_cifake(synth, per_class=SYNTH_PER_CLASS, seed=0)
    return synth, True


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)
    return path


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
