"""The training loop: device-resident data, batched preprocessing, atomic checkpoints, resume,
per-epoch metrics in history.csv, and DistributedDataParallel under torchrun.

A run folder holds ``config.json``, ``splits.json`` (the manifest used), ``history.csv``
(``train_*`` / ``val_*`` columns, one row per epoch), ``last.pt`` (every epoch), ``best.pt``
(when the selection metric improves) and ``provenance.json``.

``train_model`` reads as the loop it is: build the run state once (fresh or from ``last.pt``),
then for each epoch ``train_one_epoch``, ``validate``, save, and call ``on_epoch_end``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from ..atomic import atomic_write, write_json
from ..data.dataset import CifakeData
from ..data.splits import Splits, save_manifest
from ..provenance import provenance, utc_now
from .checkpoint import CHECKPOINT_FORMAT, better, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .errors import CheckpointError
from .inference import p_fake, per_image_loss, predict_logits
from .metrics import METRICS, binary_metrics
from .models import build_model, head_parameters
from .runtime import (
    DistInfo,
    Runtime,
    ddp_device_ids,
    epoch_seed,
    gather,
    make_runtime,
    seed_everything,
    setup_device,
    to_device,
)

EpochCallback = Callable[[dict], None]


# the per-epoch history's wall-clock columns: they differ between otherwise identical runs
TIMING_COLUMNS = (
    "epoch_time_s",
    "train_images_per_s",
    "train_time_s",
    "prep_time_s",
    "step_time_s",
    "val_time_s",
    "ckpt_time_s",
)


@dataclass
class TrainResult:
    run_dir: Path
    history: pd.DataFrame
    best_epoch: int
    best_metric: float


@dataclass
class Env:
    """Where this process trains: rank, device, preprocessing and precision, how it reports."""

    info: DistInfo
    rt: Runtime
    progress: bool
    say: Callable[[str], None]

    @property
    def device(self) -> torch.device:
        return self.rt.device


@dataclass
class RunState:
    """Everything that changes while training and goes into a checkpoint."""

    model: nn.Module  # the plain model (raw_model) that the optimizer trains
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    ema: AveragedModel | None = None  # moving average of the weights (ema_decay > 0)
    history: list[dict] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int = 0
    start_epoch: int = 1

    @property
    def eval_model(self) -> nn.Module:
        """What is validated and saved as the run's model: the EMA weights when there are any."""
        return self.ema.module if self.ema is not None else self.model


