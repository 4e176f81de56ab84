"""Named recipes (paper, improved), their training features (AdamW, warm-up, label smoothing,
EMA, flip TTA), and the profiles that decide which recipes the study trains."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from cifake_lib.cli import build_parser, main, train_config
from cifake_lib.data.dataset import load_cifake
from cifake_lib.data.splits import make_splits
from cifake_lib.engine.checkpoint import load_checkpoint, load_run_model
from cifake_lib.engine.config import ConfigError, TrainConfig
from cifake_lib.engine.inference import predict_logits
from cifake_lib.engine.models import build_model
from cifake_lib.engine.recipes import RECIPE_SETTINGS, departures, recipe_config, recipe_table
from cifake_lib.engine.registry import MODELS
from cifake_lib.engine.runtime import make_runtime
from cifake_lib.engine.trainer import TIMING_COLUMNS, WarmupThen, make_ema, train_model
from cifake_lib.study.profiles import PROFILES, profile_config, profile_recipes

from .test_engine import _Interrupt, _stop_after_first_epoch

# the paper's recipe as TrainConfig held it before recipes existed (commit 2d3ad31), plus the new
# settings at the values that change nothing
PAPER_DEFAULTS = {
    "recipe": "paper",
    "image_size": None,
    "epochs": 10,
    "batch_size": 128,
    "lr": 1e-3,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "backbone_lr_scale": 1.0,
    "schedule": "none",
    "warmup_epochs": 0.0,
    "augment": False,
    "translate": 2,
    "label_smoothing": 0.0,
    "ema_decay": 0.0,
    "tta": False,
    "seed": 0,
    "pretrained": False,
    "weights": None,
    "limit_per_class": None,
    "select_metric": "val_accuracy",
    "val_every": 1,
    "deterministic": False,
    "device": "auto",
    "amp": "auto",
    "tf32": True,
    "channels_last": None,
    "compile": False,
    "eval_batch_size": 512,
}


def _args(*extra):
    return build_parser().parse_args(["train", "--out", "RUN", *extra])


@pytest.mark.parametrize("model", list(MODELS))
def test_paper_recipe_is_exactly_the_old_defaults(model):
    expected = {"model": model, **PAPER_DEFAULTS}
    assert recipe_config("paper", model).to_dict() == expected
    assert TrainConfig(model=model).to_dict() == expected
    # the command line: --recipe paper and no --recipe give the same config
    assert train_config(_args("--model", model, "--recipe", "paper")).to_dict() == expected
    assert train_config(_args("--model", model)).to_dict() == expected
    assert departures(recipe_config("paper", model)) == {}


def test_improved_recipe_defaults_and_explicit_overrides():
    cfg = train_config(_args("--model", "custom_cnn", "--recipe", "improved"))
    assert cfg.recipe == "improved"
    for key, value in RECIPE_SETTINGS["improved"]["custom_cnn"].items():
        assert getattr(cfg, key) == value, key
    assert cfg.epochs != 10 and cfg.optimizer == "adamw" and cfg.augment and cfg.label_smoothing > 0
    # options given explicitly win over the recipe, and departures() names them
    cfg = train_config(
        _args("--model", "custom_cnn", "--recipe", "improved", "--no-augment", "--no-tta", "--lr", "0.01")
    )
    assert cfg.augment is False and cfg.tta is False and cfg.lr == 0.01 and cfg.recipe == "improved"
    assert departures(cfg) == {
        "augment": (True, False),
        "lr": (RECIPE_SETTINGS["improved"]["custom_cnn"]["lr"], 0.01),
        "tta": (True, False),
    }
    # a profile sets size and data, the recipe how to train
    cfg = profile_config("cpu", "custom_cnn", recipe="improved")
    assert cfg.image_size == 32 and cfg.epochs == RECIPE_SETTINGS["improved"]["custom_cnn"]["epochs"]
    assert profile_config("cpu", "custom_cnn").epochs == 10


def test_fast_recipe_is_for_the_batch_normalised_cnn():
    cfg = train_config(_args("--model", "custom_cnn_bn", "--recipe", "fast"))
    for key, value in RECIPE_SETTINGS["fast"]["custom_cnn_bn"].items():
        assert getattr(cfg, key) == value, key
    assert cfg.val_every > 1 and cfg.epochs < RECIPE_SETTINGS["improved"]["custom_cnn"]["epochs"]
    with pytest.raises(ConfigError, match="the fast recipe is defined for custom_cnn_bn, not 'custom_cnn'"):
        recipe_config("fast", "custom_cnn")
    assert "custom_cnn_bn fast" in recipe_table() and "custom_cnn fast" not in recipe_table()


def test_cpu_profile_is_like_for_like():
    a, b = profile_config("cpu", "resnet18"), profile_config("cpu", "custom_cnn")
    assert a.input_size == b.input_size == 32
    assert a.limit_per_class == b.limit_per_class  # the same training images
    assert (
        (a.epochs, a.lr, a.optimizer, a.augment)
        == (b.epochs, b.lr, b.optimizer, b.augment)
        == (10, 1e-3, "adam", False)
    )
    assert profile_recipes("cpu", "custom_cnn") == ("paper", "improved")
    assert profile_recipes("cpu", "resnet18") == ("paper",)
    assert profile_recipes("paper", "resnet18_cifar") == ("paper", "improved")
    assert all("epochs" not in PROFILES[p]["common"] for p in ("cpu", "paper"))  # the recipe's


@pytest.mark.parametrize(
    "values, message",
    [
        ({"label_smoothing": 0.5}, "label_smoothing"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"warmup_epochs": 11}, "warmup_epochs"),
        ({"warmup_epochs": 1, "schedule": "onecycle"}, "own warm-up"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"recipe": "best"}, "recipe"),
        ({"epochs": "ten"}, "epochs"),  # checked, not a TypeError from comparing with warmup_epochs
        ({"translate": 16}, "translate"),  # at most 15 px of reflection padding
        ({"translate": -1}, "translate"),
        ({"translate": 1.5}, "translate"),
    ],
)
def test_new_settings_are_validated(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(model="custom_cnn", **values)


def test_translate_reaches_the_augmentation_and_old_runs_resume():
    cfg = TrainConfig(model="custom_cnn", augment=True, translate=4)
    prep = make_runtime(cfg, torch.device("cpu")).prep
    assert prep.translate == 4 and prep.describe()["augment"] == "random horizontal flip + translate up to 4 px"
    stored = TrainConfig(model="custom_cnn", augment=True).to_dict()
    assert cfg.changed_for_resume(stored) == ["translate 2 -> 4"]
    # a run saved before the setting existed had the default shift
    del stored["translate"]
    assert TrainConfig(model="custom_cnn", augment=True).changed_for_resume(stored) == []
    assert cfg.changed_for_resume(stored) == ["translate 2 -> 4"]


def test_unknown_recipe_on_the_command_line_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", "custom_cnn", "--recipe", "best", "--out", "x"])
    assert exc.value.code == 2 and "invalid choice: 'best'" in capsys.readouterr().err


def test_warmup_then_cosine_schedule():
    f = WarmupThen(warm=10, total=110, cosine=True)
    assert [f(t) for t in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert f(10) == 1.0 and math.isclose(f(60), 0.5) and f(110) == 0.0 and f(200) == 0.0
    flat = WarmupThen(warm=4, total=100, cosine=False)
    assert flat(1) == 0.5 and flat(50) == 1.0


def test_ema_follows_the_weights_with_a_ramped_decay():
    torch.manual_seed(0)
    model = build_model("custom_cnn")
    ema = make_ema(model, 0.999)
    assert make_ema(model, 0.0) is None
    ema.update_parameters(model)  # the first update copies
    w0 = model.features[0].weight.detach().clone()
    with torch.no_grad():
        model.features[0].weight.add_(1.0)
    ema.update_parameters(model)  # n = 1: decay min(0.999, 2/11), weight 9/11 on the new value
    got = ema.module.features[0].weight
    assert torch.allclose(got, w0 + 9 / 11, atol=1e-6)


def test_flip_tta_averages_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = build_model("custom_cnn").eval()
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    idx = torch.arange(6)
    cfg = TrainConfig(model="custom_cnn", device="cpu")
    plain = predict_logits(model, images, idx, make_runtime(cfg, torch.device("cpu")), 4)
    mirror = predict_logits(model, images.flip(-1), idx, make_runtime(cfg, torch.device("cpu")), 4)
    tta_cfg = TrainConfig(model="custom_cnn", device="cpu", tta=True)
    tta = predict_logits(model, images, idx, make_runtime(tta_cfg, torch.device("cpu")), 4)
    assert torch.allclose(tta, (plain + mirror) / 2, atol=1e-5)
    assert not torch.allclose(tta, plain, atol=1e-3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cifake_lib.data.synth import make_synthetic_cifake

    root = make_synthetic_cifake(tmp_path_factory.mktemp("recipes") / "ds", per_class=60, seed=4)
    data = load_cifake(root, progress=False, cache_dir=tmp_path_factory.mktemp("recipes-cache"))
    return root, data, make_splits(data, seed=0)


def test_improved_run_saves_ema_weights_and_resumes_exactly(tiny, tmp_path):
    root, data, splits = tiny
    cfg = recipe_config("improved", "custom_cnn", epochs=3, batch_size=16, seed=1, device="cpu", ema_decay=0.999)
    quiet = {"progress": False, "log": lambda m: None}
    train_model(cfg, data, splits, tmp_path / "a", **quiet)
    with pytest.raises(_Interrupt):
        train_model(cfg, data, splits, tmp_path / "b", on_epoch_end=_stop_after_first_epoch, **quiet)
    train_model(cfg, data, splits, tmp_path / "b", resume=True, **quiet)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    for key in ("model", "raw_model"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert a["ema_updates"] == b["ema_updates"] > 0
    # "model" (what evaluation loads) is the moving average, not the last trained weights
    assert any(not torch.equal(a["model"][k], a["raw_model"][k]) for k in a["model"])
    model, _ = load_run_model(tmp_path / "a", "last")
    assert all(torch.equal(v, a["model"][k]) for k, v in model.state_dict().items())
    ha, hb = (pd.read_csv(tmp_path / r / "history.csv").drop(columns=list(TIMING_COLUMNS)) for r in ("a", "b"))
    pd.testing.assert_frame_equal(ha, hb)
    assert ha["lr"].iloc[-1] < ha["lr"].max()  # the cosine schedule decays


def test_cli_improved_recipe_runs_with_its_own_defaults(tiny, tmp_path, capsys):
    root, _, _ = tiny
    run = tmp_path / "run"
    assert main(["train", "--model", "custom_cnn", "--recipe", "improved", "--data", str(root),
                 "--out", str(run), "--no-progress", "--batch-size", "32"]) == 0  # fmt: skip
    stored = json.loads((run / "config.json").read_text())["config"]
    assert stored["recipe"] == "improved"
    for key, value in RECIPE_SETTINGS["improved"]["custom_cnn"].items():
        assert stored[key] == value, key
    hist = pd.read_csv(run / "history.csv")
    assert len(hist) == RECIPE_SETTINGS["improved"]["custom_cnn"]["epochs"]
    assert "improved recipe" in capsys.readouterr().out


def test_recipes_command_lists_both(capsys):
    assert main(["recipes", "--model", "custom_cnn"]) == 0
    out = capsys.readouterr().out
    assert "custom_cnn paper" in out and "custom_cnn improved" in out and "adamw" in out and "ema_decay" in out


def test_recipe_robustness_reading_names_the_extremes():
    from cifake_lib.study.stages.robustness import recipe_robustness_reading

    rows = []
    for model, accs in (("Custom CNN", (0.95, 0.60, 0.90)), ("Custom CNN (improved recipe)", (0.97, 0.80, 0.89))):
        for (kind, strength), acc in zip((("clean", "-"), ("blur", "sigma=1.0"), ("jpeg", "q=50")), accs):
            rows.append({"model": model, "perturbation": kind, "strength": strength, "accuracy@0.5": acc})
    (line,) = recipe_robustness_reading(pd.DataFrame(rows), models=("custom_cnn",))
    assert "mean +0.0950" in line  # (0.20 - 0.01) / 2, the clean row left out
    assert "largest gain +0.2000 (blur sigma=1.0: 0.6000 -> 0.8000)" in line
    assert "smallest -0.0100 (jpeg q=50: 0.9000 -> 0.8900)" in line
    assert recipe_robustness_reading(pd.DataFrame(rows[:3]), models=("custom_cnn",)) == []
