"""Decode-once loading of CIFAKE into one uint8 array, cached on disk by source fingerprint.

``load_cifake(path)`` returns a :class:`CifakeData`: images (N x 3 x S x S uint8), labels
(FAKE = 1), CIFAR-10 categories, relative paths, sha256 content hashes and split names, plus a
load report that names every corrupt, ignored or converted file. The second load of the same
source reads the cache and takes about a second for the 100k-image train split.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .. import paths
from . import cache
from .cache import CACHE_VERSION
from .decode import decode_all, default_workers
from .labels import CLASS_NAMES, category_from_name
from .sources import DataError, Source, open_source, zip_directory_digest

SHOW_FIRST = 5


class CorruptDataError(DataError):
    """Raised in strict mode when some image files cannot be decoded."""


class CorruptFilesWarning(UserWarning):
    """Some image files could not be decoded and were skipped."""


@dataclass
class LoadReport:
    """What happened to every entry of the source while loading."""

    corrupt: dict[str, str] = field(default_factory=dict)  # relpath -> reason
    ignored: list[str] = field(default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)  # kind -> count
    sizes: dict[str, int] = field(default_factory=dict)  # "WxH" as found -> count
    modes: dict[str, int] = field(default_factory=dict)  # PIL mode as found -> count
    formats: dict[str, int] = field(default_factory=dict)  # format by content -> count

    def to_dict(self) -> dict:
        return {
            "corrupt": self.corrupt,
            "ignored": self.ignored,
            "converted": self.converted,
            "sizes": self.sizes,
            "modes": self.modes,
            "formats": self.formats,
        }

    @classmethod
    def from_dict(cls, d: dict) -> LoadReport:
        return cls(**d)


@dataclass
class CifakeData:
    """Decoded dataset; row i of every array describes the same image."""

    images: np.ndarray  # uint8, N x 3 x S x S
    labels: np.ndarray  # int64, FAKE = 1, REAL = 0
    categories: np.ndarray  # int64, CIFAR-10 index or -1
    paths: np.ndarray  # str, relative to the dataset root
    hashes: np.ndarray  # str, sha256 hex of the file bytes
    splits: np.ndarray  # str, "train" or "test" (the source's own split)
    source: str
    fingerprint: str
    synthetic: bool
    report: LoadReport
    from_cache: bool = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def has_test(self) -> bool:
        return bool((self.splits == "test").any())

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {"REAL": n, "FAKE": n}} for the splits present."""
        out: dict[str, dict[str, int]] = {}
        for split in ("train", "test"):
            mask = self.splits == split
            if mask.any():
                out[split] = {name: int((self.labels[mask] == cls).sum()) for cls, name in sorted(CLASS_NAMES.items())}
        return out

    def index_of(self, relpaths) -> np.ndarray:
        """Row indices of the given relative paths (KeyError naming the first unknown one)."""
        lookup = {p: i for i, p in enumerate(self.paths.tolist())}
        try:
            return np.array([lookup[p] for p in relpaths], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"{exc.args[0]!r} is not in this dataset ({self.source})") from None

    def provenance(self) -> dict:
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "synthetic": self.synthetic,
            "official_test_split": self.has_test,
            "n_images": len(self),
        }


# ----------------------------------------------------------------------------- public