def train_model(
    cfg: TrainConfig,
    data: CifakeData,
    splits: Splits,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    log=None,
    on_epoch_end: EpochCallback | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``splits.train``, validating on ``splits.val`` after every epoch.

    ``on_epoch_end(row)`` is called with each epoch's history row once its checkpoint is saved.
    """
    cfg.validate()
    env = make_env(cfg, log, progress)
    run_dir = Path(run_dir)
    ckpt = resume_checkpoint(run_dir / "last.pt", cfg, data, splits) if resume else None
    images, labels, train_idx, val_idx = device_data(data, splits, env)
    state = build_state(cfg, ckpt, steps_per_epoch(len(train_idx), cfg.batch_size, env.info), env)
    model = wrap_for_training(state.model, cfg, env)  # DDP and/or torch.compile around state.model
    run_info = write_run_start(run_dir, cfg, data, splits, env)
    announce(env, run_dir, state, cfg, data)
    for epoch in range(state.start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        row = {"epoch": epoch, **train_one_epoch(model, state, images, labels, train_idx, env, cfg, epoch)}
        row.update(validate_if_due(state.eval_model, images, labels, val_idx, env, cfg, epoch))
        row["lr"] = float(state.optimizer.param_groups[-1]["lr"])
        row["epoch_time_s"] = time.perf_counter() - t0
        improved = record_epoch(state, row, cfg.select_metric)
        if env.info.is_main:
            t2 = time.perf_counter()
            save_checkpoints(run_dir, checkpoint_dict(state, cfg, data, splits, run_info), improved)
            row["ckpt_time_s"] = time.perf_counter() - t2
            atomic_write(run_dir / "history.csv", pd.DataFrame(state.history).to_csv(index=False))
            env.say(format_row(row, improved, header=epoch == state.start_epoch))
        if env.info.world > 1:
            dist.barrier()
        if on_epoch_end is not None:
            on_epoch_end(row)
    if env.info.is_main:
        write_run_end(run_dir, run_info, state)
    best = state.best_metric if state.best_metric is not None else float("nan")
    return TrainResult(run_dir, pd.DataFrame(state.history), state.best_epoch, best)


# ----------------------------------------------------------------------------- the epoch


def train_one_epoch(
    model: nn.Module, state: RunState, images, labels, train_idx, env: Env, cfg: TrainConfig, epoch: int
) -> dict:
    """One pass over this rank's share of the training images; returns the ``train_*`` columns."""
    t0 = time.perf_counter()
    order, aug_gen = epoch_order(train_idx, cfg.seed, epoch, env)
    model.train()
    loss_sum = torch.zeros((), device=env.device)
    probs, ys = [], []
    bar = tqdm(total=len(order), desc=f"epoch {epoch}/{cfg.epochs}", unit="img", leave=False, disable=not env.progress)
    # host time in preprocessing + augmentation and in forward + backward + optimizer step (the
    # whole of it on the CPU; on CUDA the time to launch the work, which runs asynchronously)
    prep_s = step_s = 0.0
    for step, start in enumerate(range(0, len(order), cfg.batch_size)):
        b = order[start : start + cfg.batch_size]
        if len(b) < 2 and step > 0:
            continue  # a batch of one breaks BatchNorm; its image is seen next epoch
        tp = time.perf_counter()
        x = env.rt.prep(images[b], train=True, generator=aug_gen)
        y = labels[b].to(env.device, non_blocking=True)
        ts = time.perf_counter()
        prep_s += ts - tp
        with env.rt.autocast():
            logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        if state.scheduler is not None:
            state.scheduler.step()
        if state.ema is not None:
            state.ema.update_parameters(state.model)
        step_s += time.perf_counter() - ts
        loss_sum += loss.detach() * len(b)
        probs.append(torch.softmax(logits.detach().float(), dim=1)[:, 1])
        ys.append(y)
        bar.update(len(b))
        if env.progress and step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    seconds = time.perf_counter() - t0
    n_seen = torch.tensor([float(sum(len(p) for p in probs))], device=env.device)
    loss_total = loss_sum.reshape(1)
    if env.info.world > 1:
        dist.all_reduce(loss_total)
        dist.all_reduce(n_seen)
    p_train, y_train = gather(torch.cat(probs), env.info), gather(torch.cat(ys), env.info)
    row = metrics_row("train", y_train.cpu().numpy(), p_train.cpu().numpy(), float(loss_total / n_seen))
    row["train_images_per_s"] = float(n_seen.item()) / seconds
    row["train_time_s"], row["prep_time_s"], row["step_time_s"] = seconds, prep_s, step_s
    return row


def validate(model: nn.Module, images, labels, val_idx, env: Env, batch_size: int) -> dict:
    """Loss and metrics on the whole validation split (each rank scores a shard); ``val_*`` columns."""
    shard = val_idx[env.info.rank :: env.info.world]
    # scored in fp32 like evaluation, whatever precision training uses: the epoch best.pt keeps
    # is then picked by the numbers evaluation would give
    rt = dataclasses.replace(env.rt, amp_dtype=None)
    logits = predict_logits(model, images, shard, rt, batch_size, progress=env.progress, desc="validate")
    y = labels[shard].to(env.device)
    loss = gather(per_image_loss(logits, y), env.info)
    logits, y = gather(logits, env.info), gather(y, env.info)
    return metrics_row("val", y.cpu().numpy(), p_fake(logits), float(loss.mean()))


def epoch_order(train_idx: torch.Tensor, seed: int, epoch: int, env: Env):
    """This rank's training rows for ``epoch`` in their seeded order, and the augmentation generator.

    Seeding per epoch (not once per run) is what lets a resumed run draw exactly the batches,
    augmentations and dropout masks an uninterrupted run would have drawn.
    """
    s = epoch_seed(seed, epoch)
    torch.manual_seed(s)  # dropout and anything else drawing from the global generators
    order_gen = torch.Generator(device="cpu").manual_seed(s)
    aug_gen = torch.Generator(device=env.device).manual_seed(s + 1)
    perm = train_idx[torch.randperm(len(train_idx), generator=order_gen).to(train_idx.device)]
    per_rank = len(train_idx) // env.info.world
    return perm[env.info.rank : per_rank * env.info.world : env.info.world], aug_gen


def metrics_row(prefix: str, y, p, loss_mean: float) -> dict:
    m = binary_metrics(y, p)
    return {f"{prefix}_loss": loss_mean, **{f"{prefix}_{k}": m[k] for k in METRICS}}


def record_epoch(state: RunState, row: dict, select_metric: str) -> bool:
    """Append the row to the history and update the best epoch; True when this epoch improved."""
    improved = better(select_metric, row[select_metric], state.best_metric)
    if improved:
        state.best_metric, state.best_epoch = float(row[select_metric]), row["epoch"]
    row["best"] = bool(improved)
    state.history.append(row)
    return improved


# ----------------------------------------------------------------------------- set-up


def make_env(cfg: TrainConfig, log, progress: bool) -> Env:
    info, device = setup_device(cfg.device, cfg.tf32)
    seed_everything(cfg.seed, cfg.deterministic)
    say = (log or tqdm.write) if info.is_main else (lambda msg: None)
    return Env(info, make_runtime(cfg, device), progress and info.is_main, say)


def device_data(data: CifakeData, splits: Splits, env: Env):
    """(images, labels, train rows, val rows) as tensors; on CUDA the whole uint8 dataset moves to
    the GPU once (370 MB for CIFAKE's 120k images) and batches are sliced there."""
    images = to_device(torch.from_numpy(data.images), env.device)
    labels = to_device(torch.from_numpy(data.labels), env.device)
    train_idx = torch.from_numpy(splits.train).to(images.device)
    val_idx = torch.from_numpy(splits.val).to(images.device)
    return images, labels, train_idx, val_idx


def steps_per_epoch(n_train: int, batch_size: int, info: DistInfo) -> int:
    per_rank = n_train // info.world
    if per_rank < 2:
        raise ConfigError(f"only {n_train} training images for {info.world} process(es)")
    return math.ceil(per_rank / batch_size)


def resume_checkpoint(path: Path, cfg: TrainConfig, data: CifakeData, splits: Splits) -> dict:
    """``last.pt`` of an interrupted run, checked against this run's settings, data and splits."""
    ckpt = load_checkpoint(path)
    changed = cfg.changed_for_resume(ckpt["config"])
    if changed:
        raise CheckpointError(f"cannot resume {path}: settings differ from the checkpoint: " + ", ".join(changed))
    if ckpt["data"]["fingerprint"] != data.fingerprint:
        raise CheckpointError(f"cannot resume {path}: it was trained on other data ({ckpt['data']['source']})")
    stored = ckpt.get("splits")
    if stored is not None and stored != splits.settings:
        raise CheckpointError(
            f"cannot resume {path}: the splits differ from the checkpoint's ({stored} -> {splits.settings})"
        )
    return ckpt


def build_state(cfg: TrainConfig, ckpt: dict | None, steps: int, env: Env) -> RunState:
    """Model (on the device), optimizer and scheduler, fresh or restored from ``ckpt``."""
    fresh = ckpt is None
    model = build_model(cfg.model, pretrained=cfg.pretrained and fresh, weights_path=cfg.weights if fresh else None)
    if not fresh and cfg.ema_decay == 0:
        model.load_state_dict(ckpt["model"])
    # on the device before the optimizer exists, so that restored optimizer state lands there too
    model = env.rt.place(model)
    state = RunState(model, make_optimizer(cfg, model), None, make_ema(model, cfg.ema_decay))
    state.scheduler = make_scheduler(cfg, state.optimizer, steps)
    if not fresh:
        if state.ema is not None:  # "model" holds the EMA weights, "raw_model" the trained ones
            model.load_state_dict(ckpt["raw_model"])
            state.ema.module.load_state_dict(ckpt["model"])
            state.ema.n_averaged.fill_(ckpt["ema_updates"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
        if state.scheduler is not None and ckpt.get("scheduler") is not None:
            state.scheduler.load_state_dict(ckpt["scheduler"])
        state.history = list(ckpt["history"])
        state.best_metric, state.best_epoch = ckpt.get("best_metric"), ckpt.get("best_epoch", 0)
        state.start_epoch = ckpt["epoch"] + 1
    return state


def wrap_for_training(model: nn.Module, cfg: TrainConfig, env: Env) -> nn.Module:
    """The model as the training step calls it: DistributedDataParallel under torchrun,
    torch.compile when asked; ``state.model`` stays the plain model (raw_model)."""
    if env.info.world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=ddp_device_ids(env.device))
    return torch.compile(model) if cfg.compile else model


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    backbone, head = head_parameters(model, cfg.model)
    groups = [{"params": head, "lr": cfg.lr, "name": "head"}]
    if backbone:
        groups.insert(0, {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale, "name": "backbone"})
    optimizer = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optimizer(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, opt, steps: int):
    """Per-step learning-rate schedule (None: constant, the paper's)."""
    total = max(1, cfg.epochs * steps)
    warm = round(cfg.warmup_epochs * steps)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total)
    if warm:
        return torch.optim.lr_scheduler.LambdaLR(opt, WarmupThen(warm, total, cfg.schedule == "cosine"))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return None


@dataclass(frozen=True)
class WarmupThen:
    """lr factor at step t: linear warm-up over ``warm`` steps, then constant or a cosine decay to
    zero at ``total`` (a picklable LambdaLR function)."""

    warm: int
    total: int
    cosine: bool

    def __call__(self, step: int) -> float:
        if step < self.warm:
            return (step + 1) / self.warm
        if not self.cosine:
            return 1.0
        done = (step - self.warm) / max(1, self.total - self.warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))


