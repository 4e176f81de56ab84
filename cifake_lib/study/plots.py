"""Figures for the notebooks and the report; each function returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.metrics import roc_curve

from ..data.labels import CIFAR10_CATEGORIES

sns.set_theme(style="whitegrid", context="notebook")
CLASS_COLOURS = {"REAL": "#1f77b4", "FAKE": "#d62728"}


def _img(arr: np.ndarray) -> np.ndarray:
    return np.asarray(arr).transpose(1, 2, 0)


def plot_sample_grid(data, samples: dict, title: str = "REAL and FAKE samples per CIFAR-10 category"):
    """Rows: categories; columns: REAL samples then FAKE samples."""
    cats = sorted({c for c, _ in samples}, key=lambda c: (list(CIFAR10_CATEGORIES) + ["unknown"]).index(c))
    per = max(len(v) for v in samples.values())
    fig, axes = plt.subplots(len(cats), 2 * per, figsize=(1.3 * 2 * per, 1.35 * len(cats)), squeeze=False)
    for r, cat in enumerate(cats):
        for k, cls in enumerate(("REAL", "FAKE")):
            rows = samples.get((cat, cls), [])
            for j in range(per):
                ax = axes[r, k * per + j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(rows):
                    ax.imshow(_img(data.images[rows[j]]), interpolation="nearest")
                for s in ax.spines.values():
                    s.set_edgecolor(CLASS_COLOURS[cls])
                    s.set_linewidth(2)
                if r == 0:
                    ax.set_title(cls, fontsize=9, color=CLASS_COLOURS[cls])
            axes[r, 0].set_ylabel(cat, fontsize=9, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_colour_histograms(hist: dict):
    edges = hist["edges"]
    centres = (edges[:-1] + edges[1:]) / 2
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), sharey=True)
    for ax, ch in zip(axes, "RGB"):
        for cls in ("REAL", "FAKE"):
            ax.plot(centres, hist[cls][ch], color=CLASS_COLOURS[cls], label=cls)
        ax.set_title(f"{ch} channel")
        ax.set_xlabel("pixel value (0-255)")
    axes[0].set_ylabel("density")
    axes[0].legend()
    fig.suptitle("Pixel value distributions per class")
    fig.tight_layout()
    return fig


def plot_spectra(spectra: dict):
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    # the DC term is ~0 after mean removal (log -> very negative): scale by percentiles instead
    vals = np.concatenate([s.ravel() for s in spectra.values()])
    vmin, vmax = np.percentile(vals, [1, 99.5])
    for ax, cls in zip(axes, ("REAL", "FAKE")):
        im = ax.imshow(spectra[cls], cmap="magma", vmin=vmin, vmax=vmax)
        ax.set_title(f"{cls}: mean log-amplitude")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    diff = spectra["FAKE"] - spectra["REAL"]
    lim = np.percentile(np.abs(diff), 99.5)
    im = axes[2].imshow(diff, cmap="coolwarm", vmin=-lim, vmax=lim)
    axes[2].set_title("FAKE - REAL")
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    fig.suptitle("Frequency content (centre = low frequencies)")
    fig.tight_layout()
    return fig


def plot_upscale(img32: np.ndarray, img_big: np.ndarray, size: int):
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].imshow(_img(img32), interpolation="nearest")
    axes[0].set_title(f"stored: {img32.shape[-1]}x{img32.shape[-1]}")
    axes[1].imshow(np.clip(_img(img_big), 0, 1))
    axes[1].set_title(f"model input: {size}x{size} (bilinear)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_image_row(images, titles, suptitle: str = ""):
    fig, axes = plt.subplots(1, len(images), figsize=(2 * len(images), 2.3), squeeze=False)
    for ax, im, t in zip(axes[0], images, titles):
        ax.imshow(np.clip(_img(im), 0, 1) if np.asarray(im).dtype != np.uint8 else _img(im), interpolation="nearest")
        ax.set_title(t, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_batch(batch, n: int = 8):
    """A training batch: the stored 32x32 images (top) and the model inputs they become (bottom)."""
    from ..data.labels import CLASS_NAMES

    n = min(n, len(batch.images))
    fig, axes = plt.subplots(2, n, figsize=(1.7 * n, 3.9), squeeze=False)
    size = batch.inputs.shape[-1]
    for i in range(n):
        axes[0, i].imshow(_img(batch.images[i].numpy()), interpolation="nearest")
        axes[0, i].set_title(CLASS_NAMES[int(batch.labels[i])], fontsize=9)
        axes[1, i].imshow(np.clip(_img(batch.views[i]), 0, 1), interpolation="nearest")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("stored\n32x32 uint8", fontsize=9)
    axes[1, 0].set_ylabel(f"model input\n{size}x{size}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_near_duplicates(images, names):
    """Near-duplicate pairs side by side (a short note instead when there are none)."""
    if not len(images):
        fig, ax = plt.subplots(figsize=(5, 0.6))
        ax.axis("off")
        ax.text(0.0, 0.5, "no near-duplicates found", va="center")
        return fig
    return plot_image_row(images, names, "near-duplicate pairs (each pair side by side)")


def plot_history(history: pd.DataFrame, title: str):
    """Per-epoch train and validation curves: accuracy, precision, recall, F1, loss, AUC."""
    metrics = [
        ("accuracy", "Accuracy"),
        ("precision", "Precision"),
        ("recall", "Recall"),
        ("f1", "F1 score"),
        ("loss", "Cross-entropy loss"),
        ("auc", "AUC-ROC"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (m, label) in zip(axes.ravel(), metrics):
        ax.plot(history["epoch"], history[f"train_{m}"], "o-", label="train")
        val = history[["epoch", f"val_{m}"]].dropna()  # with val_every > 1 some epochs are not scored
        ax.plot(val["epoch"], val[f"val_{m}"], "s-", label="validation")
        if "best" in history and history["best"].any():
            best = history.loc[history["best"].astype(bool), "epoch"].iloc[-1]
            ax.axvline(best, color="grey", ls=":", lw=1)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0, 0].legend()
    fig.suptitle(title + "  (dotted line: best checkpoint)")
    fig.tight_layout()
    return fig


def plot_confusion_matrices(confusions: dict, ncols: int = 2):
    """{name: {"tp","tn","fp","fn"}} in rows of ``ncols`` (large enough to read in print), rows
    of each matrix = true class, FAKE positive."""
    ncols = min(ncols, len(confusions))
    nrows = -(-len(confusions) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.5 * ncols, 3.2 * nrows), squeeze=False)
    for ax, (name, c) in zip(axes.ravel(), confusions.items()):
        mat = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
        sns.heatmap(
            mat,
            annot=True,
            fmt=",d",
            cmap="Blues",
            cbar=False,
            ax=ax,
            xticklabels=["REAL", "FAKE"],
            yticklabels=["REAL", "FAKE"],
            annot_kws={"fontsize": 16},
        )
        ax.set_xlabel("predicted", fontsize=11)
        ax.set_ylabel("true", fontsize=11)
        ax.tick_params(labelsize=10)
        ax.set_title(name, fontsize=10)
    for ax in axes.ravel()[len(confusions) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_roc_curves(curves: dict):
    """{name: (y_true, p_fake, auc)} as ROC curves."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (y, p, auc) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
    ax.set_xlabel("false positive rate (REAL called FAKE)")
    ax.set_ylabel("true positive rate (FAKE caught)")
    ax.set_title("ROC curves on the test split")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_category_heatmap(frame: pd.DataFrame, title: str = "Accuracy per CIFAR-10 category and class"):
    fig, ax = plt.subplots(figsize=(1.2 * frame.shape[1] + 3, 0.45 * frame.shape[0] + 1.5))
    sns.heatmap(
        frame,
        annot=True,
        fmt=".3f",
        cmap="viridis",
        vmin=max(0.0, float(np.nanmin(frame.values)) - 0.02),
        vmax=1.0,
        ax=ax,
        cbar_kws={"label": "accuracy"},
    )
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_reliability(*panels: dict, titles=("before temperature scaling", "after temperature scaling")):
    """Reliability diagrams side by side, one panel per {name: (bins, ece)} (confidence of the
    predicted class against accuracy, test split)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, bins_by_model, title in zip(axes[0], panels, titles):
        ax.plot([0.5, 1], [0.5, 1], "k--", lw=1, label="perfect calibration")
        for name, (bins, ece) in bins_by_model.items():
            xs = [b["confidence"] for b in bins if b["n"]]
            ys = [b["accuracy"] for b in bins if b["n"]]
            ax.plot(xs, ys, "o-", label=f"{name} (ECE {ece:.4f})")
        ax.set_xlabel("confidence of the predicted class")
        ax.set_ylabel("accuracy")
        ax.set_title(f"Reliability, {title}" if len(panels) > 1 else "Reliability diagram (test split)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_cam_categories(categories, suptitle: str = ""):
    """``(views, cams, titles)`` of one image per category as a grid; a short note when there is
    none (no correctly classified test image in any category)."""
    if categories is None:
        fig, ax = plt.subplots(figsize=(5, 0.6))
        ax.axis("off")
        ax.text(0.0, 0.5, "no correctly classified test image to show", va="center")
        return fig
    return plot_cam_grid(*categories, suptitle)


def plot_cam_grid(views: np.ndarray, cams: np.ndarray, titles, suptitle: str = "", ncols: int = 8):
    """Grad-CAM maps over the (upscaled, de-normalized) model inputs."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    n = len(views)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        rgb = np.ascontiguousarray(views[i].transpose(1, 2, 0), dtype=np.float32)
        ax = axes[i // ncols, i % ncols]
        ax.imshow(show_cam_on_image(rgb, cams[i], use_rgb=True))
        ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_mean_cams(means: dict, title: str):
    fig, axes = plt.subplots(1, len(means), figsize=(3.4 * len(means), 3.2))
    for ax, (name, m) in zip(np.atleast_1d(axes), means.items()):
        im = ax.imshow(m, cmap="jet", vmin=0, vmax=max(float(v.max()) for v in means.values()))
        ax.set_title(f"mean map: {name}")
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_robustness(frame: pd.DataFrame):
    """Accuracy at 0.5 and at the validation threshold, and AUC, per perturbation and model."""
    f = frame.copy()
    f["condition"] = f["perturbation"] + " " + f["strength"].replace("-", "")
    order = list(dict.fromkeys(f["condition"]))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), sharey=False)
    for ax, col, title in zip(
        axes,
        ("accuracy@0.5", "accuracy@val", "auc"),
        ("accuracy at threshold 0.5", "accuracy at the validation threshold", "AUC-ROC"),
    ):
        sns.barplot(data=f, x="condition", y=col, hue="model", order=order, ax=ax)
        ax.set_title(title)
        ax.set_xlabel("")
        ax.set_ylim(max(0.0, float(f[col].min()) - 0.05), 1.0)
        ax.tick_params(axis="x", rotation=60)
    fig.suptitle("Test-time perturbations of the 32x32 images")
    fig.tight_layout()
    return fig


