"""Where and how a model runs: device, torchrun process group, seeds, precision, memory format.

A :class:`Runtime` bundles what every forward pass needs besides the model (device,
preprocessing, autocast); ``rt.place(model)`` moves a model there in the right memory format,
so callers never repeat the channels_last dance.
"""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from .config import ConfigError, TrainConfig
from .preprocess import Preprocessor


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


def resolve_device(choice: str, info: DistInfo | None = None) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; under torchrun, this rank's GPU."""
    info = info or DistInfo()
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={choice!r} asked for, but CUDA is not available here; use device='cpu'")
        if info.world > 1:
            return torch.device("cuda", info.local_rank)
    return torch.device(choice)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast was
    measured fast (benchmarks/bench_cpu_formats.py); without them the kernels fall back to
    emulation, which was not measured, so ``auto`` stays in fp32 there."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def configure_device(device: torch.device) -> None:
    """Per-process device settings: the current GPU, and TF32 matmuls (bf16 autocast does the rest)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally make cuDNN deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        warnings.warn(
            "deterministic=True: cuDNN autotuning is off and deterministic kernels are used; training is slower",
            stacklevel=2,
        )
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True


def epoch_seed(seed: int, epoch: int) -> int:
    # every epoch starts from its own seed, so a resumed run draws the same batches and dropout
    return (seed * 1_000_003 + epoch * 7_919) % 2**63


def gather(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate a tensor along dim 0 across ranks (ranks may hold different lengths)."""
    if info.world == 1:
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(info.world)]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in range(info.world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside torch.compile and DistributedDataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DistributedDataParallel


@dataclass
class Runtime:
    """What a forward pass needs besides the model: device, preprocessing, precision."""

    device: torch.device
    prep: Preprocessor
    amp_dtype: torch.dtype | None
    tta: bool = False  # score an image as the mean logits of it and its mirror image

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def place(self, model: nn.Module) -> nn.Module:
        """The model on this runtime's device, channels_last when the preprocessing is."""
        model = model.to(self.device)
        if self.prep.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model


def make_runtime(cfg: TrainConfig, device: torch.device, augment: bool | None = None, autocast: bool = True) -> Runtime:
    """The runtime of a run's config on ``device``: unless the config says otherwise, bf16
    autocast on CUDA and on CPUs with bf16 instructions, and channels_last everywhere
    (benchmarks/bench_cpu_formats.py: together 2.9x the fp32 NCHW training throughput of the
    custom CNN on this project's 2-core CPU); flip test-time augmentation when the config says
    so. ``autocast=False`` computes in fp32 whatever the config says."""
    amp = cfg.amp if autocast else "off"
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()) else "off"
    channels_last = cfg.channels_last if cfg.channels_last is not None else True
    # reuse_output: the trainer and the inference loop finish with each batch before the next
    prep = Preprocessor(
        cfg.input_size,
        augment=cfg.augment if augment is None else augment,
        translate=cfg.translate,
        channels_last=channels_last,
        device=device,
        reuse_output=True,
    )
    return Runtime(device, prep, torch.bfloat16 if amp == "bf16" else None, tta=cfg.tta)
