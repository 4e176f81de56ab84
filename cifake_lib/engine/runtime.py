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


def dist_backend(device_choice: str) -> str:
    """The torch.distributed backend for a device choice: NCCL between GPUs, gloo on the CPU."""
    return "nccl" if device_choice != "cpu" and torch.cuda.is_available() else "gloo"


def init_distributed(device_choice: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend=dist_backend(device_choice))
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(choice: str, info: DistInfo | None = None) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; under torchrun, this rank's GPU.

    A CUDA device always comes back with its index (``cuda`` -> ``cuda:<current device>``):
    ``torch.cuda.set_device`` and DistributedDataParallel's ``device_ids`` reject an index-less
    device, and the run's provenance should name the GPU it used.
    """
    info = info or DistInfo()
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(choice)
    except RuntimeError as exc:
        raise ConfigError(f"device={choice!r} is not a device: use auto, cpu, cuda or cuda:N ({exc})") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ConfigError(f"device={choice!r} asked for, but CUDA is not available here; use device='cpu'")
    if info.world > 1:
        return torch.device("cuda", info.local_rank)
    device = with_index(device)
    count = torch.cuda.device_count()
    if device.index >= count:
        raise ConfigError(f"device={choice!r}: this machine shows {count} GPU(s), cuda:0 to cuda:{count - 1}")
    return device


def with_index(device: torch.device) -> torch.device:
    """A CUDA device with an explicit index: ``cuda`` means the current device (``cuda:0`` unless
    the process chose another); other devices are returned as they are."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast was
    measured fast (benchmarks/bench_cpu_formats.py); without them the kernels fall back to
    emulation, which was not measured, so ``auto`` stays in fp32 there."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def configure_device(device: torch.device, tf32: bool = True) -> torch.device:
    """Per-process device settings; returns the device with its index.

    On CUDA: the current GPU, and TF32 for fp32 matrix products and convolutions, on or off as
    ``tf32`` says. The flags are process-wide, so training (with its validation) and evaluation
    each set them from the run's config and score with the same arithmetic.
    """
    device = with_index(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    return device


def setup_device(choice: str, tf32: bool = True) -> tuple[DistInfo, torch.device]:
    """Join torchrun's process group if there is one, pick this process's device and configure
    it: the first thing a training process does."""
    info = init_distributed(choice)
    return info, configure_device(resolve_device(choice, info), tf32)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training for an ``amp`` setting (auto, bf16, off) on ``device``:
    ``auto`` is bf16 on CUDA and on CPUs with bf16 instructions, else fp32 (None)."""
    if amp == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        amp = "bf16" if native else "off"
    return torch.bfloat16 if amp == "bf16" else None


def ddp_device_ids(device: torch.device) -> list[int] | None:
    """DistributedDataParallel's ``device_ids``: this process's GPU index, None on the CPU."""
    return [with_index(device).index] if device.type == "cuda" else None


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` where the data lives during a run: on the GPU when training there (the whole uint8
    dataset fits: 370 MB for CIFAKE), else where it is."""
    return t.to(device) if device.type == "cuda" else t


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
    amp_dtype = autocast_dtype(cfg.amp if autocast else "off", device)
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
    return Runtime(device, prep, amp_dtype, tta=cfg.tta)
