"""Models, preprocessing, metrics, checkpoints, resume, evaluation and the engine CLI."""

from __future__ import annotations

import json
import socket

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from torchvision.transforms import v2

from cifake_lib.cli import main
from cifake_lib.data.dataset import load_cifake
from cifake_lib.data.sources import DataError
from cifake_lib.data.splits import make_splits
from cifake_lib.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cifake_lib.engine.config import ConfigError, TrainConfig
from cifake_lib.engine.evaluate import PREDICTION_COLUMNS, evaluate_model, write_evaluation
from cifake_lib.engine.metrics import binary_metrics, bootstrap_ci, choose_threshold, mcnemar_test
from cifake_lib.engine.models import (
    MODELS,
    WeightsUnavailableError,
    build_model,
    count_parameters,
    layer_table,
    weights_cache_file,
)
from cifake_lib.engine.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessor, random_flip, random_translate
from cifake_lib.engine.trainer import TIMING_COLUMNS, train_model
from cifake_lib.study.profiles import profile_config

# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    "name,size,params",
    [
        ("resnet18", 224, 11_177_538),
        ("resnet18", 64, 11_177_538),
        ("resnet18_cifar", 32, 11_169_858),
        ("custom_cnn", 32, 618_306),
        ("custom_cnn", 224, 618_306),
    ],
)
def test_model_shapes_and_parameter_counts(name, size, params):
    model = build_model(name).eval()
    assert count_parameters(model) == params
    with torch.no_grad():
        assert model(torch.zeros(2, 3, size, size)).shape == (2, 2)


def test_resnet18_is_torchvision_with_two_class_head():
    from torchvision.models import resnet18

    ours, ref = build_model("resnet18"), resnet18()
    assert ours.fc.out_features == 2 and ours.fc.in_features == 512
    ours_keys = {k: v.shape for k, v in ours.state_dict().items() if not k.startswith("fc.")}
    assert ours_keys == {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    cifar = build_model("resnet18_cifar")
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, torch.nn.Identity)


def test_layer_table_lists_every_layer():
    rows = layer_table(build_model("custom_cnn"), 32)
    assert rows[0]["type"] == "Conv2d" and rows[0]["output"] == "32x32x32"
    assert rows[-1]["output"] == "2" and sum(r["params"] for r in rows) == 618_306


def test_unknown_model_and_pretrained_cnn():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="custom_cnn has no pretrained weights"):
        build_model("custom_cnn", pretrained=True)


