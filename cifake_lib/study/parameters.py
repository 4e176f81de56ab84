"""The notebooks' parameters, declared once: name, accepted types, default, comment, and the
TrainConfig field it sets.

Each notebook's ``parameters`` cell is generated from this table (``python -m
cifake_lib.study.parameters`` rewrites the cells; a test fails when a cell has drifted), and
``notebook.setup`` validates a run's values against it, since papermill alone only warns about
unknown names.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from ..engine.config import ConfigError, TrainConfig

NONE = type(None)


@dataclass(frozen=True)
class Parameter:
    types: tuple
    default: object
    comment: str
    train_field: str | None = None  # the TrainConfig field this parameter sets, if any
    choices: tuple | None = None  # the accepted values, when only a few are


PARAMETERS: dict[str, Parameter] = {
    "DATA": Parameter((str,), "", "CIFAKE folder or zip; empty: $CIFAKE_DATA, else data/, else synthetic demo data"),
    "PROFILE": Parameter((str,), "auto", "auto (paper on a GPU, cpu otherwise), smoke, cpu or paper"),
    "OUT": Parameter((str,), "", "study folder shared by notebooks 01-07; empty: report/work"),
    "SEED": Parameter((int,), 0, "seed of the splits and of the first training run"),
    "MODEL": Parameter((str,), "resnet18", "the model this notebook trains"),
    "EPOCHS": Parameter((int, NONE), None, "None: the recipe's (paper 10; improved: cifake recipes)", "epochs"),
    "IMAGE_SIZE": Parameter((int, NONE), None, "model input size in pixels; None: the profile's", "image_size"),
    "BATCH_SIZE": Parameter((int, NONE), None, "training batch size; None: the profile's", "batch_size"),
    "LR": Parameter((float, int, NONE), None, "None: the recipe's (paper: Adam 1e-3)", "lr"),
    "PRETRAINED": Parameter((bool, str), "auto", "True, False, or auto: ImageNet weights when available", "pretrained"),
    "WEIGHTS": Parameter(
        (str,), "", "local resnet18-f37072fd.pth for offline machines; empty: torch hub cache", "weights"
    ),
    "AUGMENT": Parameter((bool, NONE), None, "random flip + translation; None: the recipe's", "augment"),
    "AMP": Parameter(
        (str, NONE),
        None,
        "training arithmetic: None: the recipe's (auto: bf16 autocast on CUDA and bf16 CPUs), bf16 or off",
        "amp",
        choices=(None, "auto", "bf16", "off"),
    ),
    "RECIPE": Parameter(
        (str,),
        "profile",
        "profile: the profile's recipes (cpu: paper, plus improved for custom_cnn); paper; or both",
        choices=("profile", "paper", "both"),
    ),
    "LIMIT_PER_CLASS": Parameter(
        (int, NONE), None, "training images per class; None: profile, 0: all", "limit_per_class"
    ),
    "RESUME": Parameter((bool,), False, "continue an interrupted run from its last.pt"),
    "SEEDS": Parameter(
        (int, NONE), None, "training runs with seeds SEED, SEED+1, ...; None: the profile (1 on cpu and paper)"
    ),
    "COMPARE_SCRATCH": Parameter(
        (bool,), True, "also train from scratch when pretrained, to test the paper's hypothesis"
    ),
    "VAL_FRACTION": Parameter((float,), 0.1, "share of train used for validation"),
    "EXTRA_TEST_DATA": Parameter(
        (list,), [], "more labelled data to score (paths: CIFAKE layout, test/ only, or REAL/ + FAKE/ folders)"
    ),
    "EVAL_LIMIT_PER_CLASS": Parameter(
        (int, NONE), None, "test images per class; None: profile (all; 300 for smoke), 0: all"
    ),
}
_COMMON = ("DATA", "PROFILE", "OUT", "SEED")
_TRAIN = (
    "MODEL",
    "RECIPE",
    "EPOCHS",
    "IMAGE_SIZE",
    "BATCH_SIZE",
    "LR",
    "AUGMENT",
    "AMP",
    "LIMIT_PER_CLASS",
    "RESUME",
    "SEEDS",
)
NOTEBOOK_PARAMETERS: dict[str, tuple[str, ...]] = {
    "01_data_exploration": _COMMON,
    "02_preprocessing": _COMMON + ("IMAGE_SIZE", "VAL_FRACTION"),
    "03_train_resnet18": _COMMON + _TRAIN + ("PRETRAINED", "WEIGHTS", "COMPARE_SCRATCH"),
    "04_train_custom_cnn": _COMMON + _TRAIN,
    "05_comparative_evaluation": _COMMON + ("EVAL_LIMIT_PER_CLASS", "EXTRA_TEST_DATA"),
    "06_explainability": _COMMON,
    "07_robustness": _COMMON + ("EVAL_LIMIT_PER_CLASS",),
}
# where a notebook's default differs from the table's
NOTEBOOK_DEFAULTS: dict[str, dict] = {"04_train_custom_cnn": {"MODEL": "custom_cnn"}}
# which models each training notebook accepts
NOTEBOOK_MODELS = {"03_train_resnet18": ("resnet18", "resnet18_cifar"), "04_train_custom_cnn": ("custom_cnn",)}


def collect(stage: str, namespace: dict) -> dict:
    """The notebook's parameters from its namespace (its UPPER_CASE names), type-checked."""
    if stage not in NOTEBOOK_PARAMETERS:
        raise ConfigError(f"unknown notebook stage {stage!r}; known: {', '.join(NOTEBOOK_PARAMETERS)}")
    allowed = NOTEBOOK_PARAMETERS[stage]
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
        check_value(name, value)
    if stage in NOTEBOOK_MODELS and given["MODEL"] not in NOTEBOOK_MODELS[stage]:
        raise ConfigError(f"MODEL={given['MODEL']!r}: this notebook trains {' or '.join(NOTEBOOK_MODELS[stage])}")
    return given


