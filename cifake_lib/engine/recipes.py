"""Named training recipes: ``paper``, ``improved`` and ``fast``.

``paper`` is the paper's recipe and nothing else: Adam at 1e-3, plain cross-entropy, 10 epochs,
no schedule, no augmentation; these are the ``TrainConfig`` defaults. ``improved`` is the best
recipe this project found, chosen on validation accuracy only (the ablation that picked it, with
seeds: ``benchmarks/ABLATION.md``). ``fast`` is the improved recipe on the batch-normalised
custom CNN at a higher learning rate and fewer epochs, sized for ten minutes on two CPU cores
(``benchmarks/bench_time_to_accuracy.py``); it is defined for that network only.

A recipe owns how a model is trained (optimizer, schedule, regularisation, epochs, test-time
flip). A profile (``study/profiles.py``) owns what it is trained on and at what size (input
size, batch size, subset). Settings given explicitly override both.
"""

from __future__ import annotations

from .config import RECIPES, ConfigError, TrainConfig

# the settings a recipe owns (how a model is trained); the rest belong to profiles and devices
RECIPE_KEYS = (
    "epochs",
    "lr",
    "optimizer",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "augment",
    "translate",
    "label_smoothing",
    "ema_decay",
    "tta",
    "val_every",
)

# What the improved recipe changes. Chosen on validation accuracy of the custom CNN
# (benchmarks/ABLATION.md): on an 8,000-image subset with two seeds, augmentation +0.24 pt,
# AdamW + warm-up + cosine +0.76 pt, label smoothing +0.33 pt; an EMA of the weights (-0.05 pt)
# bought nothing beyond seed noise (sd ~0.1 pt) and stays an option.
_IMPROVED = {
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 1.0,
    "augment": True,
    "label_smoothing": 0.1,
}

RECIPE_SETTINGS: dict[str, dict[str, dict]] = {
    "paper": {},
    "improved": {
        # tuned on the whole split (ABLATION.md): 40 epochs +0.67 pt over 15 and about 21 minutes
        # of training on 2 CPU cores with bf16 autocast; flip test-time augmentation +0.25 pt
        # (on the subset it had bought nothing)
        "custom_cnn": {**_IMPROVED, "lr": 1e-3, "epochs": 40, "tta": True},
        "custom_cnn_bn": {**_IMPROVED, "lr": 1e-3, "epochs": 40, "tta": True},  # as the custom CNN's
        # ResNet-18 from scratch at 32px: GPU-sized runs (benchmarks/gpu_recipes.py); not ablated
        "resnet18": {**_IMPROVED, "lr": 1e-3, "epochs": 30},
        "resnet18_cifar": {**_IMPROVED, "lr": 1e-3, "epochs": 30},
    },
    # probed on validation (benchmarks/results/probe_fast_8_epochs.json, 8 epochs, one seed each,
    # so within seed noise one by one): batch norm +0.31 pt over the custom CNN, a learning rate
    # of 3e-3 another +0.21 pt; 18 epochs fit ten minutes with validation every third epoch
    "fast": {"custom_cnn_bn": {**_IMPROVED, "lr": 3e-3, "epochs": 18, "tta": True, "val_every": 3}},
}
PAPER_LIKE = ("paper",)  # recipes that every model has (the others name the models they are for)

RECIPE_DESCRIPTIONS = {
    "paper": "the paper's recipe: Adam 1e-3, cross-entropy, 10 epochs, no schedule, no augmentation",
    "improved": "AdamW with weight decay, 1 warm-up epoch then a cosine schedule, flip + translate "
    "augmentation, label smoothing 0.1, more epochs; the custom CNN also scores with flip test-time "
    "augmentation (chosen on validation: benchmarks/ABLATION.md)",
    "fast": "the improved recipe on custom_cnn_bn (the custom CNN with batch norm) at lr 3e-3 for 18 epochs, "
    "validating every third epoch: sized for 10 minutes of training on 2 CPU cores "
    "(benchmarks/bench_time_to_accuracy.py)",
}


def recipe_settings(recipe: str, model: str) -> dict:
    """The settings ``recipe`` gives ``model`` on top of the TrainConfig defaults."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if recipe not in PAPER_LIKE and model not in RECIPE_SETTINGS[recipe]:
        raise ConfigError(
            f"the {recipe} recipe is defined for {', '.join(RECIPE_SETTINGS[recipe])}, not {model!r} "
            "(`cifake recipes` lists them)"
        )
    return {"recipe": recipe, **RECIPE_SETTINGS[recipe].get(model, {})}


def has_recipe(recipe: str, model: str) -> bool:
    try:
        recipe_settings(recipe, model)
        return True
    except ConfigError:
        return False


def recipe_config(recipe: str = "paper", model: str = "resnet18", **overrides) -> TrainConfig:
    """TrainConfig of ``model`` under ``recipe``; overrides (not None) win."""
    values = {"model": model, **recipe_settings(recipe, model)}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values)


def departures(cfg: TrainConfig) -> dict[str, tuple]:
    """{setting: (recipe value, run value)} where a run differs from its named recipe in how it
    is trained (input size, batch size, subset and device settings are the profile's)."""
    base = recipe_config(cfg.recipe, cfg.model).to_dict()
    run = cfg.to_dict()
    return {k: (base[k], run[k]) for k in sorted(RECIPE_KEYS) if base[k] != run[k]}


def recipe_table(models: list[str] | None = None) -> str:
    """A text table: one row per training setting a recipe owns, one column per recipe and model."""
    from .registry import MODELS

    models = models or list(MODELS)
    owned = list(RECIPE_KEYS)
    cols = [(r, m) for m in models for r in RECIPES if has_recipe(r, m)]
    cells = {c: recipe_config(c[0], c[1]).to_dict() for c in cols}
    head = ["setting", *(f"{m} {r}" for r, m in cols)]
    rows = [[k, *(str(cells[c][k]) for c in cols)] for k in owned]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in [head, *rows])
