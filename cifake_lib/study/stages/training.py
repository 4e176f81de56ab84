"""03_train_resnet18 and 04_train_custom_cnn: one model trained on the study's splits, per seed."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ...data.splits import Splits, limit_parts
from ...engine.config import TrainConfig
from ...engine.models import build_model, count_parameters, layer_table
from ...engine.preprocess import Preprocessor
from ...engine.recipes import RECIPE_KEYS
from ...engine.trainer import TrainResult, train_model
from ..notebook import Study
from ..profiles import profile_recipes


@dataclass(frozen=True)
class Batch:
    """A few training images as the trainer sees them: stored uint8 and, after the run's
    preprocessing (augmentation when the recipe has it, resize, ImageNet normalization), the
    float32 model input."""

    images: torch.Tensor  # uint8 N x 3 x 32 x 32
    labels: torch.Tensor  # 1 = FAKE
    inputs: torch.Tensor  # float32 N x 3 x S x S
    views: np.ndarray  # the inputs de-normalized to 0..1 RGB, for display
    preprocessing: dict  # Preprocessor.describe()


def training_splits(study: Study, cfg: TrainConfig) -> Splits:
    """The study's saved splits, cut to the run's per-class training subset when it has one
    (validation in proportion; the test part unchanged)."""
    return limit_parts(study.load_splits(), study.load_data(), cfg.limit_per_class, seed=study.seed)


def split_table(splits: Splits, data) -> pd.DataFrame:
    """Images per part and class that this run trains and validates on."""
    frame = pd.DataFrame(splits.sizes(data)).T
    frame.index.name = "part"
    return frame


def training_batch(data, splits: Splits, cfg: TrainConfig, n: int = 8, seed: int = 0) -> Batch:
    """The first ``n`` training images of a seeded shuffle, through the run's preprocessing."""
    g = torch.Generator().manual_seed(seed)
    idx = np.sort(splits.train[torch.randperm(len(splits.train), generator=g)[:n].numpy()])
    prep = Preprocessor(cfg.input_size, augment=cfg.augment, translate=cfg.translate)
    raw = torch.from_numpy(data.images[idx])
    inputs = prep(raw, train=True, generator=g)
    return Batch(raw, torch.from_numpy(data.labels[idx]), inputs, prep.denormalize(inputs).numpy(), prep.describe())


def batch_table(batch: Batch) -> pd.DataFrame:
    """Shape, type and value range of the batch before and after preprocessing, and what the
    preprocessing did."""
    p = batch.preprocessing
    steps = (
        f"augment: {p['augment']}; resize to {p['image_size']}x{p['image_size']} ({p['resize']}); "
        f"normalize with mean {p['mean']}, std {p['std']}"
    )
    rows = []
    for name, t, how in (("stored images", batch.images, "as decoded"), ("model input", batch.inputs, steps)):
        f = t.float()
        rows.append(
            {
                "tensor": name,
                "shape": " x ".join(map(str, t.shape)),
                "dtype": str(t.dtype).replace("torch.", ""),
                "min": round(float(f.min()), 3),
                "max": round(float(f.max()), 3),
                "mean": round(float(f.mean()), 3),
                "std": round(float(f.std()), 3),
                "how": how,
            }
        )
    return pd.DataFrame(rows).set_index("tensor")


def describe_model(model: torch.nn.Module, cfg: TrainConfig) -> str:
    from ...engine.models import count_parameters as count

    return f"{cfg.model}: {count(model):,} trainable parameters at {cfg.input_size}x{cfg.input_size} input"


def build(cfg: TrainConfig) -> torch.nn.Module:
    """The configured network, freshly initialised (the trainer builds its own the same way)."""
    return build_model(cfg.model)


def resume_requested(study: Study, run_dir) -> bool:
    """RESUME, when the run has a last.pt to continue from."""
    return bool(study.params["RESUME"]) and (run_dir / "last.pt").exists()


def train_run(study: Study, cfg: TrainConfig, seed_index: int = 0, tag: str = "") -> TrainResult:
    """Train one run of the study: ``train_model`` on the run's splits into runs/<run name>."""
    run = study.layout.run_dir(cfg.model, seed_index, tag)
    return train_model(cfg, study.load_data(), training_splits(study, cfg), run, resume=resume_requested(study, run))


def train_further_seeds(study: Study, cfg: TrainConfig, first: TrainResult, tag: str = "") -> list[TrainResult]:
    """[first, then one run per further seed]: SEEDS (or the profile's count) runs in all, seed
    SEED + i into run i."""
    return [first] + [
        train_run(study, TrainConfig.from_dict({**cfg.to_dict(), "seed": cfg.seed + i}), seed_index=i, tag=tag)
        for i in range(1, study.n_seeds())
    ]


def train_seeds(study: Study, cfg: TrainConfig, tag: str = "") -> list[TrainResult]:
    """Every seed run of one configuration (run 0 first)."""
    return train_further_seeds(study, cfg, train_run(study, cfg, tag=tag), tag=tag)


def study_recipes(study: Study, model: str) -> tuple[str, ...]:
    """The recipes this notebook trains: RECIPE, or with "profile" the profile's list for the model."""
    value = study.params.get("RECIPE", "profile")
    if value == "profile":
        return profile_recipes(study.profile, model)
    return ("paper",) if value == "paper" else ("paper", "improved")


def train_improved(study: Study, cfg: TrainConfig) -> list[TrainResult] | None:
    """When the profile or RECIPE asks for it: the same model, images and input size trained with
    the improved recipe (runs/<model>_improved); None and a note otherwise."""
    if "improved" not in study_recipes(study, cfg.model):
        study.notes.append(
            f"The {study.profile} profile trains {cfg.model} with the paper's recipe only; "
            "RECIPE='both' adds the improved recipe."
        )
        return None
    return train_seeds(study, study.train_config(cfg.model, recipe="improved"), tag="improved")


