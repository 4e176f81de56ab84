"""What the study produces, as typed values: a scored model, a paired comparison, a calibration,
a baseline, a seed spread, another data set, and the study summary that notebook 05 writes.

Each class is frozen; the ones the summary holds have ``to_json`` (plain JSON values, NaN as
null) and ``from_json``, and ``ScoredModel`` is written as its scores and run facts. The
summary's JSON is ``summary.json`` (``version`` says which layout it follows; an older one is
refused with a message to run notebook 05 again); notebooks, the conclusion sentences and the
report read these attributes, not string paths into nested dicts. Values that only matter in
memory (an evaluation's predictions and logits) travel beside the typed fields but are not
written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..atomic import write_json
from ..engine.metrics import METRICS

SUMMARY_VERSION = 2  # 1: the untyped dict of earlier releases (same keys, no version field)
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
)


def _num(v) -> float:
    """A float from JSON, where null stands for NaN (an undefined AUC, an empty reliability bin)."""
    return float("nan") if v is None else float(v)


def _pair(v) -> tuple[float, float]:
    return (_num(v[0]), _num(v[1]))


def _plain(obj):
    """JSON values of a typed result: tuples become lists, nested results their to_json(), NaN
    becomes null (standard JSON; ``_num`` reads it back as NaN)."""
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _own_fields(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


# ----------------------------------------------------------------------------- one model


@dataclass(frozen=True)
class Scores:
    """A model's metrics on one set of images (FAKE = positive) with 95% bootstrap intervals."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    auc: float
    n: int
    confusion: dict  # {"tp", "tn", "fp", "fn"}: image counts
    ci95: dict  # {metric: (low, high)}
    average_precision: float
    tpr_at_fpr: dict  # {"0.01": TPR at 1% FPR, "0.001": at 0.1%}
    leaked_images_removed: int | None = None  # scored images whose bytes training saw (extra data)

    def value(self, metric: str) -> float:
        return float(getattr(self, metric))

    def interval(self, metric: str) -> tuple[float, float]:
        return self.ci95[metric]

    @property
    def n_fake(self) -> int:
        return self.confusion["tp"] + self.confusion["fn"]

    @property
    def n_real(self) -> int:
        return self.confusion["tn"] + self.confusion["fp"]

    @classmethod
    def from_json(cls, d: dict) -> Scores:
        d = _own_fields(cls, d)
        for k in (*METRICS, "average_precision"):
            d[k] = _num(d[k])
        d["ci95"] = {k: _pair(v) for k, v in d["ci95"].items()}
        d["tpr_at_fpr"] = {k: _num(v) for k, v in d["tpr_at_fpr"].items()}
        return cls(**d)

    from_metrics = from_json  # evaluate_model's metrics dict holds these keys among others

    def to_json(self) -> dict:
        out = _plain({f.name: getattr(self, f.name) for f in fields(self)})
        if self.leaked_images_removed is None:
            out.pop("leaked_images_removed")
        return out


@dataclass(frozen=True)
class RunFacts:
    """What ran: the recipe, input size, start (pretrained or not), training images, arithmetic."""

    recipe: str | None = None
    epochs: int | None = None
    input_size: int | None = None
    pretrained: bool | None = None
    train_images: int | None = None
    best_epoch: int | None = None
    batch_size: int | None = None
    val_fraction: float | None = None
    arithmetic: str | None = None
    tf32: bool | None = None

    @classmethod
    def from_json(cls, d: dict) -> RunFacts:
        return cls(**{k: d.get(k) for k in RUN_FACTS})

    from_metrics = from_json

    def to_json(self) -> dict:
        return _plain({k: getattr(self, k) for k in RUN_FACTS})


@dataclass(frozen=True)
class ScoredModel:
    """One run's best checkpoint scored on the study's test images.

    ``model`` is the architecture (``resnet18``); ``run`` says how it was trained. ``evaluation``
    (the engine's :class:`~cifake_lib.engine.evaluate.Evaluation`: predictions, logits, the
    per-category and leak-free metrics) is kept in memory only.
    """

    model: str
    scores: Scores
    run: RunFacts
    evaluation: object = field(default=None, compare=False, repr=False)

    @classmethod
    def from_evaluation(cls, ev) -> ScoredModel:
        return cls(ev.metrics["model"], Scores.from_metrics(ev.metrics), RunFacts.from_metrics(ev.metrics), ev)

    @property
    def predictions(self):
        if self.evaluation is None:
            raise ValueError(f"{self.model}: predictions are not kept in summary.json; score the run again")
        return self.evaluation.predictions


