"""Decoding image bytes into 3 x S x S uint8 arrays, one file or a whole source in parallel.

Images are recognised by content (PIL), converted to RGB (transparent pixels composited on
white) and brought to S x S with an antialiased bicubic resize; every conversion is named so
that the loader can count it.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .sources import MAX_FILE_BYTES, Source

CHUNK = 2000
# the largest image decoded (PIL's own hard limit): 12,000 x 12,000 passes, 400 megapixels does not
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS

_worker_source: Source | None = None  # set in each worker process


def _init_worker(source: Source) -> None:
    global _worker_source
    _worker_source = source


class ImageDecodeError(ValueError):
    """Bytes that are not a decodable image (or one too large to decode); the message says why."""


def decode_image(data: bytes, size: int) -> tuple[np.ndarray, str, tuple[int, int], str, list[str]]:
    """Decode bytes by content into a 3 x size x size uint8 array.

    Returns (array, original mode, original (w, h), format, conversions applied). Raises
    :class:`ImageDecodeError` (a ValueError) with a short reason when the bytes are not a
    decodable image or hold more than ``MAX_PIXELS`` pixels; nothing else escapes, whatever
    the bytes (property-tested with random, truncated and bit-flipped files).
    """
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # large images are checked against MAX_PIXELS below; PIL's own warning would only
            # interleave a raw message with the caller's output
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                _check_pixels(im.size)
                im.load()
                return _to_array(im, size)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (content not recognised as JPEG/PNG/WebP/GIF/BMP/TIFF)") from None
    except Image.DecompressionBombError:
        raise ImageDecodeError(f"more than {MAX_PIXELS:,} pixels, refused as a possible decompression bomb") from None
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, EOFError, struct.error, ... on damaged files
        raise ImageDecodeError(f"damaged or unsupported image ({type(exc).__name__}: {exc})"[:300]) from None


def _check_pixels(wh: tuple[int, int]) -> None:
    if wh[0] * wh[1] > MAX_PIXELS:
        raise ImageDecodeError(
            f"{wh[0]} x {wh[1]} pixels: more than {MAX_PIXELS:,} pixels, refused as a possible decompression bomb"
        )


def _to_array(im: Image.Image, size: int):
    """RGB (transparency composited on white), then an antialiased bicubic resize to size x size."""
    mode, wh, fmt = im.mode, im.size, im.format or "unknown"
    conversions = []
    if mode != "RGB":
        conversions.append(f"mode {mode}->RGB")
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
            # composite on white so transparent pixels do not turn into arbitrary colours
            rgba = im.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        else:
            rgb = im.convert("RGB")
    else:
        rgb = im
    if wh != (size, size):
        conversions.append(f"resize {wh[0]}x{wh[1]}->{size}x{size}")
        # PIL's bicubic filter widens with the scale factor (antialiased); reducing_gap first
        # box-averages large images down to 3x the target, which is faster and as good
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageDecodeError(f"decoded to an unexpected array shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), mode, wh, fmt, conversions


def read_image_file(path: str | os.PathLike) -> bytes:
    """The bytes of an image file on disk, refusing files larger than MAX_FILE_BYTES (OSError)."""
    size = os.stat(path).st_size
    if size > MAX_FILE_BYTES:
        raise OSError(f"{size:,} bytes is more than the {MAX_FILE_BYTES:,}-byte limit for one image file")
    with open(path, "rb") as fh:
        return fh.read(MAX_FILE_BYTES + 1)


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