def test_pretrained_offline_names_file_and_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def refuse(*a, **k):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(WeightsUnavailableError) as exc:
        build_model("resnet18", pretrained=True)
    msg = str(exc.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "--weights PATH" in msg and "offline" in msg


def test_pretrained_from_local_file_and_hub_cache(monkeypatch, tmp_path):
    from torchvision.models import resnet18

    ref = resnet18()
    weights = tmp_path / "w.pth"
    torch.save(ref.state_dict(), weights)
    model = build_model("resnet18", weights_path=weights)
    assert torch.equal(model.conv1.weight, ref.conv1.weight)
    # the same file in the torch hub cache is found without a path
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights_cache_file().parent.mkdir(parents=True)
    torch.save(ref.state_dict(), weights_cache_file())
    assert torch.equal(build_model("resnet18", pretrained=True).layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    with pytest.raises(WeightsUnavailableError, match="not a readable PyTorch weights file"):
        build_model("resnet18", weights_path=bad)


# ----------------------------------------------------------------------------- preprocessing


def test_preprocessing_matches_per_image_torchvision_reference():
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8))
    ours = Preprocessor(224)(batch)
    ref_float = v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            v2.Resize(224, antialias=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    expected = torch.stack([ref_float(img) for img in batch])
    assert ours.shape == (4, 3, 224, 224)
    # normalizing at 32px before the (linear) upscale only reorders float rounding: ~1e-5
    torch.testing.assert_close(ours, expected, atol=3e-5, rtol=1e-5)
    # the paper's PIL path (Resize on a PIL image, ToTensor, Normalize) agrees to uint8 rounding
    from PIL import Image
    from torchvision import transforms as T

    pil = T.Compose([T.Resize(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    paper = torch.stack([pil(Image.fromarray(img.permute(1, 2, 0).numpy())) for img in batch])
    assert (ours - paper).abs().mean() < 0.02


def test_preprocessing_without_resize_is_exact_normalization():
    batch = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)
    out = Preprocessor(32)(batch)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    with pytest.raises(ValueError, match="uint8 N x 3 x H x W"):
        Preprocessor(32)(batch.float())
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        Preprocessor(0)


def test_augmentation_flip_and_translate():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    flipped = random_flip(x, g)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))
    assert torch.equal(random_translate(x, 0), x)
    moved = random_translate(x, 2, torch.Generator().manual_seed(1))
    assert moved.shape == x.shape
    # each output is a shifted window of the reflect-padded input
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(2):
        assert any(torch.equal(moved[i], padded[i, :, dy : dy + 8, dx : dx + 8]) for dy in range(5) for dx in range(5))
    prep = Preprocessor(32, augment=True)
    batch = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(prep(batch, train=False), Preprocessor(32)(batch))  # no augmentation at eval


# ----------------------------------------------------------------------------- metrics


def test_metrics_against_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    m = binary_metrics(y, p, 0.5)
    pred = (p >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    c = m["confusion"]
    assert c["tp"] == int(((pred == 1) & (y == 1)).sum()) and c["fp"] == int(((pred == 1) & (y == 0)).sum())
    assert sum(c.values()) == 500
    ci = bootstrap_ci(y, p, n_boot=200)
    for k in ("accuracy", "precision", "recall", "f1", "auc"):
        assert ci[k][0] <= m[k] <= ci[k][1] and ci[k][1] - ci[k][0] < 0.2


def test_paper_confusion_counts_give_paper_accuracy():
    # the paper's ResNet-18: TP 4703, TN 4955, FP 88, FN 254 -> 96.58% accuracy
    y = np.array([1] * (4703 + 254) + [0] * (4955 + 88))
    p = np.array([1.0] * 4703 + [0.0] * 254 + [0.0] * 4955 + [1.0] * 88)
    m = binary_metrics(y, p)
    assert m["confusion"] == {"tp": 4703, "tn": 4955, "fp": 88, "fn": 254}
    assert m["accuracy"] == pytest.approx(0.9658)


def test_mcnemar_and_threshold():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0] * 10)
    a = y.copy()
    b = y.copy()
    b[:20] = 1 - b[:20]  # B wrong on 20 images A gets right
    r = mcnemar_test(y, a, b)
    assert (r["a_only"], r["b_only"], r["both_correct"], r["both_wrong"]) == (20, 0, 60, 0)
    assert r["p_value"] == pytest.approx(2 * 0.5**20)
    assert mcnemar_test(y, a, a)["p_value"] == 1.0
    p = np.where(y == 1, 0.3, 0.1)  # separable, but everything below 0.5
    t = choose_threshold(y, p)
    assert binary_metrics(y, p, t)["accuracy"] == 1.0


# ----------------------------------------------------------------------------- config


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_dict({"modle": "resnet18"})
    with pytest.raises(ConfigError, match="invalid image_size=0"):
        TrainConfig(image_size=0)
    with pytest.raises(ConfigError, match="invalid model='vgg'"):
        TrainConfig(model="vgg")
    assert TrainConfig().input_size == 224 and TrainConfig(model="custom_cnn").input_size == 32
    assert profile_config("cpu", "resnet18", limit_per_class=3000).limit_per_class == 3000
    assert profile_config("cpu", "resnet18", limit_per_class=0).limit_per_class is None
    assert profile_config("paper", "resnet18").pretrained is True
    paper = TrainConfig()
    assert (paper.lr, paper.epochs, paper.schedule, paper.weight_decay) == (1e-3, 10, "none", 0.0)


# ----------------------------------------------------------------------------- checkpoints and training


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from cifake_lib.data.synth import make_synthetic_cifake

    root = make_synthetic_cifake(tmp_path_factory.mktemp("engine") / "ds", per_class=120, seed=2)
    data = load_cifake(root, progress=False, cache_dir=tmp_path_factory.mktemp("engine-cache"))
    return root, data, make_splits(data, seed=0)


def _cfg(**kw):
    base = dict(model="custom_cnn", epochs=2, batch_size=32, seed=3, eval_batch_size=64)
    base.update(kw)
    return TrainConfig(**base)


