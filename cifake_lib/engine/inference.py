"""Batched inference: float32 logits for rows of the in-memory uint8 dataset, or for any array.

Every prediction in the project (validation during training, evaluation, robustness, `cifake
predict`) goes through :func:`predict_logits`, so they all preprocess and score alike. Logits
are kept in float32 (the model may run in bf16): probabilities, temperature scaling and losses
are derived from them, never from rounded probabilities.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import TrainConfig
from .runtime import Runtime, configure_device, make_runtime, to_device


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    idx: torch.Tensor,
    rt: Runtime,
    batch_size: int,
    progress: bool = False,
    desc: str = "predict",
) -> torch.Tensor:
    """float32 N x 2 logits for rows ``idx`` of a uint8 image tensor, in that order (with the
    runtime's flip test-time augmentation, when on)."""
    model.eval()
    out = []
    bar = tqdm(total=len(idx), desc=desc, unit="img", leave=False, disable=not progress)
    for start in range(0, len(idx), batch_size):
        b = idx[start : start + batch_size]
        x = rt.prep(images[b], train=False)
        with rt.autocast():
            logits = model(x).float()
            if rt.tta:  # the mean of the logits of the image and of its mirror image
                logits = (logits + model(x.flip(-1)).float()) / 2
        out.append(logits)
        bar.update(len(b))
    bar.close()
    return torch.cat(out) if out else torch.zeros(0, 2, device=rt.device)


def p_fake(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """P(FAKE) from N x 2 logits (softmax, computed in float64 so that confident scores stay distinct)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    return torch.softmax(z, dim=1)[:, 1].cpu().numpy()


def per_image_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each image (what the mean validation loss averages)."""
    return F.cross_entropy(logits.float(), labels.to(logits.device), reduction="none")


def predict_array(
    model: nn.Module,
    images: np.ndarray,
    cfg: TrainConfig,
    device: torch.device,
    batch_size: int | None = None,
    progress: bool = True,
    desc: str = "predict",
) -> np.ndarray:
    """float32 N x 2 logits for a uint8 N x 3 x H x W array, preprocessed as the run's training
    data was (no augmentation), computed in fp32."""
    # scores in fp32 even where training used bf16 autocast: bf16 logits keep 8 bits of mantissa,
    # so many images would tie and the ROC curve, AUC and calibration would be read off rounded values;
    # TF32 as the run's config says, as in the validation that picked its best.pt
    device = configure_device(device, cfg.tf32)
    rt = make_runtime(cfg, device, augment=False, autocast=False)
    model = rt.place(model)
    t = to_device(torch.from_numpy(np.ascontiguousarray(images)), device)
    idx = torch.arange(len(t), device=t.device)
    logits = predict_logits(model, t, idx, rt, batch_size or cfg.eval_batch_size, progress=progress, desc=desc)
    return logits.cpu().numpy()
