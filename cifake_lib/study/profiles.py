"""Run profiles as data: `smoke` (CI, minutes), `cpu` (real data on 2 cores), `paper` (GPU).

A profile sets defaults for a model's TrainConfig, the number of training seeds and how many
test images per class the evaluation notebooks score; explicit values override it. `auto` picks
`paper` when CUDA is available and `cpu` otherwise.
"""

from __future__ import annotations

from ..engine.config import ConfigError, TrainConfig

PROFILES: dict[str, dict] = {
    "smoke": {
        "description": "tiny: 1 epoch, small images, <=150 images per class, 2 seeds; minutes on a CPU",
        "seeds": 2,
        "eval_limit_per_class": 300,  # test images per class scored in 05-07
        "common": {"epochs": 1, "batch_size": 64, "limit_per_class": 150},
        "resnet18": {"image_size": 32},
        "custom_cnn": {"image_size": 32},
        "resnet18_cifar": {"image_size": 32},
    },
    "cpu": {
        "description": "real CIFAKE on a 2-core CPU, like for like: ResNet-18 and the custom CNN both at 32px "
        "on the full train split, 10 epochs each, one seed",
        "seeds": 1,
        "eval_limit_per_class": None,  # the whole test part
        "common": {"epochs": 10, "batch_size": 128},
        # the same training images and input size for both networks, so that the comparison is
        # decided by the architectures, not by compute (measured: ResNet-18 at 32px ~440 img/s here)
        "resnet18": {"image_size": 32},
        "custom_cnn": {"image_size": 32},
        "resnet18_cifar": {"image_size": 32, "limit_per_class": 1500},
    },
    "paper": {
        "description": "the paper's recipe on a GPU: pretrained ResNet-18 at 224px, Adam 1e-3, "
        "10 epochs, full data; the custom CNN with the same preprocessing; one seed",
        "seeds": 1,
        "eval_limit_per_class": None,
        "common": {"epochs": 10, "batch_size": 256},
        "resnet18": {"image_size": 224, "pretrained": True},
        "custom_cnn": {"image_size": 224},
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


def profile_config(profile: str, model: str, **overrides) -> TrainConfig:
    """TrainConfig for ``model`` under ``profile``.

    Overrides whose value is None keep the profile's value; ``limit_per_class=0`` means no limit.
    """
    name = resolve_profile(profile)
    spec = PROFILES[name]
    if model not in spec:
        raise ConfigError(f"profile {name!r} has no settings for model {model!r}")
    values = {"model": model, **spec["common"], **spec[model]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("limit_per_class") == 0:
        values["limit_per_class"] = None
    return TrainConfig.from_dict(values)