def test_val_every_skips_validation_but_never_the_last_epoch(small_data, tmp_path):
    root, data, splits = small_data
    res = train_model(_cfg(epochs=5, val_every=2), data, splits, tmp_path / "run", progress=False, log=lambda m: None)
    hist = pd.read_csv(tmp_path / "run" / "history.csv")
    scored = hist["val_accuracy"].notna().tolist()
    assert scored == [False, True, False, True, True]  # epochs 2, 4 and the last
    assert not hist.loc[~hist["val_accuracy"].notna(), "best"].any()  # an unscored epoch is never best
    assert res.best_epoch in (2, 4, 5)
    assert (hist.loc[~hist["val_accuracy"].notna(), "val_time_s"] < 0.01).all()


def test_training_writes_history_and_checkpoints(small_data, tmp_path):
    root, data, splits = small_data
    res = train_model(_cfg(), data, splits, tmp_path / "run", progress=False, log=lambda m: None)
    hist = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(hist["epoch"]) == [1, 2]
    for prefix in ("train", "val"):
        for m in ("loss", "accuracy", "precision", "recall", "f1", "auc"):
            assert f"{prefix}_{m}" in hist.columns
    assert {"lr", *TIMING_COLUMNS} <= set(hist.columns)
    # where the time went: training (of it, preprocessing), validation, checkpoint writes
    assert (hist["prep_time_s"] < hist["train_time_s"]).all() and (hist["train_time_s"] < hist["epoch_time_s"]).all()
    assert (hist["val_time_s"] > 0).all() and (hist["ckpt_time_s"] > 0).all()
    assert hist["val_accuracy"].between(0, 1).all()
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert last["epoch"] == 2 and best["epoch"] == res.best_epoch
    for key in ("model", "optimizer", "scheduler", "epoch", "best_metric", "config", "data", "provenance"):
        assert key in last
    assert last["data"]["fingerprint"] == data.fingerprint and last["data"]["synthetic"] is True
    assert "git_commit" in last["provenance"] and "torch" in last["provenance"]["versions"]
    assert best["best_metric"] == pytest.approx(hist["val_accuracy"].max())
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["model"] == "custom_cnn"


class _Interrupt(Exception):
    pass


def _stop_after_first_epoch(row):
    # the epoch-end callback runs once the epoch's last.pt is saved: stop there, as a crash would
    if row["epoch"] == 1:
        raise _Interrupt


def test_resume_equals_uninterrupted_run(small_data, tmp_path):
    root, data, splits = small_data
    cfg = _cfg(augment=True, schedule="cosine")
    train_model(cfg, data, splits, tmp_path / "a", progress=False, log=lambda m: None)
    with pytest.raises(_Interrupt):
        train_model(
            cfg, data, splits, tmp_path / "b", progress=False, log=lambda m: None, on_epoch_end=_stop_after_first_epoch
        )
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    with pytest.raises(CheckpointError, match="settings differ.*augment True -> False"):
        train_model(
            _cfg(augment=False, schedule="cosine"),
            data,
            splits,
            tmp_path / "b",
            resume=True,
            progress=False,
            log=lambda m: None,
        )
    train_model(cfg, data, splits, tmp_path / "b", resume=True, progress=False, log=lambda m: None)
    a = pd.read_csv(tmp_path / "a" / "history.csv")
    b = pd.read_csv(tmp_path / "b" / "history.csv")
    assert list(b["epoch"]) == [1, 2]
    timing = [c for c in TIMING_COLUMNS if c in a.columns]
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    sa = load_checkpoint(tmp_path / "a" / "last.pt")
    sb = load_checkpoint(tmp_path / "b" / "last.pt")
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"]
    # resuming a finished run adds nothing
    train_model(cfg, data, splits, tmp_path / "b", resume=True, progress=False, log=lambda m: None)
    assert len(pd.read_csv(tmp_path / "b" / "history.csv")) == 2


def test_interrupted_write_never_replaces_a_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    save_checkpoint({"format": 1, "model": {"w": torch.ones(3)}, "epoch": 1}, path)
    good = path.read_bytes()

    def dying_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")  # f: the open temporary file
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"format": 1, "model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    assert path.read_bytes() == good and list(tmp_path.iterdir()) == [path]
    assert load_checkpoint(path)["epoch"] == 1


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    torch.save({"some": "dict"}, bad)
    with pytest.raises(CheckpointError, match="not a cifake checkpoint"):
        load_checkpoint(bad)