def recipes_compared(study: Study, cfg: TrainConfig, paper: TrainResult, improved: list[TrainResult] | None):
    """The settings that differ between the two recipes, then each run's best validation result
    (a note when the improved recipe did not run)."""
    if not improved:
        return pd.DataFrame({"note": ["the improved recipe was not trained in this run (RECIPE='both' adds it)"]})
    a, b = cfg.to_dict(), study.train_config(cfg.model, recipe="improved").to_dict()
    rows = {k: (a[k], b[k]) for k in RECIPE_KEYS if a[k] != b[k]}
    for name, key in (("best val accuracy", "val_accuracy"), ("best val AUC", "val_auc")):
        rows[name] = tuple(
            round(float(r.history.loc[r.history["epoch"] == r.best_epoch, key].iloc[0]), 4)
            for r in (paper, improved[0])
        )
    rows["best epoch"] = (paper.best_epoch, improved[0].best_epoch)
    rows["train wall time (s)"] = tuple(round(float(r.history["epoch_time_s"].sum()), 1) for r in (paper, improved[0]))
    frame = pd.DataFrame(rows, index=["paper recipe", "improved recipe"]).T
    return frame.astype(str)


def improved_curves(improved: list[TrainResult] | None, cfg: TrainConfig):
    """The improved recipe's per-epoch curves (None when it did not run)."""
    from .. import plots

    if not improved:
        return None
    return plots.plot_history(improved[0].history, f"{cfg.model} at {cfg.input_size}px, improved recipe")


def train_scratch_twin(study: Study, cfg: TrainConfig) -> TrainResult | None:
    """With COMPARE_SCRATCH: ResNet-18 from scratch with the same recipe, to test the paper's
    hypothesis that pretraining helps. Only meaningful when the main run is pretrained;
    otherwise None and a note."""
    if not study.params["COMPARE_SCRATCH"]:
        return None
    if not cfg.pretrained:
        study.notes.append(
            "The main ResNet-18 run is not pretrained, so there is no separate from-scratch "
            "twin: the pretrained-vs-scratch comparison needs the ImageNet weights."
        )
        return None
    scratch = TrainConfig.from_dict({**cfg.to_dict(), "pretrained": False, "weights": None})
    return train_run(study, scratch, tag="scratch")


def training_seeds_table(results: list[TrainResult]) -> pd.DataFrame:
    """Best epoch, validation accuracy and AUC, and training time of each seed run (mean, std)."""
    rows = []
    for i, r in enumerate(results):
        best = r.history.loc[r.history["epoch"] == r.best_epoch].iloc[0]
        rows.append(
            {
                "seed run": i,
                "best epoch": r.best_epoch,
                "val accuracy": best["val_accuracy"],
                "val AUC": best["val_auc"],
                "train time (s)": r.history["epoch_time_s"].sum(),
            }
        )
    frame = pd.DataFrame(rows).set_index("seed run").round(4)
    if len(frame) > 1:
        frame.loc["mean"] = frame.mean().round(4)
        frame.loc["std"] = frame.iloc[:-1].std().round(4)
    return frame


def training_summary(result: TrainResult | None) -> pd.DataFrame:
    """The run at a glance (from its history and the config.json it wrote): best epoch and
    validation result, wall time, throughput."""
    if result is None:
        return pd.DataFrame({"note": ["not trained in this run: see the note above"]})
    cfg = TrainConfig.from_dict(json.loads((result.run_dir / "config.json").read_text())["config"])
    h = result.history
    best = h.loc[h["epoch"] == result.best_epoch].iloc[0]
    rows = {
        "model": cfg.model,
        "input size (px)": cfg.input_size,
        "pretrained": cfg.pretrained,
        "epochs": int(h["epoch"].max()),
        "best epoch": result.best_epoch,
        "best val accuracy": round(float(best["val_accuracy"]), 4),
        "best val AUC": round(float(best["val_auc"]), 4),
        "train wall time (s)": round(float(h["epoch_time_s"].sum()), 1),
        "mean throughput (img/s)": round(float(h["train_images_per_s"].mean()), 0),
    }
    return pd.DataFrame(rows.items(), columns=["", "value"]).set_index("")


HISTORY_VIEW = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_auc", "epoch_time_s", "best")


def history_view(result: TrainResult) -> pd.DataFrame:
    """The main columns of the history ``train_model`` returned, one row per epoch."""
    return result.history[list(HISTORY_VIEW)].set_index("epoch").round(4)


def history_table(result: TrainResult) -> pd.DataFrame:
    """The per-epoch history with epochs as columns (for the appendix-style table)."""
    return result.history.set_index("epoch").drop(columns=["best"]).T.round(4)


def model_overview(model: torch.nn.Module, cfg: TrainConfig, max_rows: int = 25) -> tuple[int, pd.DataFrame]:
    """(trainable parameter count, layer table) of ``model`` at the run's input size.

    Deep models are summarised per top-level block (ResNet's layer1 ... layer4) so that the
    table stays readable; `cifake models NAME` prints every layer.
    """
    rows = pd.DataFrame(layer_table(model, cfg.input_size))
    if len(rows) > max_rows:
        rows["block"] = rows["layer"].str.split(".").str[0]
        rows = (
            rows.groupby("block", sort=False)
            .agg(
                layers=("layer", "size"),
                types=("type", lambda t: ", ".join(dict.fromkeys(t))),
                output=("output", "last"),
                params=("params", "sum"),
            )
            .reset_index()
            .rename(columns={"block": "layer"})
        )
    return count_parameters(model), rows.set_index("layer")
