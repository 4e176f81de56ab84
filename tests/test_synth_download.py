"""Synthetic demo data, and the download path (never touching the network in tests)."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from cifake_lib.cli import main
from cifake_lib.data.dataset import load_cifake
from cifake_lib.data.download import KAGGLE_PAGE, DownloadError, download_cifake
from cifake_lib.data.sources import SYNTHETIC_MARKER
from cifake_lib.data.synth import make_synthetic_cifake


def test_synth_layout_marker_and_signal(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "s"), "--per-class", "30", "--seed", "4"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    root = tmp_path / "s"
    assert (root / SYNTHETIC_MARKER).exists()
    data = load_cifake(root, progress=False)
    assert data.synthetic and data.counts()["train"] == {"REAL": 30, "FAKE": 30}
    assert set(data.categories.tolist()) == set(range(10))
    # the FAKE artifact is there: 2x2 block structure makes odd-offset pixel differences small
    img = data.images.astype(float)
    blockiness = np.abs(img[..., 0::2, :] - img[..., 1::2, :]).mean(axis=(1, 2, 3))
    fake, real = blockiness[data.labels == 1].mean(), blockiness[data.labels == 0].mean()
    assert fake != pytest.approx(real, rel=0.05)


def test_synth_is_seeded(tmp_path):
    a = make_synthetic_cifake(tmp_path / "a", per_class=5, seed=1)
    b = make_synthetic_cifake(tmp_path / "b", per_class=5, seed=1)
    assert (a / "train/FAKE/0000.jpg").read_bytes() == (b / "train/FAKE/0000.jpg").read_bytes()


def test_download_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    t = time.monotonic()
    with pytest.raises(DownloadError) as exc:
        download_cifake(tmp_path / "dest")
    assert time.monotonic() - t < 5
    assert "offline" in str(exc.value) and KAGGLE_PAGE in str(exc.value)
    assert not (tmp_path / "dest").exists()


def test_download_cli_offline_is_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("no route")))
    assert main(["download", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cifake download: error: cannot reach Kaggle") and "Traceback" not in err


def test_download_moves_complete_data_only(tmp_path):
    fetched = make_synthetic_cifake(tmp_path / "fetched", per_class=3)
    dest = download_cifake(tmp_path / "out" / "cifake", fetch=lambda: fetched)
    assert (dest / "train/REAL").is_dir() and load_cifake(dest, progress=False).counts()["train"]["FAKE"] == 3
    broken = tmp_path / "broken"
    (broken / "something").mkdir(parents=True)
    with pytest.raises(DownloadError, match="not in the CIFAKE layout"):
        download_cifake(tmp_path / "out2", fetch=lambda: broken)
    assert not (tmp_path / "out2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".cifake-download")] == []
