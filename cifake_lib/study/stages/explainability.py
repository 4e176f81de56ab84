"""06_explainability: Grad-CAM maps of both models on test images they got right and wrong."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ...data.labels import CIFAR10_CATEGORIES, CLASS_NAMES
from ...engine.checkpoint import load_run_model, run_config
from ...engine.config import TrainConfig
from ..compare import display_name
from ..gradcam import cam_maps, centre_share, target_layer
from ..notebook import Study


@dataclass(frozen=True)
class ExplainedRun:
    """A run's best checkpoint ready for Grad-CAM, with the test predictions 05 wrote for it."""

    model: str
    net: torch.nn.Module
    cfg: TrainConfig
    layer: str  # the layer whose activations and gradients make the maps
    predictions: pd.DataFrame
    rows: np.ndarray  # dataset rows of the predictions, in their order


@dataclass(frozen=True)
class MeanCams:
    """The mean Grad-CAM map per class over test images, and the share of it in the centre."""

    model: str
    layer: str
    input_size: int
    mean: dict  # {"REAL": map, "FAKE": map}
    centre_share: dict  # {"REAL": share, "FAKE": share}


def load_explained(study: Study, model: str) -> ExplainedRun:
    """``best.pt`` of a model's main run (on the CPU, fp32) and its test predictions from 05."""
    pred = pd.read_csv(study.layout.require_predictions(model))
    net, ckpt = load_run_model(study.layout.require_run(model), "best", "cpu")
    cfg = run_config(ckpt)
    rows = study.load_data().index_of(pred["path"].tolist())
    return ExplainedRun(model, net, cfg, target_layer(net, cfg.model, cfg.input_size)[1], pred, rows)


def describe_explained(run: ExplainedRun) -> str:
    return (
        f"{display_name(run.model)}: maps from {run.layer} at {run.cfg.input_size}px input, "
        f"{len(run.predictions):,} scored test images"
    )


def _correct(run: ExplainedRun) -> tuple[np.ndarray, np.ndarray]:
    return run.predictions["label"].to_numpy(), (run.predictions["label"] == run.predictions["pred"]).to_numpy()


def cams_by_outcome(study: Study, run: ExplainedRun, per_group: int = 4) -> dict:
    """{"REAL, correct": (views, cams, titles), ...}: maps of up to ``per_group`` test images the
    model got right and wrong, per class (empty groups left out)."""
    data, rng = study.load_data(), np.random.default_rng(study.seed)
    labels, correct = _correct(run)
    out = {}
    for name, idx in _outcome_groups(run.rows, labels, correct, per_group, rng).items():
        cams, _, p, views = cam_maps(run.net, run.cfg, data.images[idx])
        out[name] = (views, cams, [f"p_fake {v:.2f}" for v in p])
    return out


def cams_by_category(study: Study, run: ExplainedRun):
    """(views, cams, titles) of one correctly classified test image per CIFAR category and class
    (None when there is none)."""
    data, rng = study.load_data(), np.random.default_rng(study.seed + 1)
    labels, correct = _correct(run)
    picks = _one_per_category(run.rows, labels, correct, run.predictions["category"].to_numpy(), rng)
    if not picks:
        return None
    cams, _, _, views = cam_maps(run.net, run.cfg, data.images[np.array([i for _, i in picks])])
    return views, cams, [title for title, _ in picks]


def mean_cams(study: Study, run: ExplainedRun, per_class: int = 200) -> MeanCams:
    """The mean map per class over up to ``per_class`` test images, and its central share."""
    data, rng = study.load_data(), np.random.default_rng(study.seed + 2)
    labels = run.predictions["label"].to_numpy()
    mean, share = {}, {}
    for cls, cname in sorted(CLASS_NAMES.items()):
        sel = run.rows[labels == cls]
        sel = rng.choice(sel, min(per_class, len(sel)), replace=False)
        cams = cam_maps(run.net, run.cfg, data.images[np.sort(sel)])[0]
        mean[cname] = cams.mean(axis=0)
        share[cname] = float(centre_share(cams).mean())
    return MeanCams(run.model, run.layer, run.cfg.input_size, mean, share)


