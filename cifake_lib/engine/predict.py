"""Predict image files with a trained run: any size or mode, handled as the training data was."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data.decode import decode_image, read_image_file
from ..data.labels import CLASS_NAMES
from ..data.sources import IMAGE_SUFFIXES
from .checkpoint import load_run_model, run_config
from .inference import p_fake, predict_array
from .runtime import resolve_device

PROGRESS_MIN_FILES = 256  # a progress bar for more files than this


def expand_paths(paths) -> list[Path]:
    """Files as given, plus the image files (by suffix) found below given folders, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def predict_files(
    run_dir: str | os.PathLike,
    paths,
    device: str = "auto",
    batch_size: int = 256,
    threshold: float = 0.5,
    progress: bool | None = None,
) -> Iterator[dict]:
    """Yield one dict per file, in order: {"path", "p_fake", "label"} or {"path", "error"}.

    Each image goes through the training data's path: decoded by content, converted to RGB
    (transparency on white) and brought to the training size (32x32 for CIFAKE) by an
    antialiased bicubic resize (a box pre-reduction first for large photographs), then the run's
    own preprocessing. ``progress`` (default: more than PROGRESS_MIN_FILES files) shows a bar
    on stderr.
    """
    dev = resolve_device(device)
    model, ckpt = load_run_model(run_dir, "best", dev)
    cfg = run_config(ckpt)
    size = int(ckpt.get("data_image_size", 32))
    files = expand_paths(paths)
    show = len(files) > PROGRESS_MIN_FILES if progress is None else progress
    with tqdm(total=len(files), desc="predict", unit="file", disable=not show, file=sys.stderr) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            yield from _predict_chunk(model, cfg, dev, chunk, size, threshold, batch_size)
            bar.update(len(chunk))


def _predict_chunk(model, cfg, dev, chunk: list[Path], size: int, threshold: float, batch_size: int) -> list[dict]:
    arrays, results = [], []
    for f in chunk:
        try:
            arrays.append(decode_image(read_image_file(f), size)[0])
            results.append({"path": str(f)})
        except (OSError, ValueError) as exc:
            results.append({"path": str(f), "error": str(exc)})
    if arrays:
        scores = iter(p_fake(predict_array(model, np.stack(arrays), cfg, dev, batch_size, progress=False)))
        for row in results:
            if "error" not in row:
                score = float(next(scores))
                row.update(p_fake=round(score, 6), label=CLASS_NAMES[int(score >= threshold)])
    return results