def make_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (None when decay is 0).

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates, so that the
    average is not dominated by the random initial weights on short runs.
    """
    if decay == 0:
        return None

    @torch.no_grad()
    def ema_update(averaged: list, current: list, n_averaged) -> None:
        if not torch.is_floating_point(averaged[0]):  # integer buffers (BatchNorm's batch count)
            torch._foreach_copy_(averaged, current)
            return
        n = float(n_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1 + n) / (10 + n)))

    return AveragedModel(model, multi_avg_fn=ema_update, use_buffers=True)


# ----------------------------------------------------------------------------- run files


def write_run_start(run_dir: Path, cfg: TrainConfig, data: CifakeData, splits: Splits, env: Env) -> dict:
    """config.json and splits.json (rank 0); returns the run description stored with every checkpoint."""
    prov = {**provenance(env.device), "world_size": env.info.world}
    run_info = {
        "config": cfg.to_dict(),
        "input_size": cfg.input_size,
        "data": data.provenance(),
        "preprocessing": env.rt.prep.describe(),
        "amp": str(env.rt.amp_dtype),
        "channels_last": env.rt.prep.channels_last,
        "provenance": prov,
    }
    if env.info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_manifest(splits, data, run_dir / "splits.json")
        # what evaluation on any other data checks for leaks: the bytes this run learns from
        seen = np.unique(data.hashes[np.concatenate([splits.train, splits.val])]).astype("S64")
        atomic_write(run_dir / "seen_hashes.npy", lambda fh: np.save(fh, seen))
        write_json(run_dir / "config.json", run_info)
    return run_info


def announce(env: Env, run_dir: Path, state: RunState, cfg: TrainConfig, data: CifakeData) -> None:
    if state.start_epoch > cfg.epochs:
        env.say(
            f"{run_dir / 'last.pt'} already holds {state.start_epoch - 1} epoch(s); "
            f"nothing to do for epochs={cfg.epochs}"
        )
    elif state.start_epoch > 1:
        env.say(f"resuming {run_dir} at epoch {state.start_epoch} of {cfg.epochs}")
    if data.synthetic:
        env.say("note: training on SYNTHETIC demo data, not CIFAKE")


def checkpoint_dict(state: RunState, cfg: TrainConfig, data: CifakeData, splits: Splits, run_info: dict) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "model": state.eval_model.state_dict(),  # what evaluation loads (the EMA weights when on)
        **ema_entries(state),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "epoch": state.history[-1]["epoch"],
        "best_metric": state.best_metric,
        "best_epoch": state.best_epoch,
        "select_metric": cfg.select_metric,
        "config": cfg.to_dict(),
        "input_size": cfg.input_size,
        "data": data.provenance(),
        "data_image_size": data.image_size,
        "splits": splits.settings,
        "history": state.history,
        "provenance": run_info["provenance"],
    }


def ema_entries(state: RunState) -> dict:
    """With an EMA, the trained weights and the number of averaged steps (to resume)."""
    if state.ema is None:
        return {}
    return {"raw_model": state.model.state_dict(), "ema_updates": int(state.ema.n_averaged.item())}


def save_checkpoints(run_dir: Path, ckpt: dict, improved: bool) -> None:
    """last.pt every epoch and best.pt on improvement, each atomically (history.csv follows)."""
    save_checkpoint(ckpt, run_dir / "last.pt")
    if improved:
        save_checkpoint(ckpt, run_dir / "best.pt")


def validate_if_due(model: nn.Module, images, labels, val_idx, env: Env, cfg: TrainConfig, epoch: int) -> dict:
    """The ``val_*`` columns and ``val_time_s``: scored when due (``val_every``), NaN otherwise, so
    that an unscored epoch cannot become best.pt."""
    t0 = time.perf_counter()
    if validation_due(epoch, cfg):
        row = validate(model, images, labels, val_idx, env, cfg.eval_batch_size)
    else:
        row = {f"val_{k}": float("nan") for k in ("loss", *METRICS)}
    return {**row, "val_time_s": time.perf_counter() - t0}


def validation_due(epoch: int, cfg: TrainConfig) -> bool:
    """Every ``val_every`` epochs, and always the last epoch."""
    return epoch % cfg.val_every == 0 or epoch == cfg.epochs


def write_run_end(run_dir: Path, run_info: dict, state: RunState) -> None:
    prov = {
        **run_info["provenance"],
        "finished_utc": utc_now(),
        "wall_time_s": float(sum(r["epoch_time_s"] for r in state.history)),
    }
    write_json(
        run_dir / "provenance.json",
        {**run_info, "provenance": prov, "best_epoch": state.best_epoch, "best_metric": state.best_metric},
    )


def format_row(row: dict, best: bool, header: bool) -> str:
    """One line of the per-epoch table printed while training (with its header on the first)."""
    cols = [
        ("epoch", "epoch", "{:>5d}"),
        ("train_loss", "train_loss", "{:>10.4f}"),
        ("train_accuracy", "train_acc", "{:>9.4f}"),
        ("val_loss", "val_loss", "{:>9.4f}"),
        ("val_accuracy", "val_acc", "{:>8.4f}"),
        ("val_f1", "val_f1", "{:>7.4f}"),
        ("val_auc", "val_auc", "{:>8.4f}"),
        ("lr", "lr", "{:>9.2e}"),
        ("epoch_time_s", "time_s", "{:>7.1f}"),
        ("train_images_per_s", "img/s", "{:>8.0f}"),
    ]
    line = " ".join(fmt.format(row[k]) for k, _, fmt in cols) + ("  *best" if best else "")
    if not header:
        return line
    widths = [len(fmt.format(row[k])) for k, _, fmt in cols]
    return " ".join(f"{name:>{w}}" for (_, name, _), w in zip(cols, widths)) + "\n" + line
