"""Predict image files with a trained run: any size or mode, handled as the training data was."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .config import TrainConfig
from .data import decode_image
from .labels import CLASS_NAMES
from .sources import IMAGE_SUFFIXES
from .train import DistInfo, load_run_model, make_runtime, resolve_device


def expand_paths(paths) -> list[Path]:
    """Files as given, plus the image files (by suffix) found below given folders, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def predict_files(run_dir: str | os.PathLike, paths, device: str = "auto", batch_size: int = 256,
                  threshold: float = 0.5) -> Iterator[dict]:
    """Yield one dict per file: {"path", "p_fake", "label"} or {"path", "error"}.

    Each image is decoded by content, converted to RGB and downscaled to the training data's
    size (32x32 for CIFAKE) before the run's own preprocessing, as the training images were.
    """
    dev = resolve_device(device, DistInfo())
    model, ckpt = load_run_model(run_dir, "best", dev)
    cfg = TrainConfig.from_dict(ckpt["config"])
    size = int(ckpt.get("data_image_size", 32))
    rt = make_runtime(cfg, dev, augment=False)
    if rt.prep.channels_last:
        model = model.to(memory_format=torch.channels_last)
    files = expand_paths(paths)
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        arrays, ok = [], []
        results: list[dict | None] = []
        for f in chunk:
            try:
                arr = decode_image(f.read_bytes(), size)[0]
            except (OSError, ValueError) as exc:
                results.append({"path": str(f), "error": str(exc)})
                continue
            arrays.append(arr)
            ok.append(len(results))
            results.append(None)
        if arrays:
            with torch.no_grad(), rt.autocast():
                x = rt.prep(torch.from_numpy(np.stack(arrays)), train=False)
                p = torch.softmax(model(x).float(), dim=1)[:, 1].cpu().numpy()
            for j, pos in enumerate(ok):
                results[pos] = {"path": str(chunk[pos]), "p_fake": round(float(p[j]), 6),
                                "label": CLASS_NAMES[int(p[j] >= threshold)]}
        yield from results
