"""Shared fixtures: small synthetic datasets in tmp_path, the optional real CIFAKE zip."""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from pathlib import Path

# The suite runs on the CPU unless asked otherwise (CIFAKE_TEST_DEVICE=cuda: `make test-cuda`,
# benchmarks/gpu_session.py): on a GPU machine `make test` then checks what CI checks, and the
# notebook kernels the tests start inherit the setting. Set before anything initialises CUDA.
if os.environ.get("CIFAKE_TEST_DEVICE", "cpu") == "cpu":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np
import pytest
from PIL import Image

from cifake_lib.data.synth import make_synthetic_cifake

REAL_DATA = os.environ.get("CIFAKE_DATA")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only where a CUDA GPU is visible."""
    import torch

    if torch.cuda.is_available():
        return
    why = "needs a CUDA GPU (on a GPU machine: CIFAKE_TEST_DEVICE=cuda pytest -m cuda, or make test-cuda)"
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test decodes into a private cache unless it asks for the shared real-data one."""
    monkeypatch.setenv("CIFAKE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A synthetic dataset with train/ and test/, 40 images per class in train. Do not modify."""
    return make_synthetic_cifake(tmp_path_factory.mktemp("synth") / "ds", per_class=40, seed=1)


@pytest.fixture
def synth_copy(tmp_path, synth_root) -> Path:
    """A private copy of the synthetic dataset that a test may modify."""
    dst = tmp_path / "ds"
    shutil.copytree(synth_root, dst)
    return dst


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    """Zip a folder's contents with stored entries, optionally under a top-level prefix."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return zip_path


def write_image(path: Path, mode: str = "RGB", size=(32, 32), fmt: str = "JPEG", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    if mode == "P":
        im = im.quantize(16)
    elif mode != "RGB":
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt)
    return path


def make_layout(root: Path, counts: dict[str, int]) -> Path:
    """Write a minimal dataset: counts maps 'train/REAL' style folders to a number of images."""
    for folder, n in counts.items():
        for i in range(n):
            # crc32, not hash(): Python salts str hashes per process, and fixtures must not vary
            write_image(root / folder / f"{i:04d}.jpg", seed=zlib.crc32(f"{folder}/{i}".encode()))
    return root


@pytest.fixture(scope="session")
def real_zip() -> Path:
    if not REAL_DATA:
        pytest.skip("CIFAKE_DATA is not set: real-data tests need the CIFAKE train zip")
    path = Path(REAL_DATA)
    if not path.exists():
        pytest.skip(f"CIFAKE_DATA={REAL_DATA} does not exist")
    return path


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """One decode cache for all real-data tests of a session (the first decode takes ~15 s)."""
    return tmp_path_factory.mktemp("real-cache")


@pytest.fixture(scope="session")
def real_data(real_zip, real_cache):
    from cifake_lib.data.dataset import load_cifake

    return load_cifake(real_zip, cache_dir=real_cache, progress=False)
