"""03_train_resnet18 and 04_train_custom_cnn: one model trained on the study's splits, per seed."""

from __future__ import annotations

import pandas as pd

from ...data.splits import limit_parts
from ...engine.config import TrainConfig
from ...engine.models import build_model, count_parameters, layer_table
from ...engine.recipes import RECIPE_KEYS
from ...engine.trainer import TrainResult, train_model
from ..notebook import Study
from ..profiles import profile_recipes


def train_stage(study: Study, cfg: TrainConfig, seed_index: int = 0, tag: str = "") -> TrainResult:
    """Train one model of the study on its saved splits (a per-class subset when the config says
    so); with RESUME, continue from the run's last.pt when there is one."""
    data = study.load_data()
    splits = limit_parts(study.load_splits(), data, cfg.limit_per_class, seed=study.seed)
    run = study.layout.run_dir(cfg.model, seed_index, tag)
    resume = study.params["RESUME"] and (run / "last.pt").exists()
    return train_model(cfg, data, splits, run, resume=resume)


def train_seeds(study: Study, cfg: TrainConfig, tag: str = "") -> list[TrainResult]:
    """Train the model once per seed (SEEDS, or the profile's count): seed SEED + i into run i."""
    return [
        train_stage(study, TrainConfig.from_dict({**cfg.to_dict(), "seed": cfg.seed + i}), seed_index=i, tag=tag)
        for i in range(study.n_seeds())
    ]


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


def recipes_compared(paper: TrainResult, improved: TrainResult, cfgs: tuple[TrainConfig, TrainConfig]) -> pd.DataFrame:
    """The settings that differ between the two recipes, then each run's best validation result."""
    a, b = (c.to_dict() for c in cfgs)
    rows = {k: (a[k], b[k]) for k in RECIPE_KEYS if a[k] != b[k]}
    for name, key in (("best val accuracy", "val_accuracy"), ("best val AUC", "val_auc")):
        rows[name] = tuple(
            round(float(r.history.loc[r.history["epoch"] == r.best_epoch, key].iloc[0]), 4) for r in (paper, improved)
        )
    rows["best epoch"] = (paper.best_epoch, improved.best_epoch)
    rows["train wall time (s)"] = tuple(round(float(r.history["epoch_time_s"].sum()), 1) for r in (paper, improved))
    frame = pd.DataFrame(rows, index=["paper recipe", "improved recipe"]).T
    return frame.astype(str)


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
    return train_stage(study, scratch, tag="scratch")


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


def training_summary(result: TrainResult, cfg: TrainConfig) -> pd.DataFrame:
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


def history_table(result: TrainResult) -> pd.DataFrame:
    """The per-epoch history with epochs as columns (for the appendix-style table)."""
    return result.history.set_index("epoch").drop(columns=["best"]).T.round(4)


def model_overview(cfg: TrainConfig, max_rows: int = 25) -> tuple[int, pd.DataFrame]:
    """(parameter count, layer table) of the configured model at its input size.

    Deep models are summarised per top-level block (ResNet's layer1 ... layer4) so that the
    table stays readable; `cifake models NAME` prints every layer.
    """
    model = build_model(cfg.model)
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


def config_table(cfg: TrainConfig) -> pd.DataFrame:
    d = cfg.to_dict()
    d["input_size (px)"] = cfg.input_size
    return pd.DataFrame(list(d.items()), columns=["setting", "value"]).set_index("setting")
