"""Training configuration: one validated dataclass; unknown or invalid values fail loudly.

Each field is declared once, here, with its help text. The command line builds `cifake train`'s
options from these fields, the notebooks map their parameters onto them, and ``resume``
metadata says which settings a resumed run may change. How the data is split is not part of
a training configuration: it lives in the split manifest (``splits.json``) of the run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from .registry import MODELS, default_image_size

SCHEDULES = ("none", "cosine", "onecycle")
OPTIMIZERS = ("adam", "adamw")
RECIPES = ("paper", "improved", "fast")  # their settings: engine/recipes.py
AMP_MODES = ("auto", "bf16", "off")
SELECT_METRICS = ("val_accuracy", "val_loss", "val_auc", "val_f1")


class ConfigError(ValueError):
    """A configuration value is unknown or out of range."""


def _setting(default, help: str, *, resume_may_change: bool = False, choices=None, cli: bool = True):
    meta = {"help": help, "resume_may_change": resume_may_change, "choices": choices, "cli": cli}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the paper's recipe
    (``recipes.recipe_config("paper", model)`` is exactly ``TrainConfig(model=model)``)."""

    model: str = _setting("resnet18", "model name", choices=tuple(MODELS))
    recipe: str = _setting(
        "paper",
        "named recipe whose defaults the run starts from (paper: Adam 1e-3, 10 epochs, nothing else; "
        "improved: see `cifake recipes`); options given explicitly override them",
        choices=RECIPES,
    )
    image_size: int | None = _setting(None, "model input size in pixels (default: 224 resnet18, 32 the others)")
    epochs: int = _setting(10, "epochs (default 10); a resumed run may train more", resume_may_change=True)
    batch_size: int = _setting(128, "training batch size (default 128)")
    lr: float = _setting(1e-3, "learning rate (default 1e-3, Adam as in the paper)")
    optimizer: str = _setting("adam", "optimizer (default adam; adamw decouples the weight decay)", choices=OPTIMIZERS)
    weight_decay: float = _setting(0.0, "weight decay (default 0)")
    backbone_lr_scale: float = _setting(1.0, "backbone lr = lr x this, in (0, 1] (fine-tuning; default 1)")
    schedule: str = _setting("none", "learning-rate schedule (default none)", choices=SCHEDULES)
    warmup_epochs: float = _setting(
        0.0, "linear learning-rate warm-up before the cosine schedule, in epochs (default 0)"
    )
    augment: bool = _setting(False, "random flip + translation by up to --translate px, on the device")
    translate: int = _setting(
        2, "largest shift of the augmentation in pixels, in x and y, at the stored 32x32 resolution (default 2)"
    )
    label_smoothing: float = _setting(0.0, "label smoothing of the training loss, in [0, 0.5) (default 0)")
    ema_decay: float = _setting(
        0.0,
        "validate and save an exponential moving average of the weights with this decay per step, "
        "in [0, 1) (default 0: off)",
    )
    tta: bool = _setting(
        False, "score each image as the mean logits of it and its mirror image (validation, evaluation, predict)"
    )
    seed: int = _setting(0, "training seed: initialisation, batch order, dropout (default 0)")
    pretrained: bool = _setting(False, "start from ImageNet weights (resnet18)")
    weights: str | None = _setting(
        None, "local ImageNet ResNet-18 weights file (resnet18-f37072fd.pth)", resume_may_change=True
    )
    limit_per_class: int | None = _setting(
        None, "train on a stratified subset of K images per class (validation cut in proportion, test part unchanged)"
    )
    select_metric: str = _setting(
        "val_accuracy", "validation metric that picks best.pt (default val_accuracy)", choices=SELECT_METRICS
    )
    val_every: int = _setting(
        1,
        "validate every N epochs and always on the last (default 1: every epoch); epochs in between are not "
        "scored and cannot become best.pt, which saves the validation time of a long schedule",
        resume_may_change=True,
    )
    deterministic: bool = _setting(False, "deterministic cuDNN kernels (slower)", resume_may_change=True)
    device: str = _setting("auto", "auto (CUDA when available), cpu, cuda or cuda:N", resume_may_change=True)
    amp: str = _setting(
        "auto",
        "mixed precision of training; auto: bf16 autocast on CUDA and on CPUs with bf16 instructions "
        "(AVX512-BF16 or AMX), else off. Validation, evaluation and prediction always score in fp32",
        resume_may_change=True,
        choices=AMP_MODES,
    )
    tf32: bool = _setting(
        True,
        "TF32 for fp32 matrix products and convolutions on CUDA (default on), the same in training, validation "
        "and evaluation; no effect on the CPU",
        resume_may_change=True,
    )
    channels_last: bool | None = _setting(
        None, "channels_last memory format (None: on)", resume_may_change=True, cli=False
    )
    compile: bool = _setting(False, "torch.compile the model", resume_may_change=True)
    eval_batch_size: int = _setting(512, "batch size for validation and prediction", resume_may_change=True, cli=False)

    def __post_init__(self):
        self.validate()

    @property
    def input_size(self) -> int:
        return self.image_size if self.image_size is not None else default_image_size(self.model)

    def validate(self) -> TrainConfig:
        for name, (ok, why) in self._checks().items():
            if not ok:
                raise ConfigError(f"invalid {name}={getattr(self, name)!r}: {why}")
        if self.schedule == "onecycle" and self.warmup_epochs:
            raise ConfigError(
                f"invalid warmup_epochs={self.warmup_epochs!r}: the onecycle schedule has its own warm-up"
            )
        if self.model.startswith("custom_cnn") and (self.pretrained or self.weights):
            raise ConfigError(f"invalid pretrained={self.pretrained!r}: {self.model} has no pretrained weights")
        return self

    def _checks(self) -> dict[str, tuple[bool, str]]:
        def whole(v, low, allow_none=False):
            return (allow_none and v is None) or (not isinstance(v, bool) and isinstance(v, int) and v >= low)

        def number(v):
            return not isinstance(v, bool) and isinstance(v, (int, float))

        dev = self.device
        return {
            "model": (self.model in MODELS, f"choose one of {', '.join(MODELS)}"),
            "epochs": (whole(self.epochs, 1), "must be a positive integer"),
            "batch_size": (whole(self.batch_size, 1), "must be a positive integer"),
            "eval_batch_size": (whole(self.eval_batch_size, 1), "must be a positive integer"),
            "val_every": (whole(self.val_every, 1), "must be a positive integer"),
            "image_size": (
                whole(self.image_size, 8, allow_none=True),
                "must be an integer of at least 8 pixels (or None for the model default)",
            ),
            "lr": (number(self.lr) and 0 < self.lr < 10, "must be a positive number"),
            "weight_decay": (number(self.weight_decay) and self.weight_decay >= 0, "must be >= 0"),
            "backbone_lr_scale": (
                number(self.backbone_lr_scale) and 0 < self.backbone_lr_scale <= 1,
                "must be in (0, 1]",
            ),
            "schedule": (self.schedule in SCHEDULES, f"choose one of {', '.join(SCHEDULES)}"),
            "recipe": (self.recipe in RECIPES, f"choose one of {', '.join(RECIPES)}"),
            "optimizer": (self.optimizer in OPTIMIZERS, f"choose one of {', '.join(OPTIMIZERS)}"),
            "warmup_epochs": (
                number(self.warmup_epochs) and self.warmup_epochs >= 0 and self.warmup_epochs <= _num(self.epochs),
                "must be >= 0 and at most the number of epochs",
            ),
            "label_smoothing": (
                number(self.label_smoothing) and 0 <= self.label_smoothing < 0.5,
                "must be in [0, 0.5)",
            ),
            "ema_decay": (number(self.ema_decay) and 0 <= self.ema_decay < 1, "must be in [0, 1)"),
            # reflection padding needs a pad smaller than the 32-pixel images it pads
            "translate": (whole(self.translate, 0) and self.translate < 16, "must be an integer in [0, 16) pixels"),
            "amp": (self.amp in AMP_MODES, f"choose one of {', '.join(AMP_MODES)}"),
            "select_metric": (self.select_metric in SELECT_METRICS, f"choose one of {', '.join(SELECT_METRICS)}"),
            "limit_per_class": (whole(self.limit_per_class, 1, allow_none=True), "must be a positive integer or None"),
            "device": (
                isinstance(dev, str) and (dev in ("auto", "cpu") or dev.startswith("cuda")),
                "use auto, cpu, cuda or cuda:N",
            ),
        }

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_checkpoint(cls, values: dict) -> TrainConfig:
        """The config stored in a checkpoint; drops the split settings that checkpoints written
        before they moved to the split manifest still carry."""
        return cls.from_dict({k: v for k, v in values.items() if k not in LEGACY_SPLIT_FIELDS})

    def changed_for_resume(self, stored: dict) -> list[str]:
        """'name old -> new' for each setting that differs from ``stored`` and must not. A setting
        that ``stored`` lacks (a run saved before it existed) had its default."""
        return [
            f"{f.name} {stored.get(f.name, f.default)!r} -> {getattr(self, f.name)!r}"
            for f in fields(self)
            if not f.metadata["resume_may_change"] and stored.get(f.name, f.default) != getattr(self, f.name)
        ]


def _num(v) -> float:
    """v when it is a number, else -inf (so that a check comparing with it fails, not crashes)."""
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else float("-inf")


# fields that TrainConfig had before the split settings moved to the split manifest
LEGACY_SPLIT_FIELDS = ("val_fraction", "test_fraction", "split_seed", "dedupe_train")


def cli_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields that `cifake train` offers as options."""
    return [f for f in fields(TrainConfig) if f.metadata["cli"]]
