"""Data layer: sources, decoding, conversions, corrupt and ignored files, structure, cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifake_lib.data.dataset import CorruptDataError, CorruptFilesWarning, load_cifake
from cifake_lib.data.labels import FAKE, REAL, category_from_name
from cifake_lib.data.sources import DataError

from .conftest import make_layout, write_image, zip_folder


def _load(path, **kw):
    kw.setdefault("progress", False)
    return load_cifake(path, **kw)


def test_labels_are_explicit_fake_is_positive(synth_root):
    data = _load(synth_root)
    for path, label in zip(data.paths, data.labels):
        folder = path.split("/")[1]
        assert label == (FAKE if folder == "FAKE" else REAL)
    assert data.counts() == {"train": {"REAL": 40, "FAKE": 40}, "test": {"REAL": 8, "FAKE": 8}}
    assert data.images.shape == (96, 3, 32, 32) and data.images.dtype == np.uint8
    assert data.synthetic is True


def test_hash_and_category_per_image(synth_root):
    data = _load(synth_root)
    for i in (0, 17, 60):
        raw = (synth_root / data.paths[i]).read_bytes()
        assert data.hashes[i] == hashlib.sha256(raw).hexdigest()
        assert data.categories[i] == category_from_name(Path(data.paths[i]).stem)
    # the decoded pixels are those of the file
    im = np.asarray(Image.open(synth_root / data.paths[5]).convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(data.images[5], im)


@pytest.mark.parametrize(
    "stem,expected", [("0000", 0), ("0000 (2)", 1), ("4999 (10)", 9), ("12 (11)", -1), ("cat", -1), ("0 (1)", 0)]
)
def test_category_from_name(stem, expected):
    assert category_from_name(stem) == expected


def test_zip_read_in_place_matches_folder(tmp_path, synth_root):
    z = zip_folder(synth_root, tmp_path / "ds.zip")
    a, b = _load(synth_root), _load(z)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.paths.tolist() == b.paths.tolist() and a.hashes.tolist() == b.hashes.tolist()
    assert b.synthetic and b.source.startswith("zip ")


def test_layout_one_folder_down(tmp_path, synth_root):
    shutil.copytree(synth_root, tmp_path / "outer" / "cifake")
    d = _load(tmp_path / "outer")
    z = _load(zip_folder(synth_root, tmp_path / "nested.zip", prefix="cifake/"))
    assert len(d) == len(z) == 96
    assert d.paths[0].startswith("train/") and z.paths[0].startswith("train/")


def test_case_insensitive_names_and_decode_by_content(tmp_path):
    root = tmp_path / "odd"
    write_image(root / "Train" / "real" / "0001.JPG")
    write_image(root / "Train" / "real" / "0002.jpeg")
    write_image(root / "Train" / "Fake" / "0003.PNG", fmt="PNG")
    write_image(root / "Train" / "Fake" / "0004 (3).jpg", fmt="PNG")  # PNG bytes behind .jpg
    data = _load(root)
    assert data.counts() == {"train": {"REAL": 2, "FAKE": 2}}
    assert data.report.formats == {"JPEG": 2, "PNG": 2}
    assert sorted(data.labels.tolist()) == [0, 0, 1, 1]
    assert data.categories[data.paths.tolist().index("Train/Fake/0004 (3).jpg")] == 2


def test_other_generator_same_layout_loads(tmp_path):
    root = make_layout(tmp_path / "midjourney", {"train/REAL": 3, "train/FAKE": 3, "test/REAL": 2, "test/FAKE": 2})
    data = _load(root)
    assert data.counts() == {"train": {"REAL": 3, "FAKE": 3}, "test": {"REAL": 2, "FAKE": 2}}
    assert not data.synthetic


def test_conversions_counted_per_kind(tmp_path):
    root = make_layout(tmp_path / "conv", {"train/REAL": 2, "train/FAKE": 2})
    write_image(root / "train/REAL/gray.png", mode="L", fmt="PNG")
    write_image(root / "train/REAL/pal.png", mode="P", fmt="PNG")
    write_image(root / "train/FAKE/alpha.png", mode="RGBA", fmt="PNG")
    write_image(root / "train/FAKE/cmyk.jpg", mode="CMYK")
    write_image(root / "train/FAKE/big.jpg", size=(64, 48))
    data = _load(root)
    assert data.report.converted == {
        "mode CMYK->RGB": 1,
        "mode L->RGB": 1,
        "mode P->RGB": 1,
        "mode RGBA->RGB": 1,
        "resize 64x48->32x32": 1,
    }
    assert data.report.modes == {"CMYK": 1, "L": 1, "P": 1, "RGB": 5, "RGBA": 1}
    assert data.report.sizes == {"32x32": 8, "64x48": 1}
    assert data.images.shape == (9, 3, 32, 32)
    gray = data.images[data.paths.tolist().index("train/REAL/gray.png")]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()


def test_configurable_image_size(synth_root):
    data = _load(synth_root, image_size=16)
    assert data.images.shape[1:] == (3, 16, 16)
    assert data.report.converted == {"resize 32x32->16x16": 96}


@pytest.fixture
def corrupt_root(tmp_path):
    root = make_layout(tmp_path / "bad", {"train/REAL": 3, "train/FAKE": 3})
    good = (root / "train/REAL/0000.jpg").read_bytes()
    (root / "train/REAL/truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "train/FAKE/text.jpg").write_text("this is not an image\n")
    (root / "train/FAKE/empty.jpg").write_bytes(b"")
    return root


def test_corrupt_files_skipped_with_warning(corrupt_root):
    with pytest.warns(CorruptFilesWarning) as rec:
        data = _load(corrupt_root)
    msg = str(rec[0].message)
    assert "skipped 3 corrupt image file(s)" in msg
    for name in ("truncated.jpg", "text.jpg", "empty.jpg"):
        assert name in msg
    assert sorted(data.report.corrupt) == ["train/FAKE/empty.jpg", "train/FAKE/text.jpg", "train/REAL/truncated.jpg"]
    assert "0 bytes" in data.report.corrupt["train/FAKE/empty.jpg"]
    assert "not an image" in data.report.corrupt["train/FAKE/text.jpg"]
    assert len(data) == 6
    # the warning comes back on a cached load too: nothing is lost silently
    with pytest.warns(CorruptFilesWarning):
        again = _load(corrupt_root)
    assert again.from_cache


def test_corrupt_files_strict_mode_fails_listing_them(corrupt_root):
    with pytest.raises(CorruptDataError) as exc:
        _load(corrupt_root, strict=True)
    text = str(exc.value)
    assert "3 corrupt image file(s)" in text
    assert "train/REAL/truncated.jpg" in text and "train/FAKE/empty.jpg" in text


def test_non_image_files_ignored_and_counted(synth_copy):
    (synth_copy / "train/REAL/.DS_Store").write_bytes(b"\0\1")
    (synth_copy / "train/FAKE/Thumbs.db").write_bytes(b"\0\1")
    (synth_copy / "README.txt").write_text("hello")
    (synth_copy / "train/REAL/._0000.jpg").write_bytes(b"\0\5\26\7")  # macOS resource fork
    data = _load(synth_copy)
    assert data.report.ignored == [
        "README.txt",
        "train/FAKE/Thumbs.db",
        "train/REAL/.DS_Store",
        "train/REAL/._0000.jpg",
    ]
    assert len(data) == 96 and not data.report.corrupt


def test_files_that_are_all_corrupt_make_the_class_unusable(tmp_path):
    root = make_layout(tmp_path / "ds", {"train/REAL": 2})
    (root / "train/FAKE").mkdir(parents=True)
    (root / "train/FAKE/a.jpg").write_text("nope")
    with pytest.raises(DataError, match="train/FAKE has no decodable images"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _load(root)


@pytest.mark.parametrize(
    "build,pattern",
    [
        (lambda r: r / "nope", r"does not exist.*expected the Kaggle CIFAKE layout"),
        (lambda r: make_layout(r / "x", {"other/REAL": 1}), r"no train/ folder in .*\(found: other\)"),
        (lambda r: make_layout(r / "x", {"train/REAL": 1}), r"train has no FAKE folder \(found class folders: REAL\)"),
        (
            lambda r: make_layout(r / "x", {"train/REAL": 1, "train/FAKE": 1, "test/FAKE": 1}),
            r"test has no REAL folder",
        ),
        (
            lambda r: (
                make_layout(r / "x", {"train/REAL": 1, "train/FAKE": 0}),
                (r / "x/train/FAKE").mkdir(parents=True),
                (r / "x/train/FAKE/notes.txt").write_text("a"),
            )[0],
            r"train/FAKE contains no images .*1 other file\(s\) there were ignored",
        ),
    ],
    ids=["missing-root", "no-train", "no-fake", "test-without-real", "empty-class"],
)
def test_structural_errors_name_what_was_expected(tmp_path, build, pattern):
    root = build(tmp_path)
    with pytest.raises(DataError, match=pattern):
        _load(root)


def test_zip_that_is_not_a_zip(tmp_path):
    bad = tmp_path / "cifake.zip"
    bad.write_bytes(b"PK but not really a zip archive")
    with pytest.raises(DataError, match="is not a valid zip file"):
        _load(bad)


def test_zip_structural_error(tmp_path):
    root = make_layout(tmp_path / "x", {"train/REAL": 2})
    with pytest.raises(DataError, match="has no FAKE folder"):
        _load(zip_folder(root, tmp_path / "x.zip"))


def test_cache_hit_then_invalidated_by_a_change(synth_copy, tmp_path):
    cache = tmp_path / "c"
    first = _load(synth_copy, cache_dir=cache)
    second = _load(synth_copy, cache_dir=cache)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.images, second.images)
    assert first.report.to_dict() == second.report.to_dict()
    # replace one image: new size/mtime -> new fingerprint -> decoded again
    target = synth_copy / "train/REAL/0000 (2).jpg"
    write_image(target, seed=99)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = _load(synth_copy, cache_dir=cache)
    assert not third.from_cache and third.fingerprint != first.fingerprint


def test_damaged_cache_is_decoded_again(synth_root, tmp_path):
    cache = tmp_path / "c"
    first = _load(synth_root, cache_dir=cache)
    (next(cache.glob("*/images.npy"))).write_bytes(b"garbage")
    again = _load(synth_root, cache_dir=cache)
    assert not again.from_cache
    np.testing.assert_array_equal(first.images, again.images)


def test_zip_cache_hit_uses_directory_digest(tmp_path, synth_root):
    z = zip_folder(synth_root, tmp_path / "ds.zip")
    cache = tmp_path / "c"
    a = _load(z, cache_dir=cache)
    b = _load(z, cache_dir=cache)
    assert b.from_cache and a.fingerprint == b.fingerprint
    z2 = zip_folder(synth_root, tmp_path / "ds2.zip", prefix="inner/")
    assert _load(z2, cache_dir=cache).fingerprint != a.fingerprint


def test_parallel_and_serial_decode_agree(tmp_path):
    from cifake_lib.data import decode as data_mod
    from cifake_lib.data.synth import make_synthetic_cifake

    root = make_synthetic_cifake(tmp_path / "ds", per_class=1100, seed=3, test=False)
    serial = _load(root, workers=1, use_cache=False)
    parallel = _load(root, workers=2, use_cache=False)
    assert len(serial) == 2200 > data_mod.CHUNK
    np.testing.assert_array_equal(serial.images, parallel.images)
    assert serial.hashes.tolist() == parallel.hashes.tolist()


def test_bad_image_size_parameter(synth_root):
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        _load(synth_root, image_size=0)