# ----------------------------------------------------------------------------- two models


@dataclass(frozen=True)
class Difference:
    """A - B of one metric, with a paired bootstrap 95% interval."""

    difference: float
    ci95: tuple[float, float]

    @classmethod
    def from_json(cls, d: dict) -> Difference:
        return cls(_num(d["difference"]), _pair(d["ci95"]))

    def to_json(self) -> dict:
        return _plain({"difference": self.difference, "ci95": list(self.ci95)})


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy and AUC of model A minus model B on the same images (paired bootstrap)."""

    accuracy: Difference
    auc: Difference
    n_boot: int

    @classmethod
    def from_json(cls, d: dict) -> PairedDifference:
        return cls(Difference.from_json(d["accuracy"]), Difference.from_json(d["auc"]), int(d["n_boot"]))

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy.to_json(), "auc": self.auc.to_json(), "n_boot": self.n_boot}


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on two models' predictions of the same images."""

    n: int
    both_correct: int
    a_only: int  # images only model A gets right
    b_only: int
    both_wrong: int
    p_value: float
    test: str = "McNemar exact (two-sided binomial on discordant pairs)"

    @classmethod
    def from_json(cls, d: dict) -> McNemar:
        return cls(**_own_fields(cls, d))

    def to_json(self) -> dict:
        return _plain({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class SeedPairTest:
    """McNemar between the two networks' runs with the same seed index."""

    seed_run: int
    mcnemar: McNemar

    @classmethod
    def from_json(cls, d: dict) -> SeedPairTest:
        return cls(int(d["seed_run"]), McNemar.from_json(d))

    def to_json(self) -> dict:
        return {"seed_run": self.seed_run, **self.mcnemar.to_json()}


@dataclass(frozen=True)
class SeedSpread:
    """One metric over training runs that differ only in their seed: the unit of a claim about
    a recipe or an architecture (the image-level intervals are about one checkpoint)."""

    mean: float
    std: float | None  # None with one seed
    n_seeds: int
    values: tuple[float, ...]
    ci95: tuple[float, float] | None = None  # t interval over seeds (None with one seed)

    @property
    def excludes_zero(self) -> bool:
        """Whether the seed-level 95% interval lies wholly above or below zero (for differences)."""
        return self.ci95 is not None and (self.ci95[0] > 0 or self.ci95[1] < 0)

    @classmethod
    def from_json(cls, d: dict) -> SeedSpread:
        ci = _pair(d["ci95"]) if d.get("ci95") else None
        return cls(_num(d["mean"]), d["std"], int(d["n_seeds"]), tuple(_num(v) for v in d["values"]), ci)

    def to_json(self) -> dict:
        out = {"mean": self.mean, "std": self.std, "n_seeds": self.n_seeds, "values": list(self.values)}
        return _plain({**out, "ci95": list(self.ci95) if self.ci95 else None})


@dataclass(frozen=True)
class SeedComparison:
    """A - B of one metric, seed by seed (run i of A against run i of B on the same images)."""

    a: str  # what is compared, e.g. "resnet18" or "custom_cnn, improved recipe"
    b: str
    metric: str
    difference: SeedSpread

    @classmethod
    def from_json(cls, d: dict) -> SeedComparison:
        return cls(d["a"], d["b"], d["metric"], SeedSpread.from_json(d["difference"]))

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "metric": self.metric, "difference": self.difference.to_json()}


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error on test before and after a temperature fitted on validation."""

    temperature: float
    ece: float
    ece_scaled: float
    val_n: int
    bins: tuple = ()  # reliability bins (dicts) before scaling
    bins_scaled: tuple = ()

    @classmethod
    def from_json(cls, d: dict) -> Calibration:
        d = _own_fields(cls, d)
        return cls(**{**d, "bins": tuple(d.get("bins", ())), "bins_scaled": tuple(d.get("bins_scaled", ()))})

    def to_json(self) -> dict:
        return _plain({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class Baseline:
    """A simple scikit-learn model scored on the networks' test images."""

    name: str
    scores: Scores
    fit_seconds: float
    train_images: int
    converged: bool

    @classmethod
    def from_json(cls, name: str, d: dict) -> Baseline:
        return cls(name, Scores.from_json(d), float(d["fit_seconds"]), int(d["train_images"]), bool(d["converged"]))

    def to_json(self) -> dict:
        extra = {"fit_seconds": self.fit_seconds, "train_images": self.train_images, "converged": self.converged}
        return {**self.scores.to_json(), **_plain(extra)}


@dataclass(frozen=True)
class ScratchComparison:
    """The from-scratch ResNet-18 twin against the pretrained run, on the same test images."""

    scratch: ScoredModel
    mcnemar_vs_pretrained: McNemar  # A = pretrained, B = scratch

    @classmethod
    def from_json(cls, d: dict) -> ScratchComparison:
        scored = ScoredModel("resnet18", Scores.from_json(d["metrics"]), RunFacts.from_json(d["run"]))
        return cls(scored, McNemar.from_json(d["mcnemar_vs_pretrained"]))

    def to_json(self) -> dict:
        return {
            "metrics": self.scratch.scores.to_json(),
            "run": self.scratch.run.to_json(),
            "mcnemar_vs_pretrained": self.mcnemar_vs_pretrained.to_json(),
        }


@dataclass(frozen=True)
class RecipeComparison:
    """A model's improved-recipe run against its paper-recipe run, on the same test images."""

    improved: ScoredModel
    mcnemar_vs_paper: McNemar  # A = improved, B = paper
    difference_vs_paper: PairedDifference  # improved - paper

    @classmethod
    def from_json(cls, model: str, d: dict) -> RecipeComparison:
        scored = ScoredModel(model, Scores.from_json(d["metrics"]), RunFacts.from_json(d["run"]))
        return cls(
            scored, McNemar.from_json(d["mcnemar_vs_paper"]), PairedDifference.from_json(d["difference_vs_paper"])
        )

    def to_json(self) -> dict:
        return {
            "metrics": self.improved.scores.to_json(),
            "run": self.improved.run.to_json(),
            "mcnemar_vs_paper": self.mcnemar_vs_paper.to_json(),
            "difference_vs_paper": self.difference_vs_paper.to_json(),
        }


@dataclass(frozen=True)
class ExtraSet:
    """Every network on one EXTRA_TEST_DATA set (data they were not trained on)."""

    path: str
    source: str
    fingerprint: str
    split: str
    n: int
    small: bool  # fewer images than SMALL_EXTRA: wide intervals
    scores: dict  # {model: Scores}

    @classmethod
    def from_json(cls, d: dict) -> ExtraSet:
        scores = {m: Scores.from_json(s) for m, s in d["metrics"].items()}
        return cls(d["path"], d["source"], d["fingerprint"], d["split"], int(d["n"]), bool(d["small"]), scores)

    def to_json(self) -> dict:
        keys = ("path", "source", "fingerprint", "split", "n", "small")
        return {**{k: getattr(self, k) for k in keys}, "metrics": _plain(self.scores)}


# ----------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class StudySummary:
    """What notebook 05 found: the headline numbers, every comparison and the conclusion."""

    profile: str
    synthetic: bool
    data: dict  # the data's provenance (source, fingerprint, counts)
    test_source: str | None
    eval_limit_per_class: int | None
    models: dict  # {model: ScoredModel}, the paper-recipe run of each network
    mcnemar: McNemar | None = None
    difference: PairedDifference | None = None
    calibration: dict = field(default_factory=dict)  # {model: Calibration}
    seeds: dict = field(default_factory=dict)  # {model: {metric: SeedSpread}}
    seed_mcnemar: tuple = ()  # SeedPairTest per seed index
    seed_differences: tuple = ()  # SeedComparison: the networks, and each model's two recipes
    scratch: ScratchComparison | None = None
    recipes: dict = field(default_factory=dict)  # {model: RecipeComparison}
    baselines: dict = field(default_factory=dict)  # {name: Baseline}
    extra: tuple = ()  # ExtraSet per EXTRA_TEST_DATA set
    conclusion: tuple = ()  # sentences computed from the numbers
    notes: tuple = ()
    version: int = SUMMARY_VERSION

    @property
    def n(self) -> int:
        """Test images each network was scored on."""
        return next(iter(self.models.values())).scores.n

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "profile": self.profile,
            "synthetic": self.synthetic,
            "data": self.data,
            "test_source": self.test_source,
            "eval_limit_per_class": self.eval_limit_per_class,
            "metrics": {m: s.scores.to_json() for m, s in self.models.items()},
            "runs": {m: s.run.to_json() for m, s in self.models.items()},
            "mcnemar": _plain(self.mcnemar),
            "difference": _plain(self.difference),
            "calibration": _plain(self.calibration),
            "seeds": _plain(self.seeds),
            "seed_mcnemar": _plain(self.seed_mcnemar),
            "seed_differences": _plain(self.seed_differences),
            "scratch": _plain(self.scratch),
            "recipes": _plain(self.recipes),
            "baselines": _plain(self.baselines),
            "extra": _plain(self.extra),
            "conclusion": list(self.conclusion),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, d: dict) -> StudySummary:
        version = d.get("version", 1)
        if version > SUMMARY_VERSION:
            raise ValueError(f"summary.json version {version} is newer than this cifake ({SUMMARY_VERSION})")
        if version < SUMMARY_VERSION:
            raise ValueError(
                f"summary.json version {version} predates the typed results (version {SUMMARY_VERSION}) and lacks "
                "some of their values: run notebook 05 again to write it anew"
            )
        models = {
            m: ScoredModel(m, Scores.from_json(s), RunFacts.from_json(d.get("runs", {}).get(m, {})))
            for m, s in d["metrics"].items()
        }
        return cls(
            profile=d["profile"],
            synthetic=bool(d["synthetic"]),
            data=d["data"],
            test_source=d.get("test_source"),
            eval_limit_per_class=d.get("eval_limit_per_class"),
            models=models,
            mcnemar=McNemar.from_json(d["mcnemar"]) if d.get("mcnemar") else None,
            difference=PairedDifference.from_json(d["difference"]) if d.get("difference") else None,
            calibration={m: Calibration.from_json(c) for m, c in (d.get("calibration") or {}).items()},
            seeds={
                m: {k: SeedSpread.from_json(v) for k, v in per.items()} for m, per in (d.get("seeds") or {}).items()
            },
            seed_mcnemar=tuple(SeedPairTest.from_json(x) for x in d.get("seed_mcnemar") or ()),
            seed_differences=tuple(SeedComparison.from_json(x) for x in d.get("seed_differences") or ()),
            scratch=ScratchComparison.from_json(d["scratch"]) if d.get("scratch") else None,
            recipes={m: RecipeComparison.from_json(m, c) for m, c in (d.get("recipes") or {}).items()},
            baselines={n: Baseline.from_json(n, b) for n, b in (d.get("baselines") or {}).items()},
            extra=tuple(ExtraSet.from_json(e) for e in d.get("extra") or ()),
            conclusion=tuple(d.get("conclusion") or ()),
            notes=tuple(d.get("notes") or ()),
            version=SUMMARY_VERSION,
        )

    def save(self, path: Path) -> Path:
        write_json(Path(path), self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> StudySummary:
        return cls.from_json(json.loads(Path(path).read_text()))


def seed_spread(values: list[float]) -> SeedSpread:
    """Mean, standard deviation and a t 95% interval over seeds (no interval for one seed)."""
    import numpy as np
    from scipy.stats import t

    vals = tuple(float(v) for v in values)
    n, mean = len(vals), float(np.mean(vals))
    if n < 2:
        return SeedSpread(mean, None, n, vals, None)
    std = float(np.std(vals, ddof=1))
    half = float(t.ppf(0.975, n - 1)) * std / np.sqrt(n)
    return SeedSpread(mean, std, n, vals, (mean - half, mean + half))


__all__ = [
    "METRICS",
    "RUN_FACTS",
    "SUMMARY_VERSION",
    "Baseline",
    "Calibration",
    "Difference",
    "ExtraSet",
    "McNemar",
    "PairedDifference",
    "RecipeComparison",
    "RunFacts",
    "ScoredModel",
    "ScratchComparison",
    "Scores",
    "SeedComparison",
    "SeedPairTest",
    "SeedSpread",
    "StudySummary",
    "seed_spread",
]