def plot_robustness_summary(frame: pd.DataFrame, metric: str = "accuracy@0.5"):
    """One metric per perturbation (rows) and model (bars), sized to read at half a page width."""
    f = frame.copy()
    f["condition"] = f["perturbation"] + " " + f["strength"].replace("-", "")
    order = list(dict.fromkeys(f["condition"]))
    fig, ax = plt.subplots(figsize=(5.6, 0.42 * len(order) + 1.3))
    sns.barplot(data=f, y="condition", x=metric, hue="model", order=order, ax=ax, orient="h")
    ax.set_xlim(max(0.0, float(f[metric].min()) - 0.05), 1.0)
    ax.set_ylabel("")
    ax.set_xlabel(metric.replace("@", " at threshold "))
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Test images under image processing")
    fig.tight_layout()
    return fig


def plot_cam_groups(groups: dict, model_name: str):
    """One row per group ("REAL, correct", ...): Grad-CAM overlays with their p_fake."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    ncols = max(len(v[0]) for v in groups.values())
    fig, axes = plt.subplots(len(groups), ncols, figsize=(2.0 * ncols, 2.2 * len(groups)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (name, (views, cams, titles)) in enumerate(groups.items()):
        for j in range(len(views)):
            rgb = np.ascontiguousarray(views[j].transpose(1, 2, 0), dtype=np.float32)
            axes[r, j].imshow(show_cam_on_image(rgb, cams[j], use_rgb=True))
            axes[r, j].set_title(f"{name}\n{titles[j]}", fontsize=8)
    fig.suptitle(f"{model_name}: Grad-CAM for the predicted class on test images")
    fig.tight_layout()
    return fig


def plot_try_it(images: np.ndarray, names: list[str], results: dict):
    """Each image (row) as stored at 32x32, then each model's Grad-CAM overlay titled with p_fake.

    ``results`` maps a model's display name to (views, cams, p_fake) for the same images.
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    n, models = len(images), list(results)
    fig, axes = plt.subplots(n, 1 + len(models), figsize=(2.3 * (1 + len(models)), 2.3 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(_img(images[i]))
        axes[i, 0].set_title(names[i], fontsize=8)
        for j, model in enumerate(models, start=1):
            views, cams, p = results[model]
            rgb = np.ascontiguousarray(views[i].transpose(1, 2, 0), dtype=np.float32)
            axes[i, j].imshow(show_cam_on_image(rgb, cams[i], use_rgb=True))
            axes[i, j].set_title(f"{model}: p_fake {p[i]:.2f}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    return fig