def check_value(name: str, value) -> None:
    """Fail with a ConfigError unless ``value`` is a valid value of parameter ``name``."""
    spec = PARAMETERS.get(name)
    if spec is None:
        raise ConfigError(f"unknown parameter {name}; known: {', '.join(PARAMETERS)}")
    if isinstance(value, bool) and bool not in spec.types:
        raise ConfigError(f"{name}={value!r}: expected {spec.comment}")
    if not isinstance(value, spec.types):
        raise ConfigError(f"{name}={value!r} has type {type(value).__name__}: expected {spec.comment}")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{name}={value!r}: choose one of {', '.join(map(repr, spec.choices))}")
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name}={value!r}: expected a list of paths (strings)")


def train_overrides(params: dict) -> dict:
    """{TrainConfig field: value} for the training parameters a notebook was given."""
    return {PARAMETERS[name].train_field: value for name, value in params.items() if PARAMETERS[name].train_field}


def train_parameter_names(params: dict) -> dict:
    """{TrainConfig field: the notebook parameter that sets it} for the parameters given."""
    return {PARAMETERS[name].train_field: name for name in params if PARAMETERS[name].train_field}


def _literal(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def parameters_cell(stage: str) -> str:
    """The source of a notebook's ``parameters`` cell: one ``NAME = literal  # comment`` per line."""
    defaults = NOTEBOOK_DEFAULTS.get(stage, {})
    lines = []
    for name in NOTEBOOK_PARAMETERS[stage]:
        value = defaults.get(name, PARAMETERS[name].default)
        lines.append(f"{name} = {_literal(value)}  # {PARAMETERS[name].comment}")
    return "\n".join(lines)


def check_table() -> None:
    """Every train_field names a TrainConfig field (a test calls this)."""
    known = {f.name for f in fields(TrainConfig)}
    bad = {n: p.train_field for n, p in PARAMETERS.items() if p.train_field and p.train_field not in known}
    if bad:
        raise ConfigError(f"parameters mapped to unknown TrainConfig fields: {bad}")


def write_parameter_cells(notebook_dir: Path) -> list[Path]:
    """Rewrite each notebook's parameters cell from the table (outputs stay cleared)."""
    import nbformat

    written = []
    for stage in NOTEBOOK_PARAMETERS:
        path = notebook_dir / f"{stage}.ipynb"
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        if cell.source != parameters_cell(stage):
            cell.source = parameters_cell(stage)
            nbformat.write(nb, path)
            written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    from ..paths import REPO_ROOT

    for p in write_parameter_cells(REPO_ROOT / "notebooks"):
        print(f"rewrote the parameters cell of {p}")
    sys.exit(0)
