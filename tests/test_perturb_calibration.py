"""Perturbations, calibration numbers, temperature scaling and the robustness command."""

from __future__ import annotations

import numpy as np
import pytest

from cifake_lib.engine.metrics import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    logit_margin,
    reliability_bins,
)
from cifake_lib.study.perturb import PERTURBATIONS, down_up, gaussian_blur, gaussian_noise, hflip, jpeg


@pytest.fixture
def images():
    from cifake_lib.data.synth import make_image

    rng = np.random.default_rng(0)
    return np.stack([make_image(rng, fake=i % 2 == 1).transpose(2, 0, 1) for i in range(16)])


def test_jpeg_quality_100_is_near_identity_and_low_quality_is_not(images):
    q100 = jpeg(images, 100, subsampling="4:4:4")
    assert q100.shape == images.shape and q100.dtype == np.uint8
    err = {q: np.abs(jpeg(images, q).astype(int) - images).mean() for q in (90, 75, 50, 30)}
    assert np.abs(q100.astype(int) - images).mean() < 1.0
    assert err[90] < err[75] < err[50] < err[30]
    with pytest.raises(ValueError, match="quality must be 1-100"):
        jpeg(images, 0)


def test_flip_twice_is_identity(images):
    assert np.array_equal(hflip(hflip(images)), images)
    assert np.array_equal(hflip(images)[..., 0], images[..., -1])


def test_blur_smooths_and_noise_has_its_std(images):
    blurred = gaussian_blur(images, 1.0)
    grad = lambda x: np.abs(np.diff(x.astype(float), axis=-1)).mean()
    assert grad(blurred) < 0.7 * grad(images)
    assert np.abs(gaussian_blur(images, 0.1).astype(int) - images).max() <= 1  # tiny sigma: identity
    flat = np.full((4, 3, 32, 32), 128, np.uint8)
    noisy = gaussian_noise(flat, 8.0, seed=1)
    assert (noisy.astype(float) - 128).std() == pytest.approx(8.0, rel=0.05)
    assert np.array_equal(gaussian_noise(flat, 8.0, seed=1), noisy)


def test_down_up(images):
    assert np.array_equal(down_up(images, 1), images)
    flat = np.full((2, 3, 32, 32), 77, np.uint8)
    assert np.array_equal(down_up(flat, 2), flat)  # a constant image survives
    assert np.abs(down_up(images, 2).astype(int) - images).mean() > 0.5
    with pytest.raises(ValueError, match="must divide"):
        down_up(images, 5)


def test_perturbation_grid_covers_the_study():
    kinds = {(k, s) for k, s, _ in PERTURBATIONS}
    for q in (90, 75, 50, 30):
        assert ("jpeg", f"q{q}") in kinds
    assert {("blur", "sigma 0.5"), ("blur", "sigma 1.0"), ("down-up", "x2"), ("hflip", "-"), ("clean", "-")} <= kinds


def test_ece_of_calibrated_predictor_is_near_zero():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.shape) < p).astype(int)  # outcomes drawn with the stated probability
    assert expected_calibration_error(y, p) < 0.01


def test_ece_of_constant_predictor_equals_known_value():
    # always p_fake = 0.9 on a set with 60% FAKE: confidence 0.9, accuracy 0.6 -> ECE 0.3
    y = np.array([1] * 600 + [0] * 400)
    p = np.full(1000, 0.9)
    assert expected_calibration_error(y, p) == pytest.approx(0.3)
    bins = [b for b in reliability_bins(y, p) if b["n"]]
    assert len(bins) == 1 and bins[0]["accuracy"] == pytest.approx(0.6)


def test_temperature_scaling_recovers_overconfidence():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 50_000)
    y = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z))).astype(int)
    margin = 3 * z  # logit margins scaled by 3: an overconfident model
    overconfident = 1 / (1 + np.exp(-margin))
    t = fit_temperature(y, margin)
    assert t == pytest.approx(3.0, rel=0.05)
    assert (
        expected_calibration_error(y, apply_temperature(margin, t)) < expected_calibration_error(y, overconfident) / 3
    )
    np.testing.assert_allclose(apply_temperature(margin, 1.0), overconfident)


def test_temperature_is_fitted_on_logits_not_rounded_probabilities():
    """Margins of 15 to 45 all round to p_fake 1.000000; the fit still sees how confident each was."""
    rng = np.random.default_rng(4)
    z = rng.uniform(5, 15, 20_000) * rng.choice([-1, 1], 20_000)
    y = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z))).astype(int)
    t = fit_temperature(y, 3 * z)
    assert t == pytest.approx(3.0, rel=0.1)
    rounded = np.round(1 / (1 + np.exp(-3 * z)), 6)
    assert (rounded == 1.0).mean() > 0.3  # what a %.6f predictions file would have held
    assert np.isfinite(apply_temperature(3 * z, t)).all()


def test_logit_margin_is_fake_minus_real():
    logits = np.array([[0.5, 2.0], [3.0, -1.0]], dtype=np.float32)
    np.testing.assert_allclose(logit_margin(logits), [1.5, -4.0])


def test_robustness_cli(tmp_path, capsys):
    from cifake_lib.cli import main
    from cifake_lib.data.synth import make_synthetic_cifake

    root = make_synthetic_cifake(tmp_path / "ds", per_class=60, seed=4)
    run = tmp_path / "run"
    assert (
        main(
            ["train", "--model", "custom_cnn", "--data", str(root), "--out", str(run), "--epochs", "1", "--no-progress"]
        )
        == 0
    )
    capsys.readouterr()
    csv = tmp_path / "rob.csv"
    assert main(["robustness", "--run", str(run), "--data", str(root), "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    for word in ("clean", "jpeg", "q30", "blur", "noise", "down-up", "hflip", "accuracy@val"):
        assert word in out
    import pandas as pd

    frame = pd.read_csv(csv)
    assert len(frame) == len(PERTURBATIONS) and frame["auc"].between(0, 1).all()
    clean = frame[frame["perturbation"] == "clean"].iloc[0]
    assert clean["accuracy_drop@0.5"] == 0


def test_gradcam_maps_in_fp32(tmp_path):
    import torch

    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.models import build_model
    from cifake_lib.study.gradcam import cam_maps, centre_share, target_layer

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    for name in ("custom_cnn", "resnet18"):
        model = build_model(name).to(torch.bfloat16)  # as if trained in bf16: maps still come out in fp32
        cfg = TrainConfig(model=name, image_size=32)
        cams, pred, p, views = cam_maps(model, cfg, images)
        assert cams.shape == (3, 32, 32) and cams.dtype == np.float32
        assert cams.min() >= 0 and cams.max() <= 1 and views.shape == (3, 3, 32, 32)
        assert set(pred.tolist()) <= {0, 1} and ((p >= 0.5).astype(int) == pred).all()
        assert next(model.parameters()).dtype == torch.float32
    assert target_layer(build_model("resnet18"), "resnet18", 224)[1] == "layer4"
    uniform = np.ones((2, 32, 32), np.float32)
    assert centre_share(uniform) == pytest.approx(0.25)
