"""Seeded, stratified, duplicate-aware train / validation / test splits, saved as a manifest.

Images with identical bytes always land in the same part, so a carved validation or test part
never contains a copy of a training image. When the source has an official ``test/`` split, the
manifest also lists its leak-free subset: test images whose bytes do not appear in train or val.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from .dataset import CifakeData
from .labels import CLASS_NAMES

MANIFEST_SCHEMA = 1
OFFICIAL_TEST = "official test/ split"
CARVED_TEST = "carved from train (no test/ in the source)"


class ManifestError(ValueError):
    """A split manifest that is missing, damaged or made for other data."""


@dataclass
class Splits:
    """Row indices into a CifakeData for each part, and how they were made."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_leak_free: np.ndarray
    settings: dict = field(default_factory=dict)

    @property
    def test_source(self) -> str:
        return self.settings["test_source"]

    def part(self, name: str) -> np.ndarray:
        parts = {"train": self.train, "val": self.val, "test": self.test, "test_leak_free": self.test_leak_free}
        if name not in parts:
            raise ValueError(f"unknown split {name!r}; choose one of {', '.join(parts)}")
        return parts[name]

    def sizes(self, data: CifakeData) -> dict[str, dict[str, int]]:
        """{part: {"REAL": n, "FAKE": n, "total": n}}."""
        out = {}
        for name in ("train", "val", "test", "test_leak_free"):
            idx = self.part(name)
            row = {n: int((data.labels[idx] == c).sum()) for c, n in sorted(CLASS_NAMES.items())}
            row["total"] = int(len(idx))
            out[name] = row
        return out


def _stratified_order(rng: np.random.Generator, strata: np.ndarray) -> np.ndarray:
    """A random order of positions in which every prefix holds the strata in proportion.

    Within each stratum the members are shuffled; member r of a stratum of size n gets the key
    (r + u) / n with a random offset u per stratum, and positions are sorted by key. Taking the
    first k positions is then systematic stratified sampling, also for strata of 2 or 3.
    """
    keys = np.empty(len(strata))
    for s in np.unique(strata):
        pos = rng.permutation(np.flatnonzero(strata == s))
        keys[pos] = (np.arange(len(pos)) + rng.uniform()) / len(pos)
    return np.argsort(keys, kind="stable")


