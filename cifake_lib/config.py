"""Training configuration: one validated dataclass; unknown or invalid values fail loudly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from .models import MODELS, default_image_size

SCHEDULES = ("none", "cosine", "onecycle")
AMP_MODES = ("auto", "bf16", "off")
SELECT_METRICS = ("val_accuracy", "val_loss", "val_auc", "val_f1")


class ConfigError(ValueError):
    """A configuration value is unknown or out of range."""


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the paper's recipe."""

    model: str = "resnet18"
    image_size: int | None = None  # None: the model's default (224 for resnet18, 32 otherwise)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # Adam, as in the paper
    weight_decay: float = 0.0
    backbone_lr_scale: float = 1.0  # < 1: a lower learning rate for the pretrained backbone
    schedule: str = "none"
    augment: bool = False
    seed: int = 0
    pretrained: bool = False
    weights: str | None = None  # local ImageNet weights file for resnet18 (offline use)
    select_metric: str = "val_accuracy"  # which validation metric picks best.pt
    deterministic: bool = False
    device: str = "auto"
    amp: str = "auto"  # auto: bf16 autocast on CUDA, off on the CPU
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False
    eval_batch_size: int = 512
    # how the data is split (saved as the run's manifest)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    limit_per_class: int | None = None
    dedupe_train: bool = False

    def __post_init__(self):
        self.validate()

    @property
    def input_size(self) -> int:
        return self.image_size if self.image_size is not None else default_image_size(self.model)

    def validate(self) -> "TrainConfig":
        def bad(name, why):
            raise ConfigError(f"invalid {name}={getattr(self, name)!r}: {why}")

        if self.model not in MODELS:
            bad("model", f"choose one of {', '.join(MODELS)}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(name, "must be a positive integer")
        if self.image_size is not None and (isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8):
            bad("image_size", "must be an integer of at least 8 pixels (or None for the model default)")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < 10:
            bad("lr", "must be a positive number")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if not isinstance(self.backbone_lr_scale, (int, float)) or not 0 < self.backbone_lr_scale <= 1:
            bad("backbone_lr_scale", "must be in (0, 1]")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"choose one of {', '.join(SCHEDULES)}")
        if self.amp not in AMP_MODES:
            bad("amp", f"choose one of {', '.join(AMP_MODES)}")
        if self.select_metric not in SELECT_METRICS:
            bad("select_metric", f"choose one of {', '.join(SELECT_METRICS)}")
        if self.model == "custom_cnn" and (self.pretrained or self.weights):
            bad("pretrained", "custom_cnn has no pretrained weights")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 < v < 1:
                bad(name, "must be between 0 and 1")
        if self.limit_per_class is not None and (
            isinstance(self.limit_per_class, bool) or not isinstance(self.limit_per_class, int) or self.limit_per_class < 1
        ):
            bad("limit_per_class", "must be a positive integer or None")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            bad("device", "use auto, cpu, cuda or cuda:N")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def split_settings(self) -> dict:
        return {
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.split_seed,
            "limit_per_class": self.limit_per_class,
            "dedupe_train": self.dedupe_train,
        }
