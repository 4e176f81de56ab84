"""The model registry: every model by name with its metadata, importable without torch.

``models.build_model`` builds them; the command line lists them from here without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it and what it expects."""

    name: str
    builder: str  # the function in engine/models.py that builds it
    input_size: int  # default input size in pixels
    head: str  # prefix of the parameters that form the new 2-class head
    description: str


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "resnet18",
            "build_resnet18",
            224,
            "fc",
            "torchvision ResNet-18 (ImageNet stem), new 2-class linear head: the paper's model",
        ),
        ModelSpec(
            "resnet18_cifar",
            "build_resnet18_cifar",
            32,
            "fc",
            "ResNet-18 for native 32x32 input: 3x3 stride-1 stem, no max-pool",
        ),
        ModelSpec(
            "custom_cnn",
            "build_custom_cnn",
            32,
            "classifier",
            "this project's reading of the paper's custom CNN: 3 conv blocks + 2 dense layers",
        ),
        ModelSpec(
            "custom_cnn_bn",
            "build_custom_cnn_bn",
            32,
            "classifier",
            "the custom CNN with batch normalisation after each convolution (about the same cost per image)",
        ),
    )
}


def model_spec(name: str) -> ModelSpec:
    """The spec of a registered model; ValueError naming the choices otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def default_image_size(name: str) -> int:
    return model_spec(name).input_size