def subset_per_class(data: CifakeData, rows: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    keep = []
    for cls in sorted(CLASS_NAMES):
        r = rows[data.labels[rows] == cls]
        if len(r) <= k:
            keep.append(r)
            continue
        # stratified by CIFAR category: take ceil-proportional shares, then trim at random
        cats = data.categories[r]
        chosen = []
        for c in np.unique(cats):
            rc = rng.permutation(r[cats == c])
            chosen.append(rc[: int(np.ceil(k * len(rc) / len(r)))])
        chosen = rng.permutation(np.concatenate(chosen))[:k]
        keep.append(np.sort(chosen))
    return np.sort(np.concatenate(keep))


def make_splits(
    data: CifakeData,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    dedupe_train: bool = False,
    limit_per_class: int | None = None,
) -> Splits:
    """Split ``data`` into train / val / test.

    The source's own ``test/`` split is the test part when it exists; otherwise ``test_fraction``
    of train is carved out. ``val_fraction`` is carved from train. Both are stratified by class
    and CIFAR category and keep exact duplicates together. ``limit_per_class`` first takes a
    stratified subset of at most K images per class from each source split.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < frac < 1:
            raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {frac!r}")
    if not data.has_test and val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction + test_fraction must leave some training data")
    if limit_per_class is not None and (not isinstance(limit_per_class, int) or limit_per_class < 1):
        raise ValueError(f"limit_per_class must be a positive integer or None, got {limit_per_class!r}")
    rng = np.random.default_rng(seed)
    train_rows = np.flatnonzero(data.splits == "train")
    test_rows = np.flatnonzero(data.splits == "test")
    if limit_per_class:
        train_rows = subset_per_class(data, train_rows, limit_per_class, rng)
        if len(test_rows):
            test_rows = subset_per_class(data, test_rows, limit_per_class, rng)

    # group train rows by content hash; every group goes to one part as a whole
    hashes = data.hashes[train_rows]
    uniq, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    group_rows = train_rows[first]
    part = np.zeros(len(uniq), dtype=np.int8)  # 0 train, 1 val, 2 test
    carve_test = not len(test_rows)
    for cls in sorted(CLASS_NAMES):
        g = np.flatnonzero(data.labels[group_rows] == cls)
        n_val = max(1, int(round(len(g) * val_fraction)))
        n_test = max(1, int(round(len(g) * test_fraction))) if carve_test else 0
        order = g[_stratified_order(rng, data.categories[group_rows[g]])]
        part[order[:n_val]] = 1
        part[order[n_val : n_val + n_test]] = 2
    row_part = part[inverse]
    train = train_rows[row_part == 0]
    val = train_rows[row_part == 1]
    if dedupe_train:
        _, keep = np.unique(data.hashes[train], return_index=True)
        train = np.sort(train[keep])
    test = train_rows[row_part == 2] if carve_test else test_rows
    seen = set(data.hashes[train_rows[row_part < 2]].tolist())  # train and val, before any dedupe
    leak_free = np.array([i for i in test if data.hashes[i] not in seen], dtype=np.int64)
    for name, idx in (("train", train), ("val", val), ("test", test)):
        for cls, cname in CLASS_NAMES.items():
            if not (data.labels[idx] == cls).any():
                raise ValueError(
                    f"the {name} part has no {cname} images (dataset too small for these fractions: "
                    f"{len(train_rows)} training rows, val_fraction={val_fraction}, test_fraction={test_fraction})"
                )
    settings = {
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction) if carve_test else None,
        "test_source": CARVED_TEST if carve_test else OFFICIAL_TEST,
        "dedupe_train": bool(dedupe_train),
        "limit_per_class": limit_per_class,
        "duplicates_kept_together": True,
        "test_leaks_removed": int(len(test) - len(leak_free)),
    }
    return Splits(np.sort(train), np.sort(val), np.sort(test), np.sort(leak_free), settings)


def save_manifest(splits: Splits, data: CifakeData, path: str | os.PathLike) -> Path:
    """Write the manifest (paths per part + settings + data provenance) atomically as JSON."""
    doc = {
        "schema": MANIFEST_SCHEMA,
        "data": data.provenance(),
        "settings": splits.settings,
        "sizes": splits.sizes(data),
        **{name: data.paths[splits.part(name)].tolist() for name in ("train", "val", "test", "test_leak_free")},
    }
    return atomic_write(path, json.dumps(doc, indent=1))


def load_manifest(path: str | os.PathLike, data: CifakeData) -> Splits:
    """Read a manifest written by :func:`save_manifest` for this very dataset."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"split manifest {path} not found: run notebook 02_preprocessing (or `cifake train`) first")
    try:
        doc = json.loads(path.read_text())
        made_for = doc["data"]["fingerprint"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path} is not a cifake split manifest ({exc})") from None
    if made_for != data.fingerprint:
        raise ManifestError(
            f"{path} was made for other data ({doc['data'].get('source')}, fingerprint {made_for[:12]}), "
            f"not {data.source} (fingerprint {data.fingerprint[:12]}); make the splits again"
        )
    parts = {name: data.index_of(doc[name]) for name in ("train", "val", "test", "test_leak_free")}
    return Splits(settings=doc["settings"], **parts)


def limit_parts(splits: Splits, data: CifakeData, limit_per_class: int | None, seed: int = 0) -> Splits:
    """A training subset of saved splits: at most K train images per class, validation cut in the
    same proportion (at least 50 per class), test unchanged so that every model is scored on
    the same images."""
    if not limit_per_class:
        return splits
    rng = np.random.default_rng(seed)
    train = subset_per_class(data, splits.train, limit_per_class, rng)
    ratio = len(splits.val) / max(1, len(splits.train))
    val = subset_per_class(data, splits.val, max(50, int(np.ceil(limit_per_class * ratio))), rng)
    settings = {**splits.settings, "training_subset_per_class": int(limit_per_class)}
    return Splits(train, val, splits.test, splits.test_leak_free, settings)
