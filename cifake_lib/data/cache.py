"""The on-disk decode cache: one folder per source fingerprint, published by a single rename.

A cache entry is ``<cache_dir>/<fingerprint[:24]>/`` holding ``images.npy`` (uint8 N x 3 x S x S),
``meta.npz`` (labels, categories, paths, hashes, splits) and ``info.json``. It is written
completely under a temporary folder name and then renamed into place in one step, so a reader
sees either no entry or a whole one, whatever else runs at the same time or gets killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..atomic import remove_stale_temporaries

CACHE_VERSION = 1
META_KEYS = ("labels", "categories", "paths", "hashes", "splits")


def entry_dir(cache_dir: Path, fingerprint: str) -> Path:
    return Path(cache_dir) / fingerprint[:24]


def load_entry(folder: Path, fingerprint: str) -> tuple[dict, dict] | None:
    """(arrays, info) of a complete entry for this fingerprint; None when missing or damaged."""
    try:
        info = json.loads((folder / "info.json").read_text())
        if info.get("cache_version") != CACHE_VERSION or info.get("fingerprint") != fingerprint:
            return None
        arrays = {"images": np.load(folder / "images.npy")}
        with np.load(folder / "meta.npz") as meta:
            arrays.update({k: meta[k] for k in META_KEYS})
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # missing or damaged: the caller decodes again
    if arrays["images"].shape[0] != arrays["labels"].shape[0]:
        return None
    arrays["labels"] = arrays["labels"].astype(np.int64)
    arrays["categories"] = arrays["categories"].astype(np.int64)
    arrays["hashes"] = arrays["hashes"].astype(str)
    return arrays, info


def save_entry(folder: Path, arrays: dict, info: dict) -> None:
    """Write an entry under a temporary name, then rename the whole folder into place.

    When another process published the same entry first, ours is dropped (both hold the same
    decode). A damaged entry left by an older version is moved aside and replaced.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        np.save(tmp / "images.npy", arrays["images"])
        np.savez(
            tmp / "meta.npz",
            labels=arrays["labels"].astype(np.int8),
            categories=arrays["categories"].astype(np.int8),
            paths=arrays["paths"],
            hashes=arrays["hashes"].astype("S64"),
            splits=arrays["splits"],
        )
        (tmp / "info.json").write_text(json.dumps({"cache_version": CACHE_VERSION, **info}))
        _publish(tmp, folder, info["fingerprint"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    remove_stale_temporaries(folder)


def _publish(tmp: Path, folder: Path, fingerprint: str) -> None:
    try:
        os.rename(tmp, folder)  # atomic; fails when the folder exists and is not empty
        return
    except OSError:
        if load_entry(folder, fingerprint) is not None:
            return  # another process won the race with the same content
    # a damaged entry (an older version's, or one a disk error cut short): move it aside, then publish
    trash = folder.with_name(f".{folder.name}.old{os.getpid()}")
    with contextlib.suppress(OSError):  # another process may have moved it already
        os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)
    with contextlib.suppress(OSError):  # fails only when another process published in between
        os.rename(tmp, folder)
