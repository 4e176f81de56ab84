"""Notebook set-up: turn the `parameters` cell into a validated study configuration.

Papermill only warns about parameter names a notebook does not declare; :func:`setup` fails on
them instead, and on values of the wrong type, so a typo in a batch run stops the run at once.
All notebooks of a study share one output folder (``OUT``, see :mod:`.layout`): 02 writes the
split manifest there, 03 and 04 their runs, 05 the evaluation; a later notebook says what is
missing and which notebook makes it. Every parameter is read through ``study.params``.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import paths
from ..engine.config import ConfigError, TrainConfig
from ..engine.recipes import departures
from .layout import StudyError, StudyLayout
from .parameters import collect, train_overrides, train_parameter_names
from .profiles import PROFILES, ResolvedSettings, resolve_profile, resolve_settings

__all__ = ["Study", "StudyError", "setup", "show_header", "show_notes", "show_sentences"]

SYNTH_PER_CLASS = 300


@dataclass
class Study:
    """The validated configuration of one notebook run, and where the study's files live."""

    stage: str
    params: dict
    profile: str
    data_path: Path
    synthetic_fallback: bool
    layout: StudyLayout
    seed: int
    notes: list[str] = field(default_factory=list)
    _data: object = None
    _notes_shown: int = 0  # notes show_notes has displayed already

    @property
    def out(self) -> Path:
        return self.layout.out

    # ------------------------------------------------------------------ data
    def load_data(self):
        from ..data.dataset import load_cifake

        if self._data is None:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                self._data = load_cifake(self.data_path, progress=True)
        return self._data

    def load_splits(self):
        from ..data.splits import load_manifest

        return load_manifest(self.layout.require_splits(), self.load_data())

    # ------------------------------------------------------------------ settings
    def settings(self, model: str | None = None, recipe: str = "paper", **explicit) -> ResolvedSettings:
        """The settings of this notebook's model resolved in one place (TrainConfig defaults, the
        recipe, the profile, the notebook's parameters, ``explicit`` values), each with its source."""
        given = {**train_overrides(self.params), "seed": self.seed}
        names = {**train_parameter_names(self.params), "seed": "SEED"}
        if model is None:
            model = given["model"] = self.params["MODEL"]
            names["model"] = "MODEL"
        given["pretrained"] = self._pretrained(model, given.get("pretrained", False))
        given["weights"] = given.get("weights") or None
        if given.get("lr") is not None:
            given["lr"] = float(given["lr"])
        if model.startswith("custom_cnn"):  # never pretrained: the recipe's value stands
            given["pretrained"] = None
        resolved = resolve_settings(self.profile, model, recipe, parameters=given, explicit=explicit, given_by=names)
        cfg = resolved.config
        changed = departures(cfg)
        note = f"This {model} run departs from the {cfg.recipe} recipe in: " + ", ".join(
            f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()
        )
        if changed and note not in self.notes:
            self.notes.append(note)
        return resolved

    def train_config(self, model: str | None = None, recipe: str = "paper", **explicit) -> TrainConfig:
        """The TrainConfig of this notebook's model (see :meth:`settings` for where each value came from)."""
        return self.settings(model, recipe, **explicit).config

    def _pretrained(self, model: str, value) -> bool:
        if model.startswith("custom_cnn"):
            return False
        if value == "auto":
            if self.pretrained_available():
                return True
            self.notes.append(
                "ImageNet weights for ResNet-18 are not available here (offline, not in the "
                "torch hub cache, no WEIGHTS file): this ResNet-18 is trained FROM SCRATCH."
            )
            return False
        if value not in (True, False):
            raise ConfigError(f"PRETRAINED={value!r}: expected True, False or 'auto'")
        return value

    def pretrained_available(self) -> bool:
        from ..engine.models import WeightsUnavailableError, load_resnet18_state

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
            return PROFILES[self.profile]["eval_limit_per_class"]
        return value or None

    # ------------------------------------------------------------------ display
    def table(self) -> pd.DataFrame:
        rows = [
            ("stage", self.stage),
            ("profile", self.profile),
            ("data", str(self.data_path)),
            ("synthetic demo data", self.synthetic_fallback),
            ("study folder (OUT)", str(self.out)),
            ("seed", self.seed),
        ]
        rows += [(k.lower(), v) for k, v in self.params.items() if k not in ("DATA", "PROFILE", "OUT", "SEED")]
        return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")

    def banner(self) -> str:
        if self.synthetic_fallback or (self._data is not None and getattr(self._data, "synthetic", False)):
            return (
                "SYNTHETIC DEMO DATA - NOT CIFAKE: no CIFAKE data was found (DATA, $CIFAKE_DATA, data/), "
                "so these results only show that the pipeline runs."
            )
        return ""


def setup(stage: str, namespace: dict) -> Study:
    """Validate the notebook's parameters (the UPPER_CASE names in ``namespace``) into a Study."""
    given = collect(stage, namespace)
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
    return Study(stage, given, profile, data_path, synthetic, StudyLayout(out), int(given.get("SEED", 0)))


def default_study_data(out: Path) -> tuple[Path, bool]:
    """$CIFAKE_DATA, else data/ in the repository, else a synthetic demo set under OUT."""
    from ..data.sources import DataError, open_source
    from ..data.synth import make_synthetic_cifake

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


# ----------------------------------------------------------------------------- display helpers


def show_header(study: Study):
    """Display the synthetic-data banner (if any) and the validated settings."""
    from IPython.display import HTML, display

    if study.banner():
        display(
            HTML(
                f'<div class="cifake-banner" style="background:#b00020;color:white;padding:8px;'
                f'font-weight:bold">{study.banner()}</div>'
            )
        )
    display(study.table())


def show_notes(study: Study):
    """Display the notes added since the last call (each note once)."""
    from IPython.display import Markdown, display

    for note in study.notes[study._notes_shown :]:
        display(Markdown(f"**Note:** {note}"))
    study._notes_shown = len(study.notes)


def show_sentences(lines: list[str]):
    """Display sentences as a bullet list (built from measured numbers by the caller)."""
    from IPython.display import Markdown, display

    display(Markdown("\n".join(f"- {line}" for line in lines)))