def _outcome_groups(rows, labels, correct, per_group: int, rng) -> dict[str, np.ndarray]:
    """Up to ``per_group`` dataset rows for each of REAL/FAKE x correct/wrong (empty groups left out)."""
    groups = {}
    for cls, cname in sorted(CLASS_NAMES.items()):
        for ok, word in ((True, "correct"), (False, "wrong")):
            sel = np.flatnonzero((labels == cls) & (correct == ok))
            if len(sel):
                groups[f"{cname}, {word}"] = rows[rng.choice(sel, min(per_group, len(sel)), replace=False)]
    return groups


def _one_per_category(rows, labels, correct, categories, rng) -> list[tuple[str, int]]:
    """(title, dataset row) of one correctly classified image per CIFAR category and class."""
    out = []
    for cat in CIFAR10_CATEGORIES:
        for cls in sorted(CLASS_NAMES):
            sel = np.flatnonzero((categories == cat) & (labels == cls) & correct)
            if len(sel):
                out.append((f"{cat} {CLASS_NAMES[cls]}", rows[rng.choice(sel)]))
    return out


def gradcam_reading(cams: MeanCams) -> list[str]:
    """What the maps show, in sentences built from the measured centre shares."""
    name = display_name(cams.model)
    real, fake = cams.centre_share["REAL"], cams.centre_share["FAKE"]
    where = "more" if fake > real else "less"
    if max(float(m.max()) for m in cams.mean.values()) == 0:
        return [
            f"{name}: the Grad-CAM maps of {cams.layer} are flat (all zero) at {cams.input_size}px input, "
            "so they show nothing about where the model looks."
        ]
    return [
        f"Maps from {cams.layer} of {name} at {cams.input_size}px input.",
        f"{name}: on average {fake:.0%} of the Grad-CAM mass lies in the central quarter of FAKE test images "
        f"and {real:.0%} for REAL ones (a uniform map would put 25% there), so its evidence for FAKE sits {where} "
        f"in the centre than its evidence for REAL.",
    ]


# ----------------------------------------------------------------------------- try it


def explain_images(study: Study, images: np.ndarray, models=("resnet18", "custom_cnn")) -> dict:
    """{display name: (views, cams, p_fake)} of each trained model on uint8 N x 3 x 32 x 32 images."""
    out = {}
    for model in models:
        net, ckpt = load_run_model(study.layout.require_run(model), "best", "cpu")
        cams, _, p, views = cam_maps(net, run_config(ckpt), images)
        out[display_name(model)] = (views, cams, p)
    return out


def example_images(study: Study, per_class: int = 2) -> tuple[np.ndarray, list[str]]:
    """The first ``per_class`` test images of each class (05's predictions), with their names."""
    data = study.load_data()
    pred = pd.read_csv(study.layout.require_predictions("custom_cnn"))
    picks = pd.concat([g.head(per_class) for _, g in pred.groupby("label", sort=True)])
    rows = data.index_of(picks["path"].tolist())
    names = [f"{CLASS_NAMES[int(y)]}: {p.rsplit('/', 1)[-1]}" for y, p in zip(picks["label"], picks["path"])]
    return data.images[rows], names


def show_try_it(study: Study):
    """Both models on a few fixed test images (what the report shows) and, live in JupyterLab, an
    upload box: a photograph of any size or format goes through the training data's path
    (decode by content, RGB, antialiased downscale to 32x32) and is shown the same way."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .. import plots

    images, names = example_images(study)
    display(plots.plot_try_it(images, names, explain_images(study, images)))
    plt.close("all")
    display(_upload_widget(study))


def _upload_widget(study: Study):
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from ...data.decode import ImageDecodeError, decode_image
    from .. import plots

    upload = widgets.FileUpload(accept="image/*", multiple=True, description="Upload images")
    out = widgets.Output()

    def on_upload(change):
        out.clear_output()
        with out:
            arrays, names = [], []
            for f in change["new"]:
                try:
                    arrays.append(decode_image(bytes(f["content"]), 32)[0])
                    names.append(f["name"])
                except ImageDecodeError as exc:
                    print(f"{f['name']}: {exc}")
            if arrays:
                images = np.stack(arrays)
                display(plots.plot_try_it(images, names, explain_images(study, images)))
                plt.close("all")

    upload.observe(on_upload, names="value")
    return widgets.VBox([widgets.HTML("<b>Try it:</b> upload images to score them with both models."), upload, out])
