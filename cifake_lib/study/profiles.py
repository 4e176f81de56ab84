"""Run profiles as data: `smoke` (CI, minutes), `cpu` (real data on 2 cores), `paper` (GPU).

A profile says what each model is trained on and at what size (input size, batch size, subset),
which named recipes (engine/recipes.py) the study trains for it, the number of training seeds and
how many test images per class the evaluation notebooks score. The recipe says how a model is
trained (optimizer, schedule, epochs, ...); a profile's values override the recipe's, explicit
values override both. `auto` picks `paper` when CUDA is available and `cpu` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import RECIPES, ConfigError, TrainConfig
from ..engine.recipes import recipe_settings

PROFILES: dict[str, dict] = {
    "smoke": {
        "description": "tiny: 1 epoch, small images, <=150 images per class, 2 seeds; minutes on a CPU",
        "seeds": 2,
        "eval_limit_per_class": 300,  # test images per class scored in 05-07
        "common": {"epochs": 1, "batch_size": 64, "limit_per_class": 150},
        "recipes": {"resnet18": ("paper",), "custom_cnn": ("paper", "improved")},
        "resnet18": {"image_size": 32},
        "custom_cnn": {"image_size": 32},
        "custom_cnn_bn": {"image_size": 32},
        "resnet18_cifar": {"image_size": 32},
    },
    "cpu": {
        "description": "real CIFAKE on a 2-core CPU, like for like: ResNet-18 and the custom CNN both at 32px "
        "on the full train split with the paper's recipe (10 epochs), one seed; the custom CNN also "
        "with the improved recipe",
        "seeds": 1,
        "eval_limit_per_class": None,  # the whole test part
        "common": {"batch_size": 128},
        # ResNet-18's improved recipe (30 epochs) is GPU-sized: benchmarks/gpu_check.py runs it
        "recipes": {"resnet18": ("paper",), "custom_cnn": ("paper", "improved")},
        # the same training images and input size for both networks, so that the comparison is
        # decided by the architectures, not by compute (measured: ResNet-18 at 32px ~440 img/s here)
        "resnet18": {"image_size": 32},
        "custom_cnn": {"image_size": 32},
        "custom_cnn_bn": {"image_size": 32},
        "resnet18_cifar": {"image_size": 32, "limit_per_class": 1500},
    },
    "paper": {
        "description": "the paper's recipe on a GPU: pretrained ResNet-18 at 224px, Adam 1e-3, "
        "10 epochs, full data; the custom CNN with the same preprocessing; one seed",
        "seeds": 1,
        "eval_limit_per_class": None,
        "common": {"batch_size": 256},
        "recipes": {"resnet18": ("paper", "improved"), "custom_cnn": ("paper", "improved")},
        "resnet18": {"image_size": 224, "pretrained": True},
        "custom_cnn": {"image_size": 224},
        "custom_cnn_bn": {"image_size": 224},
        "resnet18_cifar": {"image_size": 32},
    },
}


def resolve_profile(name: str) -> str:
    """`auto` -> `paper` with CUDA, else `cpu`; other names are checked."""
    if name == "auto":
        import torch

        return "paper" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose auto, {', '.join(PROFILES)}")
    return name


SOURCES = ("default", "recipe", "profile", "parameter", "explicit")  # later ones win


@dataclass(frozen=True)
class ResolvedSettings:
    """A run's TrainConfig and, for each setting, where its value came from: the TrainConfig
    ``default``, the named ``recipe``, the ``profile``, a notebook ``parameter`` or an
    ``explicit`` value of the caller."""

    config: TrainConfig
    sources: dict  # {setting: source}
    given_by: dict  # {setting: notebook parameter name} for settings a parameter set

    def source(self, name: str) -> str:
        """Where setting ``name`` came from (a parameter is named: ``parameter EPOCHS``)."""
        if name in self.given_by:
            return f"parameter {self.given_by[name]}"
        return self.sources.get(name, "default")

    def table(self, set_only: bool = False):
        """setting | value | from, in TrainConfig's order, then the input size the model gets;
        ``set_only`` leaves out the settings that keep TrainConfig's default (a DataFrame)."""
        import pandas as pd

        rows = [
            {"setting": name, "value": "" if value is None else str(value), "from": self.source(name)}
            for name, value in self.config.to_dict().items()
            if not (set_only and self.source(name) == "default")
        ]
        size_from = "image_size" if self.config.image_size else "the model's default"
        rows.append({"setting": "input size (px)", "value": str(self.config.input_size), "from": size_from})
        return pd.DataFrame(rows).set_index("setting")


def resolve_settings(
    profile: str,
    model: str,
    recipe: str = "paper",
    parameters: dict | None = None,
    explicit: dict | None = None,
    given_by: dict | None = None,
) -> ResolvedSettings:
    """The TrainConfig of ``model`` under ``profile`` and ``recipe``, merged in one place: the
    TrainConfig defaults, then the recipe, the profile, the notebook's ``parameters`` and the
    caller's ``explicit`` values (None keeps the layer below; ``limit_per_class=0`` means no
    limit). Records where each setting came from."""
    name = resolve_profile(profile)
    spec = PROFILES[name]
    if model not in spec:
        raise ConfigError(f"profile {name!r} has no settings for model {model!r}")
    layers = (
        ("recipe", recipe_settings(recipe, model)),
        ("profile", {**spec["common"], **spec[model]}),
        ("parameter", parameters or {}),
        ("explicit", explicit or {}),
    )
    values, sources = {"model": model}, {"model": "explicit"}
    for source, layer in layers:
        for key, value in layer.items():
            if value is not None:
                values[key], sources[key] = value, source
    if values.get("limit_per_class") == 0:
        values["limit_per_class"] = None
    given = {k: v for k, v in (given_by or {}).items() if sources.get(k) == "parameter"}
    return ResolvedSettings(TrainConfig.from_dict(values), sources, given)


def profile_config(profile: str, model: str, recipe: str = "paper", **overrides) -> TrainConfig:
    """TrainConfig for ``model`` under ``profile`` with the named ``recipe``.

    Overrides whose value is None keep the profile's value; ``limit_per_class=0`` means no limit.
    """
    return resolve_settings(profile, model, recipe, explicit=overrides).config


def profile_recipes(profile: str, model: str) -> tuple[str, ...]:
    """The recipes the study trains for ``model`` under ``profile`` (paper first)."""
    recipes = PROFILES[resolve_profile(profile)].get("recipes", {})
    found = tuple(recipes.get(model, recipes.get(model.split("_")[0], ("paper",))))
    unknown = [r for r in found if r not in RECIPES]
    if unknown:
        raise ConfigError(f"profile {profile!r} names unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    return found
