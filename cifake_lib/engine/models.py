"""Models by name: the paper's ResNet-18 (2-class head), a 32x32-native ResNet-18, the custom CNN."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models import ResNet18_Weights, resnet18

from .errors import WeightsUnavailableError
from .registry import MODELS, default_image_size, model_spec  # noqa: F401  (re-exported)

NUM_CLASSES = 2
RESNET18_WEIGHTS = ResNet18_Weights.IMAGENET1K_V1
WEIGHTS_HOST = ("download.pytorch.org", 443)


class CustomCNN(nn.Module):
    """This project's reading of the paper's custom CNN.

    The paper specifies only 3x3 convolutions with ReLU and max-pooling, followed by fully
    connected layers. The widths (32, 64, 128), the adaptive max-pool, the 2048-256-2 head and
    dropout 0.3 are this project's choices. Three conv blocks (32, 64, 128 channels) halve the
    resolution each; an adaptive max-pool to 4x4 makes the same network take 32x32 or 224x224
    input (at 32x32 it is the identity).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 32, dropout: float = 0.3):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveMaxPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c3 * 16, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CustomCNNBN(CustomCNN):
    """The custom CNN with batch normalisation after each convolution: the same three conv blocks
    (32, 64, 128 channels, without biases), max-pooling, 2048-256-2 head and dropout, so the same
    convolutions per image; normalised activations let it train at a higher learning rate and
    converge in fewer epochs (the ``fast`` recipe)."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 32, dropout: float = 0.3):
        super().__init__(num_classes, width, dropout)
        layers = []
        for layer in self.features:
            layers.append(layer)
            if isinstance(layer, nn.Conv2d):
                layer.bias = None  # the batch norm's shift replaces it
                layers.append(nn.BatchNorm2d(layer.out_channels))
        self.features = nn.Sequential(*layers)


def weights_cache_file() -> Path:
    """Where torchvision keeps the ImageNet ResNet-18 weights (torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(RESNET18_WEIGHTS.url)


def _offline_message(reason: str) -> str:
    target = weights_cache_file()
    return (
        f"pretrained ResNet-18 weights are not available ({reason}). They are the file "
        f"{target.name} (torchvision ResNet18_Weights.IMAGENET1K_V1, from {RESNET18_WEIGHTS.url}). "
        f"Looked in the torch hub cache: {target.parent}. Copy the file there "
        f"(mkdir -p {target.parent} && cp {target.name} {target.parent}/), or pass its path with "
        "--weights PATH (weights_path=...), or train without pretraining (pretrained=False)."
    )


def load_resnet18_state(weights_path: str | os.PathLike | None = None, timeout: float = 3.0) -> dict:
    """ImageNet ResNet-18 state dict: from ``weights_path``, the hub cache, or a download."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(_offline_message(f"{path} does not exist"))
        return _read_state(path)
    cached = weights_cache_file()
    if cached.is_file():
        return _read_state(cached)
    try:
        socket.create_connection(WEIGHTS_HOST, timeout=timeout).close()
    except OSError as exc:
        raise WeightsUnavailableError(_offline_message(f"offline: {exc}")) from None
    try:
        return RESNET18_WEIGHTS.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # URLError, HTTPError, hash mismatch, disk full...
        raise WeightsUnavailableError(_offline_message(f"download failed: {exc}")) from None


def _read_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailableError(f"{path} is not a readable PyTorch weights file: {exc}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a cifake checkpoint
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise WeightsUnavailableError(f"{path} does not hold ResNet-18 weights (no conv1.weight)")
    return state


def _resnet18(pretrained: bool, weights_path, cifar_stem: bool) -> nn.Module:
    model = resnet18(weights=None)
    if pretrained or weights_path is not None:
        state = load_resnet18_state(weights_path)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise WeightsUnavailableError(
                f"weights do not match ResNet-18: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
    if cifar_stem:
        # native 32x32 input: a 3x3 stride-1 stem and no max-pool keep a 4x4 map before pooling
        model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.fc = nn.Linear(model.fc.in_features, NUM_CLASSES)
    return model


def build_resnet18(pretrained: bool = False, weights_path=None) -> nn.Module:
    """torchvision ResNet-18, ImageNet weights when pretrained, a new 2-class linear head."""
    return _resnet18(pretrained, weights_path, cifar_stem=False)


def build_resnet18_cifar(pretrained: bool = False, weights_path=None) -> nn.Module:
    """ResNet-18 for native 32x32 input (3x3 stride-1 stem, no max-pool); the new stem is
    trained from scratch even when the other layers start from ImageNet weights."""
    return _resnet18(pretrained, weights_path, cifar_stem=True)


def build_custom_cnn(pretrained: bool = False, weights_path=None) -> nn.Module:
    if pretrained or weights_path is not None:
        raise ValueError("custom_cnn has no pretrained weights; use pretrained=False")
    return CustomCNN()


def build_custom_cnn_bn(pretrained: bool = False, weights_path=None) -> nn.Module:
    if pretrained or weights_path is not None:
        raise ValueError("custom_cnn_bn has no pretrained weights; use pretrained=False")
    return CustomCNNBN()


def build_model(name: str, pretrained: bool = False, weights_path=None) -> nn.Module:
    """Build a registered model by name (see ``registry.MODELS``)."""
    builder = globals()[model_spec(name).builder]
    return builder(pretrained=pretrained, weights_path=weights_path)


def head_parameters(model: nn.Module, name: str) -> tuple[list, list]:
    """(backbone parameters, head parameters), for a lower backbone learning rate."""
    head_prefix = model_spec(name).head + "."
    head, backbone = [], []
    for pname, p in model.named_parameters():
        (head if pname.startswith(head_prefix) else backbone).append(p)
    return backbone, head


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_table(model: nn.Module, image_size: int) -> list[dict]:
    """One row per leaf module: name, type, output shape for one image, parameter count."""
    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if list(module.children()):
            continue

        def hook(mod, inp, out, name=name):
            rows.append(
                {
                    "layer": name,
                    "type": type(mod).__name__,
                    "output": "x".join(str(d) for d in tuple(out.shape[1:])),
                    "params": sum(p.numel() for p in mod.parameters(recurse=False)),
                }
            )

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def format_layer_table(rows: list[dict], total: int) -> str:
    width = max(len(r["layer"]) for r in rows)
    lines = [f"{'layer':<{width}}  {'type':<18}{'output (CxHxW)':>16}{'params':>12}"]
    for r in rows:
        lines.append(f"{r['layer']:<{width}}  {r['type']:<18}{r['output']:>16}{r['params']:>12,}")
    lines.append(f"{'total':<{width}}  {'':<18}{'':>16}{total:>12,}")
    return "\n".join(lines)
