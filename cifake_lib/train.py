"""The training engine: device-resident data, batched preprocessing, atomic checkpoints, resume,
per-epoch metrics in history.csv, and DistributedDataParallel under torchrun.

A run folder holds ``config.json``, ``splits.json`` (the manifest used), ``history.csv``
(``train_*`` / ``val_*`` columns, one row per epoch), ``last.pt`` (every epoch), ``best.pt``
(when the selection metric improves) and ``provenance.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import ConfigError, TrainConfig
from .data import CifakeData
from .metrics import METRICS, binary_metrics
from .models import build_model, head_parameters
from .preprocess import Preprocessor
from .provenance import provenance
from .splits import Splits, save_manifest

CHECKPOINT_FORMAT = 1
# settings that must not change when a run is resumed (epochs may grow)
RESUME_FIXED = (
    "model", "image_size", "batch_size", "lr", "weight_decay", "backbone_lr_scale", "schedule",
    "augment", "seed", "pretrained", "val_fraction", "test_fraction", "split_seed", "limit_per_class",
    "dedupe_train", "select_metric",
)


class CheckpointError(ValueError):
    """A file that is not a cifake checkpoint, or one that does not fit this run."""


# ----------------------------------------------------------------------------- environment


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_choice: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        use_cuda = device_choice != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(choice: str, info: DistInfo) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={choice!r} asked for, but CUDA is not available here; use device='cpu'")
        if info.world > 1:
            return torch.device("cuda", info.local_rank)
    return torch.device(choice)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally make cuDNN deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        warnings.warn("deterministic=True: cuDNN autotuning is off and deterministic kernels are used; "
                      "training is slower", stacklevel=2)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True


def _epoch_seed(seed: int, epoch: int) -> int:
    # every epoch starts from its own seed, so a resumed run draws the same batches and dropout
    return (seed * 1_000_003 + epoch * 7_919) % 2**63


def _gather(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate a 1-D tensor across ranks (ranks may hold different lengths)."""
    if info.world == 1:
        return t
    n = torch.tensor([t.numel()], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(info.world)]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=t.dtype, device=t.device)
    padded[: t.numel()] = t
    parts = [torch.zeros_like(padded) for _ in range(info.world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, then os.replace: a crash mid-write
    leaves the previous checkpoint untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by the trainer; CheckpointError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise CheckpointError(f"{path} is not a cifake checkpoint (no format/model entries)")
    return state


def _write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DistributedDataParallel


# ----------------------------------------------------------------------------- forward passes


@dataclass
class Runtime:
    """What a forward pass needs besides the model: device, preprocessing, precision."""

    device: torch.device
    prep: Preprocessor
    amp_dtype: torch.dtype | None

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def make_runtime(cfg: TrainConfig, device: torch.device, augment: bool | None = None) -> Runtime:
    amp = cfg.amp
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "off"
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    # reuse_output: the trainer and predict_batches finish with each batch before the next
    prep = Preprocessor(cfg.input_size, augment=cfg.augment if augment is None else augment,
                        channels_last=channels_last, device=device, reuse_output=True)
    return Runtime(device, prep, torch.bfloat16 if amp == "bf16" else None)


@torch.no_grad()
def predict_batches(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None, idx: torch.Tensor,
                    rt: Runtime, batch_size: int, progress: bool = False, desc: str = "predict"):
    """p_fake (and per-image loss when labels are given) for rows ``idx``, in that order."""
    model.eval()
    probs, losses = [], []
    bar = tqdm(total=len(idx), desc=desc, unit="img", leave=False, disable=not progress)
    for start in range(0, len(idx), batch_size):
        b = idx[start : start + batch_size]
        x = rt.prep(images[b], train=False)
        with rt.autocast():
            logits = model(x)
        logp = F.log_softmax(logits.float(), dim=1)
        probs.append(logp[:, 1].exp())
        if labels is not None:
            losses.append(-logp.gather(1, labels[b].to(rt.device)[:, None]).squeeze(1))
        bar.update(len(b))
    bar.close()
    p = torch.cat(probs) if probs else torch.zeros(0, device=rt.device)
    loss = torch.cat(losses) if losses else None
    return p, loss


def _metrics_row(prefix: str, y: np.ndarray, p: np.ndarray, loss_mean: float) -> dict:
    m = binary_metrics(y, p)
    row = {f"{prefix}_loss": loss_mean}
    row.update({f"{prefix}_{k}": m[k] for k in METRICS})
    return row


# ----------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    run_dir: Path
    history: pd.DataFrame
    best_epoch: int
    best_metric: float


def _better(metric: str, new: float, old: float | None) -> bool:
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return not math.isnan(new)
    return new < old if metric == "val_loss" else new > old


def _make_optimizer(cfg: TrainConfig, model: nn.Module):
    backbone, head = head_parameters(model, cfg.model)
    groups = [{"params": head, "lr": cfg.lr, "name": "head"}]
    if backbone:
        groups.insert(0, {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale, "name": "backbone"})
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_scheduler(cfg: TrainConfig, opt, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total)
    return None


def _format_row(row: dict, best: bool, header: bool) -> str:
    cols = [("epoch", "{:>5d}"), ("train_loss", "{:>10.4f}"), ("train_accuracy", "{:>9.4f}"),
            ("val_loss", "{:>9.4f}"), ("val_accuracy", "{:>8.4f}"), ("val_f1", "{:>7.4f}"),
            ("val_auc", "{:>8.4f}"), ("lr", "{:>9.2e}"), ("epoch_time_s", "{:>7.1f}"),
            ("train_images_per_s", "{:>8.0f}")]
    names = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "val_auc", "lr", "time_s", "img/s"]
    widths = [5, 10, 9, 9, 8, 7, 8, 9, 7, 8]
    line = " ".join(fmt.format(row[k]) for k, fmt in cols) + ("  *best" if best else "")
    if header:
        return " ".join(f"{n:>{w}}" for n, w in zip(names, widths)) + "\n" + line
    return line


def train_model(
    cfg: TrainConfig,
    data: CifakeData,
    splits: Splits,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    log=None,
) -> TrainResult:
    """Train ``cfg.model`` on ``splits.train``, validating on ``splits.val`` after every epoch."""
    cfg.validate()
    info = init_distributed(cfg.device)
    device = resolve_device(cfg.device, info)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log = log or (lambda msg: tqdm.write(msg))
    say = log if info.is_main else (lambda msg: None)
    progress = progress and info.is_main
    run_dir = Path(run_dir)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    seed_everything(cfg.seed, cfg.deterministic)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(last_path)
        old = ckpt["config"]
        changed = [k for k in RESUME_FIXED if old.get(k) != getattr(cfg, k)]
        if changed:
            raise CheckpointError(
                f"cannot resume {last_path}: settings differ from the checkpoint: "
                + ", ".join(f"{k} {old.get(k)!r} -> {getattr(cfg, k)!r}" for k in changed)
            )
        if ckpt["data"]["fingerprint"] != data.fingerprint:
            raise CheckpointError(f"cannot resume {last_path}: it was trained on other data ({ckpt['data']['source']})")

    model = build_model(cfg.model, pretrained=cfg.pretrained and ckpt is None, weights_path=cfg.weights if ckpt is None else None)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    model.to(device)
    rt = make_runtime(cfg, device)
    if rt.prep.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(cfg, model)

    images = torch.from_numpy(data.images)
    labels = torch.from_numpy(data.labels)
    if device.type == "cuda":
        # the whole uint8 dataset lives on the GPU: 370 MB for CIFAKE's 120k images
        images, labels = images.to(device), labels.to(device)
    train_idx = torch.from_numpy(splits.train).to(images.device)
    val_idx = torch.from_numpy(splits.val).to(images.device)
    per_rank = len(train_idx) // info.world
    if per_rank < 2:
        raise ConfigError(f"only {len(train_idx)} training images for {info.world} process(es)")
    steps = math.ceil(per_rank / cfg.batch_size)
    sched = _make_scheduler(cfg, opt, steps)
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt.get("scheduler") is not None:
            sched.load_state_dict(ckpt["scheduler"])

    train_model_ = model
    if info.world > 1:
        train_model_ = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model_ = torch.compile(train_model_)

    history: list[dict] = list(ckpt["history"]) if ckpt is not None else []
    best_metric = ckpt.get("best_metric") if ckpt is not None else None
    best_epoch = ckpt.get("best_epoch", 0) if ckpt is not None else 0
    start_epoch = ckpt["epoch"] + 1 if ckpt is not None else 1
    prov = provenance(device)
    prov["world_size"] = info.world
    run_info = {
        "config": cfg.to_dict(), "input_size": cfg.input_size, "data": data.provenance(),
        "preprocessing": rt.prep.describe(), "amp": str(rt.amp_dtype), "provenance": prov,
    }
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_manifest(splits, data, run_dir / "splits.json")
        _write_atomic_text(run_dir / "config.json", json.dumps(run_info, indent=2, default=str))
    if start_epoch > cfg.epochs:
        say(f"{last_path} already holds {start_epoch - 1} epoch(s); nothing to do for epochs={cfg.epochs}")
    elif ckpt is not None:
        say(f"resuming {run_dir} at epoch {start_epoch} of {cfg.epochs}")
    if data.synthetic:
        say("note: training on SYNTHETIC demo data, not CIFAKE")

    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        seed = _epoch_seed(cfg.seed, epoch)
        torch.manual_seed(seed)  # dropout and anything else drawing from the global generators
        order_gen = torch.Generator(device="cpu").manual_seed(seed)
        aug_gen = torch.Generator(device=device).manual_seed(seed + 1)
        perm = train_idx[torch.randperm(len(train_idx), generator=order_gen).to(train_idx.device)]
        perm = perm[info.rank : per_rank * info.world : info.world]
        train_model_.train()
        loss_sum = torch.zeros((), device=device)
        probs, ys = [], []
        bar = tqdm(total=len(perm), desc=f"epoch {epoch}/{cfg.epochs}", unit="img", leave=False, disable=not progress)
        for step, start in enumerate(range(0, len(perm), cfg.batch_size)):
            b = perm[start : start + cfg.batch_size]
            if len(b) < 2 and step > 0:
                continue  # a batch of one breaks BatchNorm; its image is seen next epoch
            x = rt.prep(images[b], train=True, generator=aug_gen)
            y = labels[b].to(device, non_blocking=True)
            with rt.autocast():
                logits = train_model_(x)
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            loss_sum += loss.detach() * len(b)
            probs.append(torch.softmax(logits.detach().float(), dim=1)[:, 1])
            ys.append(y)
            bar.update(len(b))
            if progress and step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.close()
        train_time = time.perf_counter() - t0
        p_train = _gather(torch.cat(probs), info)
        y_train = _gather(torch.cat(ys), info)
        n_seen = torch.tensor([float(sum(len(p) for p in probs))], device=device)
        loss_total = loss_sum.reshape(1)
        if info.world > 1:
            dist.all_reduce(loss_total)
            dist.all_reduce(n_seen)
        row = {"epoch": epoch}
        row.update(_metrics_row("train", y_train.cpu().numpy(), p_train.cpu().numpy(), float(loss_total / n_seen)))

        shard = val_idx[info.rank :: info.world]
        p_val, l_val = predict_batches(_unwrap(train_model_), images, labels, shard, rt, cfg.eval_batch_size,
                                       progress=progress, desc="validate")
        y_val = _gather(labels[shard].to(device), info)
        p_val, l_val = _gather(p_val, info), _gather(l_val, info)
        row.update(_metrics_row("val", y_val.cpu().numpy(), p_val.cpu().numpy(), float(l_val.mean())))
        row["lr"] = float(opt.param_groups[-1]["lr"])
        row["epoch_time_s"] = time.perf_counter() - t0
        row["train_images_per_s"] = float(n_seen.item()) / train_time
        improved = _better(cfg.select_metric, row[cfg.select_metric], best_metric)
        if improved:
            best_metric, best_epoch = float(row[cfg.select_metric]), epoch
        row["best"] = bool(improved)
        history.append(row)
        if info.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "model": _unwrap(train_model_).state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None,
                "epoch": epoch,
                "best_metric": best_metric,
                "best_epoch": best_epoch,
                "select_metric": cfg.select_metric,
                "config": cfg.to_dict(),
                "input_size": cfg.input_size,
                "data": data.provenance(),
                "data_image_size": data.image_size,
                "history": history,
                "provenance": prov,
            }
            save_checkpoint(state, last_path)
            if improved:
                save_checkpoint(state, best_path)
            _write_atomic_text(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
            say(_format_row(row, improved, header=epoch == start_epoch))
        if info.world > 1:
            dist.barrier()
    if info.is_main:
        prov["finished_utc"] = provenance(device)["time_utc"]
        prov["wall_time_s"] = float(sum(r["epoch_time_s"] for r in history))
        _write_atomic_text(run_dir / "provenance.json", json.dumps({**run_info, "provenance": prov,
                                                                      "best_epoch": best_epoch,
                                                                      "best_metric": best_metric}, indent=2, default=str))
    return TrainResult(run_dir, pd.DataFrame(history), best_epoch, best_metric if best_metric is not None else float("nan"))


def load_run_model(run_dir: str | os.PathLike, which: str = "best", device="cpu") -> tuple[nn.Module, dict]:
    """The model of a finished run (``best.pt`` or ``last.pt``) in eval mode, with its checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; train one with `cifake train --out {run_dir}`")
    ckpt = load_checkpoint(run_dir / f"{which}.pt")
    model = build_model(ckpt["config"]["model"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