def test_evaluate_writes_stable_files(small_data, tmp_path):
    root, data, splits = small_data
    run = tmp_path / "run"
    train_model(_cfg(epochs=1), data, splits, run, progress=False, log=lambda m: None)
    ev = evaluate_model(run, data, n_boot=100, progress=False)
    assert not (run / "test").exists()  # evaluate_model returns values; writing is separate
    write_evaluation(ev, run / "test")
    pred = pd.read_csv(run / "test" / "predictions.csv")
    logits = np.load(run / "test" / "logits.npy")
    assert logits.dtype == np.float32 and logits.shape == (len(pred), 2)
    np.testing.assert_allclose(
        torch.softmax(torch.from_numpy(logits).double(), 1)[:, 1].numpy(), pred["p_fake"], atol=1e-6
    )
    pd.testing.assert_frame_equal(pred, ev.predictions, check_exact=False, atol=1e-6)
    assert list(pred.columns) == PREDICTION_COLUMNS and len(pred) == len(splits.test)
    assert set(pred["label"]) <= {0, 1} and pred["p_fake"].between(0, 1).all()
    assert ((pred["p_fake"] >= 0.5).astype(int) == pred["pred"]).all()
    m = json.loads((run / "test" / "metrics.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "auc", "threshold", "n", "confusion"):
        assert key in m
    assert set(m["confusion"]) >= {"tp", "tn", "fp", "fn"} and m["n"] == len(pred)
    assert m["accuracy"] == pytest.approx((pred["label"] == pred["pred"]).mean())
    assert m["ci95"]["accuracy"][0] <= m["accuracy"] <= m["ci95"]["accuracy"][1]
    assert set(m["per_category"]) == set(pred["category"])
    assert m["synthetic"] is True and m["test_source"].startswith("official")
    val = evaluate_model(run, data, split="val", threshold="val", n_boot=50, progress=False).metrics
    assert val["threshold_rule"].startswith("Youden")
    assert ev.metrics["provenance"]["data"]["fingerprint"] == data.fingerprint


def test_cli_train_evaluate_predict(small_data, tmp_path, capsys):
    root, data, splits = small_data
    run = tmp_path / "cli-run"
    assert (
        main(
            [
                "train",
                "--model",
                "custom_cnn",
                "--data",
                str(root),
                "--out",
                str(run),
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "val_acc" in out and "best epoch 1" in out
    assert main(["evaluate", "--run", str(run), "--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "95% CI" in out and "TP" in out
    big = tmp_path / "big.png"
    from PIL import Image

    Image.new("L", (300, 200), 128).save(big)
    broken = tmp_path / "broken.jpg"
    broken.write_text("nope")
    good = root / "test" / "FAKE" / "0000.jpg"
    assert main(["predict", "--run", str(run), str(good), str(big), str(broken)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in lines] == [str(good), str(big), str(broken)]
    assert 0 <= lines[0]["p_fake"] <= 1 and lines[0]["label"] in ("REAL", "FAKE")
    assert "p_fake" in lines[1] and "error" in lines[2]
    assert main(["predict", "--run", str(run), str(root / "test" / "REAL")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 24


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--model", "vgg", "--out", "x"], "invalid choice: 'vgg'"),
        (["train", "--model", "custom_cnn", "--out", "x", "--image-size", "0"], "expected a positive integer, got 0"),
        (["evaluate", "--run", "r", "--split", "bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_cli_bad_options_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_checkpoint_that_is_not_one(small_data, tmp_path, capsys):
    root, data, splits = small_data
    run = tmp_path / "fake-run"
    run.mkdir()
    (run / "best.pt").write_text("not a checkpoint")
    assert main(["evaluate", "--run", str(run), "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert "is not a readable checkpoint" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", "--run", str(tmp_path / "missing"), "--data", str(root)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_models_registry_names():
    assert set(MODELS) == {"resnet18", "resnet18_cifar", "custom_cnn", "custom_cnn_bn"}
    # 3x3 convolutions 3->32->64->128 with biases, then 2048->256->2: counted by hand
    convs = (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 128 * 9 + 128)
    assert count_parameters(build_model("custom_cnn")) == convs + (2048 * 256 + 256) + (256 * 2 + 2) == 618_306
    # with batch norm: no conv biases, a scale and a shift per channel instead
    head = (2048 * 256 + 256) + (256 * 2 + 2)
    bn = (3 * 32 * 9) + (32 * 64 * 9) + (64 * 128 * 9) + 2 * (32 + 64 + 128)
    assert count_parameters(build_model("custom_cnn_bn")) == bn + head == 618_530


@pytest.mark.slow
def test_torchrun_two_cpu_processes_gloo(small_data, tmp_path):
    """The same train command under torchrun: 2 gloo processes, rank-0 files, gathered metrics."""
    import os
    import subprocess
    import sys

    root, data, splits = small_data
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "cifake_lib.cli",
        "train",
        "--model",
        "custom_cnn",
        "--data",
        str(root),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("*best") == 1  # only rank 0 prints the epoch row
    hist = pd.read_csv(run / "history.csv")
    assert list(hist["epoch"]) == [1]
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["provenance"]["world_size"] == 2
    assert not list(run.glob(".*tmp*"))
    # validation metrics were gathered over the whole val split, not one rank's half
    rep = evaluate_model(run, data, split="val", n_boot=10, progress=False).metrics
    assert rep["n"] == len(splits.val)
    assert hist["val_accuracy"].iloc[0] == pytest.approx(rep["accuracy"], abs=1e-9)
    assert hist["val_auc"].iloc[0] == pytest.approx(rep["auc"], abs=1e-6)


def test_upscale_matches_interpolate_and_buffer_reuse_is_explicit():
    import torch.nn.functional as F

    from cifake_lib.engine.preprocess import bilinear_matrix

    x = torch.rand(2, 3, 32, 32)
    for size in (64, 224, 33):
        m = bilinear_matrix(32, size)
        torch.testing.assert_close(m.sum(dim=1), torch.ones(size))
        ref = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        torch.testing.assert_close(m @ x @ m.T, ref, atol=1e-5, rtol=1e-5)
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    fresh = Preprocessor(224)
    a, b = fresh(batch), fresh(batch[:2])
    assert a.shape == (4, 3, 224, 224) and a.data_ptr() != b.data_ptr()
    reuse = Preprocessor(224, reuse_output=True)
    first = reuse(batch).clone()
    second = reuse(batch.flip(0))
    torch.testing.assert_close(first, a)
    torch.testing.assert_close(second, a.flip(0))
    assert reuse(batch).data_ptr() == second.data_ptr()  # same buffer: the caller was warned


def _scores(accuracy=0.9, ci=(0.89, 0.91), **values):
    """Typed scores of one model for the comparison tests (FAKE positive, 200 images)."""
    from cifake_lib.study.results import Scores

    base = dict.fromkeys(("precision", "recall", "f1"), 0.9) | {"auc": 0.95}
    base |= {"n": 200, "confusion": {"tp": 92, "fn": 8, "tn": 90, "fp": 10}, "average_precision": 0.95}
    base |= {"tpr_at_fpr": {"0.01": 0.5, "0.001": 0.2}, "accuracy": accuracy}
    base |= {"ci95": {m: ci for m in ("accuracy", "precision", "recall", "f1", "auc")}}
    return Scores(**{**base, **values})


def _scored(model, scores=None, **run):
    from cifake_lib.study.results import RunFacts, ScoredModel

    return ScoredModel(model, scores or _scores(), RunFacts(**run))


def test_conclusion_flags_runs_that_depart_from_the_paper_recipe():
    from cifake_lib.study.compare import conclusion, recipe_differences
    from cifake_lib.study.results import RunFacts

    assert recipe_differences("resnet18", RunFacts(pretrained=True, input_size=224, train_images=90_000)) == []
    scratch = RunFacts(pretrained=False, input_size=64, train_images=6_000)
    assert recipe_differences("resnet18", scratch) == [
        "trained from scratch, not from ImageNet weights",
        "64px input instead of 224px",
        "6,000 training images instead of the full train split",
    ]
    models = [
        _scored("resnet18", pretrained=False, input_size=64, train_images=6_000),
        _scored("custom_cnn", input_size=32, train_images=80_000),
    ]
    lines = conclusion(models, None)
    resnet_line = next(line for line in lines if line.startswith("ResNet-18: accuracy 90.00%"))
    assert "below the paper's 96.58%" in resnet_line and "departs from the paper's recipe" in resnet_line
    assert any("32px input instead of 224px" in line for line in lines)


def test_cli_predict_csv_of_mixed_formats(small_data, tmp_path, capsys):
    from PIL import Image

    root, data, splits = small_data
    run = tmp_path / "run"
    train_model(_cfg(epochs=1), data, splits, run, progress=False, log=lambda m: None)
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    for suffix, fmt in (
        ("jpg", "JPEG"),
        ("PNG", "PNG"),
        ("webp", "WEBP"),
        ("gif", "GIF"),
        ("bmp", "BMP"),
        ("tiff", "TIFF"),
    ):
        img.save(folder / f"a.{suffix}", format=fmt)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image: not picked up from a folder")
    out = tmp_path / "out.csv"
    assert main(["predict", "--run", str(run), "--format", "csv", "--output", str(out), str(folder)]) == 1
    assert "1 of 7 file(s) could not be read" in capsys.readouterr().err
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["path", "p_fake", "label", "error"] and len(frame) == 7
    bad = frame[frame["path"].str.endswith("broken.png")].iloc[0]
    assert isinstance(bad["error"], str) and pd.isna(bad["p_fake"])
    good = frame.drop(bad.name)
    assert good["error"].isna().all() and good["p_fake"].between(0, 1).all()
    assert set(good["label"]) <= {"REAL", "FAKE"}
    assert not list(tmp_path.glob(".out.csv.tmp*"))


def test_predict_shows_progress_for_many_files(small_data, tmp_path, capsys):
    import shutil

    root, data, splits = small_data
    run = tmp_path / "run"
    train_model(_cfg(epochs=1), data, splits, run, progress=False, log=lambda m: None)
    many = tmp_path / "many"
    many.mkdir()
    src = next((root / "test" / "FAKE").iterdir())
    for i in range(300):
        shutil.copy(src, many / f"{i}.jpg")
    assert main(["predict", "--run", str(run), str(many)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 300 and "300/300" in captured.err
    assert main(["predict", "--run", str(run), str(src)]) == 0
    assert "1/1" not in capsys.readouterr().err  # no bar for a few files


def test_paper_comparison_counts_the_papers_sampling_error():
    from cifake_lib.study.compare import paper_difference, paper_sentence

    exact = _scores(0.9658, (0.9658, 0.9658))
    d = paper_difference(exact, 0.9658)
    # with no error of ours, the interval is the paper's own: 1.96 * sqrt(p (1 - p) / 10,000)
    half = 1.959964 * np.sqrt(0.9658 * 0.0342 / 10_000)
    assert d["difference"] == 0 and d["ci95"] == pytest.approx([-half, half]) and d["p_value"] == pytest.approx(1)
    # 0.4 points above the paper with our own +/- 0.3: inside the combined error, so "consistent with"
    close = _scored("resnet18", _scores(0.9698, (0.9668, 0.9728)), pretrained=True, input_size=224)
    assert "is consistent with the paper's 96.58%" in paper_sentence(close)
    far = _scored("resnet18", _scores(0.985, (0.983, 0.987)), pretrained=True, input_size=224)
    assert "is above the paper's 96.58%" in paper_sentence(far)
    assert paper_difference(far.scores, 0.9658)["p_value"] < 1e-6
    # no sampling error on either side (a paper rate of 100%, our interval of zero width): any
    # difference is certain (p = 0) and no difference is p = 1
    assert paper_difference(_scores(0.99, (0.99, 0.99)), 1.0)["p_value"] == 0.0
    assert paper_difference(_scores(1.0, (1.0, 1.0)), 1.0)["p_value"] == 1.0


def test_cpu_profile_compares_like_for_like():
    """Both networks see the same training images at the same input size for the same epochs."""
    r, c = profile_config("cpu", "resnet18"), profile_config("cpu", "custom_cnn")
    for field in ("limit_per_class", "input_size", "epochs", "batch_size", "lr", "augment", "schedule"):
        assert getattr(r, field) == getattr(c, field), field


# ----------------------------------------------------------------------------- scoring data a run was not trained on


@pytest.fixture(scope="module")
def foreign(small_data, tmp_path_factory):
    """A run trained on small_data, another CIFAKE-layout copy (one of its test images is a
    training image of the run), and a plain REAL/ FAKE/ folder of mixed sizes and formats."""
    import shutil

    from PIL import Image

    from cifake_lib.data.synth import make_synthetic_cifake

    root, data, splits = small_data
    base = tmp_path_factory.mktemp("foreign")
    run = base / "run"
    train_model(_cfg(epochs=1), data, splits, run, progress=False, log=lambda m: None)
    other = make_synthetic_cifake(base / "other", per_class=30, seed=11)
    leaked = root / data.paths[splits.train[0]]
    shutil.copy(leaked, other / "test" / ("FAKE" if data.labels[splits.train[0]] else "REAL") / "leaked.jpg")
    plain = base / "photos"
    rng = np.random.default_rng(3)
    for cls in ("REAL", "FAKE"):
        for i, (size, fmt, mode) in enumerate(
            [((48, 64), "PNG", "RGBA"), ((100, 80), "JPEG", "RGB"), ((32, 32), "WEBP", "RGB"), ((640, 480), "BMP", "L")]
        ):
            img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
            (plain / cls / "sub").mkdir(parents=True, exist_ok=True)
            img.save(plain / cls / ("sub" if i % 2 else "") / f"{i}.{fmt.lower()}", format=fmt)
    (plain / "FAKE" / "broken.png").write_bytes(b"\x89PNG truncated")
    return run, other, plain


def test_evaluate_scores_the_test_split_of_other_data(foreign, tmp_path, capsys):
    run, other, plain = foreign
    out = tmp_path / "ev"
    assert main(["evaluate", "--run", str(run), "--data", str(other), "--split", "test", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    pred = pd.read_csv(out / "predictions.csv")
    n_test = len(list((other / "test").rglob("*.jpg")))
    assert m["n"] == len(pred) == n_test and m["foreign_data"] is True
    assert pred["path"].str.startswith("test/").all()
    y, p = pred["label"], pred["p_fake"]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred["pred"]))
    assert m["precision"] == pytest.approx(precision_score(y, pred["pred"]))
    assert m["recall"] == pytest.approx(recall_score(y, pred["pred"]))
    assert m["f1"] == pytest.approx(f1_score(y, pred["pred"]))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-4)  # the CSV rounds p_fake to 6 decimals
    assert m["leaked_images_removed"] == 1 and m["leak_free"]["n"] == n_test - 1  # the copied training image
    assert m["data"]["fingerprint"] and str(other) in m["data"]["source"]
    assert {"average_precision", "tpr_at_fpr"} <= set(m) and set(m["tpr_at_fpr"]) == {"0.01", "0.001"}
    assert main(["evaluate", "--run", str(run), "--data", str(other), "--split", "val"]) == 2
    assert "needs the data the run was trained on" in capsys.readouterr().err


def test_evaluate_and_robustness_on_a_plain_real_fake_folder(foreign, tmp_path, capsys):
    run, other, plain = foreign
    out = tmp_path / "ev"
    assert main(["evaluate", "--run", str(run), "--data", str(plain), "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 8 and m["confusion"]["tp"] + m["confusion"]["fn"] == 4  # every readable image, 4 FAKE
    assert m["data"]["unreadable"] == 1 and m["data"]["unreadable_first"] == ["FAKE/broken.png"]
    assert (
        any(k.startswith("resize 640x480") for k in m["data"]["converted"])
        and "mode RGBA->RGB" in m["data"]["converted"]
    )
    assert m["leaked_images_removed"] == 0 and m["leak_free"] is None
    capsys.readouterr()
    assert main(["robustness", "--run", str(run), "--data", str(plain)]) == 0
    text = capsys.readouterr().out
    assert "on 8 images" in text and "left empty" in text


def test_a_root_with_only_test_is_scored(foreign, tmp_path):
    import shutil

    run, other, plain = foreign
    only_test = tmp_path / "only-test"
    shutil.copytree(other / "test", only_test / "test")
    ev = evaluate_model(run, load_cifake(only_test, progress=False, require_train=False), n_boot=10, progress=False)
    assert ev.metrics["n"] == len(list((other / "test").rglob("*.jpg")))
    with pytest.raises(DataError, match="no train/ folder"):
        load_cifake(only_test, progress=False)  # training data still needs train/


def test_evaluation_scores_in_fp32_even_for_a_bf16_run():
    """bf16 logits would tie and round the ROC; inference for evaluation runs in fp32."""
    from cifake_lib.engine.inference import predict_array

    cfg = TrainConfig(model="custom_cnn", amp="bf16", device="cpu")
    model = build_model("custom_cnn").eval()
    images = np.random.default_rng(0).integers(0, 256, (16, 3, 32, 32), dtype=np.uint8)
    logits = predict_array(model, images, cfg, torch.device("cpu"), progress=False)
    with torch.no_grad():
        ref = model(Preprocessor(32)(torch.from_numpy(images)))
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, ref.numpy(), rtol=1e-5, atol=1e-6)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = model(Preprocessor(32)(torch.from_numpy(images))).float()
    assert not np.allclose(logits, rounded.numpy(), rtol=1e-5, atol=1e-6)  # what bf16 would have given


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_and_layout_follow_the_cpu(native, monkeypatch):
    """auto: bf16 training only on CPUs with bf16 instructions, channels_last unless set; an
    explicit setting wins."""
    from cifake_lib.engine import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    rt = runtime.make_runtime(TrainConfig(model="custom_cnn"), cpu)
    assert rt.amp_dtype == (torch.bfloat16 if native else None) and rt.prep.channels_last
    rt = runtime.make_runtime(TrainConfig(model="custom_cnn", amp="off", channels_last=False), cpu)
    assert rt.amp_dtype is None and not rt.prep.channels_last
    assert runtime.make_runtime(TrainConfig(model="custom_cnn", amp="bf16"), cpu).amp_dtype == torch.bfloat16
    assert runtime.make_runtime(TrainConfig(model="custom_cnn"), cpu, autocast=False).amp_dtype is None


def test_validation_scores_in_fp32_while_training_uses_bf16():
    from cifake_lib.engine.runtime import DistInfo, make_runtime
    from cifake_lib.engine.trainer import Env, validate

    torch.manual_seed(0)
    model = build_model("custom_cnn").eval()
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32), dtype=np.uint8))
    labels = torch.tensor([0, 1] * 32)
    env = Env(DistInfo(), make_runtime(TrainConfig(model="custom_cnn", amp="bf16"), torch.device("cpu")), False, print)
    row = validate(model, images, labels, torch.arange(64), env, batch_size=32)
    with torch.no_grad():
        ref = model(Preprocessor(32)(images))
    expected = torch.nn.functional.cross_entropy(ref, labels).item()
    assert row["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert env.rt.amp_dtype == torch.bfloat16  # training keeps its precision


def test_the_paper_is_described_as_its_numbers_imply():
    from cifake_lib.study.compare import comparison_table, paper_notes, recipe_unstated
    from cifake_lib.study.results import RunFacts

    composition, recall, cnn = paper_notes()
    assert "10,000 images" in composition and "4,957 FAKE and 5,043 REAL" in composition
    assert "0.958 against 0.949" in recall  # the paper credits ResNet-18; its counts favour the CNN
    assert "this project's reading" in cnn and "dropout 0.3" in cnn
    rep = _scored("resnet18", _scores(0.91, (0.9, 0.92), recall=0.92))
    table = comparison_table([rep])
    assert table.loc["recall", "ResNet-18: ours"] == "0.9200 [0.9000, 0.9200]"
    assert table.loc["FAKE caught (TP / FAKE)", "ResNet-18: ours"] == f"{92 / 100:.4f}"
    assert table.loc["FAKE caught (TP / FAKE)", "ResNet-18: paper"] == f"{4703 / 4957:.4f}"  # rates, not counts
    assert table.loc["images (FAKE / REAL)", "ResNet-18: paper"] == "10,000 (4,957 / 5,043)"
    assert "ResNet-18: paper" not in comparison_table([rep], synthetic=True).columns
    assert recipe_unstated(RunFacts(batch_size=128, val_fraction=0.1, arithmetic="fp32")) == [
        "batch size 128",
        "a 10% validation split carved from train",
        "fp32",
    ]


def test_per_category_accuracy_has_wilson_intervals():
    from cifake_lib.engine.evaluate import per_category_accuracy

    labels = np.array([0, 0, 1, 1, 1, 0])
    cats = np.array([3, 3, 3, 3, 5, 5])
    pred = np.array([0, 1, 1, 1, 0, 0])
    out = per_category_accuracy(labels, cats, pred)
    cat = out["cat"]
    assert cat["accuracy"] == 0.75 and cat["accuracy_ci95"][0] < 0.75 < cat["accuracy_ci95"][1]
    assert cat["FAKE_accuracy"] == 1.0 and cat["FAKE_accuracy_ci95"][1] == pytest.approx(1.0)
    assert out["dog"]["FAKE_accuracy"] == 0.0 and out["dog"]["REAL_accuracy_ci95"][0] > 0
