"""Grad-CAM for the trained models (the `grad-cam` package), always in fp32.

``cam_maps`` returns one map per image, for the class the model predicts, at the model's input
resolution; ``centre_share`` summarises where a map puts its mass, so that the notebook's
reading of the maps is built from measured numbers.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ..engine.config import TrainConfig
from ..engine.preprocess import Preprocessor

MIN_CAM_SIDE = 4  # a 1x1 or 2x2 map says nothing about where the model looks


def target_layer(model: torch.nn.Module, name: str, input_size: int) -> tuple[torch.nn.Module, str]:
    """(layer, its name): the deepest convolutional stage whose output is at least 4x4.

    For ResNet-18 that is layer4 at 224px (7x7), layer3 at 64px and layer2 at 32px, where the
    deeper stages shrink to 2x2 or 1x1; for the custom CNN, its last convolution.
    """
    if name.startswith("resnet18"):
        side = input_size if name == "resnet18_cifar" else input_size // 4  # stem + max-pool: /4
        for stage, stride in (("layer4", 8), ("layer3", 4), ("layer2", 2)):
            if side // stride >= MIN_CAM_SIDE:
                return getattr(model, stage)[-1], stage
        return model.layer1[-1], "layer1"
    if name == "custom_cnn":
        return model.features[6], "features.6 (last conv)"  # its ReLU is in-place, which hooks dislike
    if name == "custom_cnn_bn":
        return model.features[9], "features.9 (batch norm of the last conv)"
    raise ValueError(f"no Grad-CAM target layer known for {name!r}")


def cam_maps(model: torch.nn.Module, cfg: TrainConfig, images: np.ndarray, batch_size: int = 64):
    """(cams N x S x S in 0..1, predicted labels, p_fake, de-normalized inputs N x 3 x S x S).

    Runs in fp32 on the CPU whatever precision training used; maps are for the predicted class.
    """
    model = model.float().cpu().eval()
    prep = Preprocessor(cfg.input_size)
    cams, preds, probs, views = [], [], [], []
    layer, _ = target_layer(model, cfg.model, cfg.input_size)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for start in range(0, len(images), batch_size):
            x = prep(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])))
            with torch.no_grad():
                p = torch.softmax(model(x), dim=1)[:, 1].numpy()
            pred = (p >= 0.5).astype(int)
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in pred])
            cams.append(maps)
            preds.append(pred)
            probs.append(p)
            views.append(prep.denormalize(x).numpy())
    return np.concatenate(cams), np.concatenate(preds), np.concatenate(probs), np.concatenate(views)


def centre_share(cams: np.ndarray, frac: float = 0.5) -> np.ndarray:
    """Share of each map's mass inside the central square covering ``frac`` of the side."""
    n, h, w = cams.shape
    y0, y1 = int(h * (1 - frac) / 2), int(h * (1 + frac) / 2)
    x0, x1 = int(w * (1 - frac) / 2), int(w * (1 + frac) / 2)
    total = cams.reshape(n, -1).sum(axis=1) + 1e-12
    return cams[:, y0:y1, x0:x1].reshape(n, -1).sum(axis=1) / total
