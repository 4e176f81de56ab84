"""Audit figures, duplicate detection, stratified duplicate-aware splits and the manifest."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cifake_lib.cli import main
from cifake_lib.data.audit import audit
from cifake_lib.data.dataset import load_cifake
from cifake_lib.data.splits import CARVED_TEST, OFFICIAL_TEST, ManifestError, load_manifest, make_splits, save_manifest

AUDIT_KEYS = {"total", "per_split", "corrupt", "ignored", "converted", "duplicates"}


def _load(path, **kw):
    return load_cifake(path, progress=False, **kw)


@pytest.fixture
def dup_root(synth_copy):
    """Synthetic data with 2 extra copies inside train/FAKE and 1 test image copied from train."""
    fake = synth_copy / "train/FAKE"
    shutil.copy(fake / "0000.jpg", fake / "9000.jpg")
    shutil.copy(fake / "0000.jpg", fake / "9001.jpg")
    shutil.copy(synth_copy / "train/REAL/0001 (3).jpg", synth_copy / "test/REAL/9002 (3).jpg")
    return synth_copy


def test_audit_counts_and_duplicates(dup_root):
    a = audit(_load(dup_root))
    assert a.keys() >= AUDIT_KEYS
    assert a["total"] == 99
    assert a["per_split"] == {"train": {"REAL": 40, "FAKE": 42}, "test": {"REAL": 9, "FAKE": 8}}
    d = a["duplicates"]
    assert d["within"] == {"train": 2, "test": 0}
    assert d["by_class"]["train/FAKE"] == 2 and d["by_class"]["train/REAL"] == 0
    assert d["across"] == 1
    assert d["pairs"] == 3 + 1  # a triple is 3 pairs, plus the train/test pair
    assert a["corrupt"] == [] and a["ignored"] == [] and a["converted"] == {}
    real, fake = a["mean_rgb"]["train"]["REAL"], a["mean_rgb"]["train"]["FAKE"]
    assert len(real) == 3 and all(0 <= v <= 255 for v in real + fake)
    assert fake[2] < real[2]  # synthetic FAKE is tinted less blue, as designed


def test_mean_rgb_is_exact(synth_root):
    data = _load(synth_root)
    a = audit(data)
    m = (data.splits == "train") & (data.labels == 0)
    expected = data.images[m].astype(np.float64).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(a["mean_rgb"]["train"]["REAL"], expected, atol=0.006)


def test_audit_cli_json_and_exit_codes(dup_root, tmp_path, capsys):
    assert main(["audit", str(dup_root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["duplicates"]["across"] == 1 and out["total"] == 99
    assert main(["audit", str(dup_root)]) == 0
    text = capsys.readouterr().out
    assert "test images whose bytes appear in train (leaks): 1" in text and "SYNTHETIC" in text
    assert main(["audit", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "cifake audit: error:" in err and "does not exist" in err and "Traceback" not in err


def test_audit_lists_corrupt_files(synth_copy, capsys):
    (synth_copy / "train/REAL/broken.jpg").write_text("not a jpeg")
    assert main(["audit", str(synth_copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["corrupt"] == ["train/REAL/broken.jpg"]
    assert main(["audit", str(synth_copy), "--strict"]) == 2
    assert "broken.jpg" in capsys.readouterr().err


def test_splits_official_test_and_leak_free(dup_root):
    data = _load(dup_root)
    s = make_splits(data, seed=0)
    assert s.test_source == OFFICIAL_TEST
    assert set(s.test) == set(np.flatnonzero(data.splits == "test"))
    leaked = data.paths.tolist().index("test/REAL/9002 (3).jpg")
    assert leaked in s.test and leaked not in s.test_leak_free
    assert len(s.test_leak_free) == len(s.test) - 1 and s.settings["test_leaks_removed"] == 1
    assert not set(s.train) & set(s.val)
    assert len(s.train) + len(s.val) == 82


def test_splits_carved_are_disjoint_stratified_and_keep_duplicates_together(dup_root):
    shutil.rmtree(dup_root / "test")
    data = _load(dup_root)
    s = make_splits(data, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert s.test_source == CARVED_TEST
    parts = [set(s.train), set(s.val), set(s.test)]
    assert sum(map(len, parts)) == len(data) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    for part in (s.val, s.test):
        counts = np.bincount(data.labels[part], minlength=2)
        assert abs(counts[0] - counts[1]) <= 2  # stratified by class
    # all copies of 0000.jpg are in the same part, and the carved test part has no leaks
    copies = [data.paths.tolist().index(f"train/FAKE/{n}.jpg") for n in ("0000", "9000", "9001")]
    assert len({next(i for i, p in enumerate(parts) if c in p) for c in copies}) == 1
    assert len(s.test_leak_free) == len(s.test)
    train_hashes = set(data.hashes[s.train])
    assert not train_hashes & set(data.hashes[s.val]) and not train_hashes & set(data.hashes[s.test])


def test_splits_seeded_and_options(dup_root):
    data = _load(dup_root)
    a, b, c = make_splits(data, seed=5), make_splits(data, seed=5), make_splits(data, seed=6)
    assert a.val.tolist() == b.val.tolist() and a.val.tolist() != c.val.tolist()
    d = make_splits(data, seed=5, dedupe_train=True)
    assert len(set(data.hashes[d.train])) == len(d.train)
    lim = make_splits(data, seed=5, limit_per_class=10)
    assert len(lim.train) + len(lim.val) == 20 and len(lim.test) == 17  # test has 9 + 8 <= 10 per class
    assert np.bincount(data.labels[np.concatenate([lim.train, lim.val])]).tolist() == [10, 10]
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 1"):
        make_splits(data, val_fraction=1.5)
    with pytest.raises(ValueError, match="limit_per_class must be a positive integer"):
        make_splits(data, limit_per_class=0)


def test_manifest_round_trip_and_mismatch(dup_root, synth_root, tmp_path):
    data = _load(dup_root)
    s = make_splits(data, seed=2)
    path = save_manifest(s, data, tmp_path / "m" / "splits.json")
    doc = json.loads(path.read_text())
    assert doc["settings"]["test_source"] == OFFICIAL_TEST and doc["data"]["synthetic"] is True
    assert doc["sizes"]["train"]["total"] == len(s.train)
    back = load_manifest(path, data)
    for name in ("train", "val", "test", "test_leak_free"):
        assert back.part(name).tolist() == s.part(name).tolist()
    with pytest.raises(ManifestError, match="was made for other data"):
        load_manifest(path, _load(synth_root))
    with pytest.raises(ManifestError, match="run notebook 02_preprocessing"):
        load_manifest(tmp_path / "none.json", data)
