"""Decoding image bytes into 3 x S x S uint8 arrays, one file or a whole source in parallel.

Images are recognised by content (PIL), converted to RGB (transparent pixels composited on
white) and brought to S x S with an antialiased bicubic resize; every conversion is named so
that the loader can count it.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .sources import Source

CHUNK = 2000

_worker_source: Source | None = None  # set in each worker process


def _init_worker(source: Source) -> None:
    global _worker_source
    _worker_source = source


def decode_image(data: bytes, size: int) -> tuple[np.ndarray, str, tuple[int, int], str, list[str]]:
    """Decode bytes by content into a 3 x size x size uint8 array.

    Returns (array, original mode, original (w, h), format, conversions applied).
    Raises ValueError with a short reason when the bytes are not a decodable image.
    """
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode, wh, fmt = im.mode, im.size, im.format or "unknown"
            conversions = []
            if mode != "RGB":
                conversions.append(f"mode {mode}->RGB")
                if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
                    # composite on white so transparent pixels do not turn into arbitrary colours
                    rgba = im.convert("RGBA")
                    im2 = Image.new("RGB", rgba.size, (255, 255, 255))
                    im2.paste(rgba, mask=rgba.getchannel("A"))
                else:
                    im2 = im.convert("RGB")
            else:
                im2 = im
            if wh != (size, size):
                conversions.append(f"resize {wh[0]}x{wh[1]}->{size}x{size}")
                im2 = im2.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
            arr = np.asarray(im2, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        msg = str(exc) or type(exc).__name__
        if isinstance(exc, UnidentifiedImageError):
            msg = "not an image (content not recognised as JPEG/PNG/...)"
        raise ValueError(msg) from None
    return np.ascontiguousarray(arr), mode, wh, fmt, conversions


def _decode_chunk(relpaths: list[str], size: int, source: Source | None = None):
    src = source if source is not None else _worker_source
    images = np.zeros((len(relpaths), 3, size, size), dtype=np.uint8)
    results = []
    for i, rel in enumerate(relpaths):
        try:
            data = src.read_bytes(rel)
        except OSError as exc:
            results.append((False, f"unreadable: {exc}", None))
            continue
        digest = hashlib.sha256(data).hexdigest()
        try:
            arr, mode, wh, fmt, conv = decode_image(data, size)
        except ValueError as exc:
            results.append((False, str(exc), None))
            continue
        images[i] = arr
        results.append((True, digest, (mode, f"{wh[0]}x{wh[1]}", fmt, conv)))
    return images, results


def decode_all(source: Source, size: int, workers: int, progress: bool):
    relpaths = [f.relpath for f in source.files]
    chunks = [relpaths[i : i + CHUNK] for i in range(0, len(relpaths), CHUNK)]
    bar = tqdm(total=len(relpaths), desc="decoding images", unit="img", disable=not progress)
    outputs = []
    try:
        if workers > 1 and len(chunks) > 1:
            # spawn, not fork: the caller may be a notebook kernel with torch threads running
            ctx = get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(source,)) as ex:
                for chunk, out in zip(chunks, ex.map(_decode_chunk, chunks, [size] * len(chunks))):
                    outputs.append(out)
                    bar.update(len(chunk))
        else:
            for chunk in chunks:
                outputs.append(_decode_chunk(chunk, size, source))
                bar.update(len(chunk))
    finally:
        bar.close()
        source.close()
    return outputs


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