def load_cifake(
    path: str | os.PathLike,
    *,
    image_size: int = 32,
    strict: bool = False,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    progress: bool = True,
    require_train: bool = True,
) -> CifakeData:
    """Load a CIFAKE-layout folder or zip, decoding each image once and caching the result.

    ``require_train=False`` is for data to score, not to train on: a root with only test/, or a
    plain folder of REAL/ and FAKE/ images of any size and format (split "test"), loads too.

    Images that are not ``image_size`` x ``image_size`` RGB are converted and counted in
    ``data.report.converted``. Undecodable files are skipped with a :class:`CorruptFilesWarning`
    (or, with ``strict=True``, a :class:`CorruptDataError` listing them). Structural problems
    raise :class:`DataError` saying what was expected.
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    cache_root = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    data = None
    source = None
    digest = zip_directory_digest(path) if Path(path).is_file() else None
    if digest is not None:
        # a zip's central directory holds every name, size and CRC: hash it instead of listing
        fingerprint = hashlib.sha256(f"zip:{CACHE_VERSION}:{image_size}:{digest}".encode()).hexdigest()
    else:
        source = open_source(path, require_train)
        fingerprint = source.fingerprint(CACHE_VERSION, image_size)
    folder = cache.entry_dir(cache_root, fingerprint)
    if use_cache:
        data = _from_cache(folder, fingerprint)
    if data is None:
        if source is None:
            source = open_source(path, require_train)
        data = _decode_source(source, fingerprint, image_size, workers or default_workers(), progress)
        if use_cache:
            try:
                cache.save_entry(folder, _arrays(data), _info(data))
            except OSError as exc:
                warnings.warn(f"could not write the decode cache to {folder}: {exc}", stacklevel=2)
    _check_result(data, strict, require_train)
    return data


def _arrays(data: CifakeData) -> dict:
    return {k: getattr(data, k) for k in ("images", *cache.META_KEYS)}


def _info(data: CifakeData) -> dict:
    return {
        "source": data.source,
        "fingerprint": data.fingerprint,
        "synthetic": data.synthetic,
        "report": data.report.to_dict(),
    }


def _from_cache(folder: Path, fingerprint: str) -> CifakeData | None:
    entry = cache.load_entry(folder, fingerprint)
    if entry is None:
        return None
    arrays, info = entry
    return CifakeData(
        **arrays,
        source=info["source"],
        fingerprint=fingerprint,
        synthetic=info["synthetic"],
        report=LoadReport.from_dict(info["report"]),
        from_cache=True,
    )


def _decode_source(source: Source, fingerprint: str, size: int, workers: int, progress: bool) -> CifakeData:
    outputs = decode_all(source, size, workers, progress)
    report = LoadReport(ignored=list(source.ignored))
    converted: Counter = Counter()
    sizes: Counter = Counter()
    modes: Counter = Counter()
    formats: Counter = Counter()
    keep_images, keep_rows, hashes = [], [], []
    offset = 0
    for images, results in outputs:
        ok_idx = []
        for i, (ok, info, meta) in enumerate(results):
            f = source.files[offset + i]
            if not ok:
                report.corrupt[f.relpath] = info
                continue
            ok_idx.append(i)
            keep_rows.append(f)
            hashes.append(info)
            mode, wh, fmt, conv = meta
            modes[mode] += 1
            sizes[wh] += 1
            formats[fmt] += 1
            for c in conv:
                converted[c] += 1
        keep_images.append(images[ok_idx])
        offset += len(results)
    report.converted = dict(sorted(converted.items()))
    report.sizes = dict(sorted(sizes.items()))
    report.modes = dict(sorted(modes.items()))
    report.formats = dict(sorted(formats.items()))
    images = np.concatenate(keep_images) if keep_images else np.zeros((0, 3, size, size), np.uint8)
    return CifakeData(
        images=images,
        labels=np.array([f.label for f in keep_rows], dtype=np.int64),
        categories=np.array([category_from_name(PurePosixPath(f.relpath).stem) for f in keep_rows], dtype=np.int64),
        paths=np.array([f.relpath for f in keep_rows], dtype=str),
        hashes=np.array(hashes, dtype=str),
        splits=np.array([f.split for f in keep_rows], dtype=str),
        source=source.describe(),
        fingerprint=fingerprint,
        synthetic=source.synthetic,
        report=report,
    )


def _check_result(data: CifakeData, strict: bool, require_train: bool = True) -> None:
    corrupt = data.report.corrupt
    if corrupt:
        listing = "; ".join(f"{p} ({why})" for p, why in list(corrupt.items())[:SHOW_FIRST])
        more = f" and {len(corrupt) - SHOW_FIRST} more" if len(corrupt) > SHOW_FIRST else ""
        if strict:
            full = "\n".join(f"  {p}: {why}" for p, why in corrupt.items())
            raise CorruptDataError(f"{len(corrupt)} corrupt image file(s) in {data.source}:\n{full}")
        warnings.warn(
            f"skipped {len(corrupt)} corrupt image file(s) in {data.source}: {listing}{more}",
            CorruptFilesWarning,
            stacklevel=3,
        )
    # a class whose files were all corrupt is as unusable as an empty folder
    for split, by_class in data.counts().items():
        for name, n in by_class.items():
            if n == 0:
                raise DataError(f"{data.source}: {split}/{name} has no decodable images")
    if require_train and "train" not in data.counts():
        raise DataError(f"{data.source}: train/ has no decodable images")
    if not data.counts():
        raise DataError(f"{data.source}: no decodable images")
