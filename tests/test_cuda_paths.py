"""Every CUDA-only branch of the engine, executed on the CPU.

The few CUDA runtime calls the branches make are replaced by :class:`FakeCuda`, whose
``set_device`` checks its argument with torch's own ``_get_device_index``: an index-less
``torch.device("cuda")`` is rejected exactly as on a GPU machine (torch 2.14.1 raises
``ValueError: Expected a torch.device with a specified index or an integer``). That is the error
every single-GPU training run hit before its first step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.cuda._utils import _get_device_index

from cifake_lib.engine import inference, runtime
from cifake_lib.engine.config import ConfigError, TrainConfig
from cifake_lib.engine.runtime import (
    DistInfo,
    Runtime,
    autocast_dtype,
    configure_device,
    ddp_device_ids,
    dist_backend,
    resolve_device,
    setup_device,
)
from cifake_lib.engine.trainer import Env, device_data


class FakeCuda:
    """torch.cuda as a machine with ``count`` GPUs shows it, for the calls the engine makes."""

    def __init__(self, count: int = 2):
        self.count = count
        self.current = 0
        self.set_calls: list[int] = []
        self.moved: list[tuple] = []  # (shape, dtype, device) of each tensor sent to a GPU

    def set_device(self, device) -> None:
        index = _get_device_index(device)  # torch's own argument check
        if not 0 <= index < self.count:
            raise RuntimeError("CUDA error: invalid device ordinal")
        self.current = index
        self.set_calls.append(index)

    def current_device(self) -> int:
        return self.current


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = FakeCuda()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: fake.count)
    monkeypatch.setattr(torch.cuda, "current_device", fake.current_device)
    monkeypatch.setattr(torch.cuda, "set_device", fake.set_device)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda":
            fake.moved.append((tuple(self.shape), self.dtype, torch.device(target)))
            return self  # stays on the CPU; the record says where it was sent
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    # the TF32 flags are process-wide (and not plain attributes): put them back after the test
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield fake
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def test_the_fake_rejects_an_index_less_device_like_torch(fake_cuda):
    with pytest.raises(ValueError, match="specified index"):
        fake_cuda.set_device(torch.device("cuda"))
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        fake_cuda.set_device(torch.device("cuda", 7))
    fake_cuda.set_device(torch.device("cuda", 1))
    assert fake_cuda.set_calls == [1]


def test_configure_device_maps_an_index_less_cuda_device_to_the_current_gpu(fake_cuda):
    device = configure_device(torch.device("cuda"))
    assert device == torch.device("cuda", 0) and fake_cuda.set_calls == [0]
    fake_cuda.current = 1  # a process that chose GPU 1 before
    assert configure_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert configure_device(torch.device("cpu")) == torch.device("cpu") and fake_cuda.set_calls == [0, 1]


@pytest.mark.parametrize(
    ("choice", "expected"), [("auto", ("cuda", 0)), ("cuda", ("cuda", 0)), ("cuda:1", ("cuda", 1)), ("cpu", ("cpu",))]
)
def test_a_single_gpu_process_gets_an_indexed_device(fake_cuda, choice, expected):
    """What `cifake train`, notebooks 03/04 and the GPU benchmarks do first: no torchrun."""
    info, device = setup_device(choice)
    assert info.world == 1
    assert device == torch.device(*expected)
    assert fake_cuda.set_calls == ([expected[1]] if expected[0] == "cuda" else [])
    assert resolve_device(choice) == device  # evaluation and prediction pick the same device


def test_a_gpu_the_machine_does_not_have_is_a_clear_error(fake_cuda):
    with pytest.raises(ConfigError, match="shows 2 GPU"):
        resolve_device("cuda:2")


def test_without_cuda_asking_for_it_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    assert dist_backend("auto") == "gloo"


def test_under_torchrun_each_rank_takes_its_local_gpu_and_nccl(fake_cuda, monkeypatch):
    joined = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(joined))
    monkeypatch.setattr(dist, "init_process_group", lambda backend: joined.append(backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    info, device = setup_device("auto")
    assert joined == ["nccl"] and (info.rank, info.world, info.local_rank) == (1, 2, 1)
    assert device == torch.device("cuda", 1) and fake_cuda.set_calls == [1]
    assert ddp_device_ids(device) == [1]


def test_torchrun_on_the_cpu_uses_gloo(fake_cuda, monkeypatch):
    assert dist_backend("cpu") == "gloo" and dist_backend("auto") == "nccl" and dist_backend("cuda:0") == "nccl"
    assert ddp_device_ids(torch.device("cpu")) is None
    assert ddp_device_ids(torch.device("cuda")) == [0]  # DDP needs the index too


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_flags_follow_the_setting(fake_cuda, tf32):
    configure_device(torch.device("cuda", 0), tf32=tf32)
    assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
    assert TrainConfig().tf32 is True  # the default, as training used before it was a setting


def test_bf16_autocast_choice(monkeypatch):
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert autocast_dtype("auto", cuda) is torch.bfloat16
    assert autocast_dtype("off", cuda) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype("auto", cpu) is None  # emulated bf16 was never measured: fp32
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype("auto", cpu) is torch.bfloat16


def test_the_whole_uint8_dataset_goes_to_the_gpu_once(fake_cuda, synth_root):
    from cifake_lib.data.dataset import load_cifake
    from cifake_lib.data.splits import make_splits

    data = load_cifake(synth_root, progress=False)
    splits = make_splits(data, seed=0)
    env = Env(DistInfo(), Runtime(torch.device("cuda", 0), None, torch.bfloat16), False, print)
    images, labels, train_idx, val_idx = device_data(data, splits, env)
    n = len(data.labels)
    assert fake_cuda.moved[:2] == [
        ((n, 3, 32, 32), torch.uint8, torch.device("cuda", 0)),
        ((n,), torch.from_numpy(data.labels).dtype, torch.device("cuda", 0)),
    ]
    assert len(train_idx) == len(splits.train) and len(val_idx) == len(splits.val)
    fake_cuda.moved.clear()
    device_data(data, splits, Env(DistInfo(), Runtime(torch.device("cpu"), None, None), False, print))
    assert fake_cuda.moved == []  # on the CPU the arrays stay where they are


def test_scoring_uses_the_runs_tf32_setting(fake_cuda, monkeypatch):
    """Evaluation and validation compute with the same arithmetic: predict_array configures the
    device from the run's config before scoring, as training did before validating."""
    seen = []

    def configure(device, tf32=True):
        seen.append((device, tf32))
        return torch.device("cpu")  # score on the CPU; the call is what is checked

    monkeypatch.setattr(inference, "configure_device", configure)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    images = np.zeros((3, 3, 8, 8), dtype=np.uint8)
    for tf32 in (True, False):
        cfg = TrainConfig(model="custom_cnn", image_size=8, tf32=tf32, channels_last=False)
        logits = inference.predict_array(model, images, cfg, torch.device("cuda", 0), progress=False)
        assert logits.shape == (3, 2)
    assert seen == [(torch.device("cuda", 0), True), (torch.device("cuda", 0), False)]


def test_metrics_say_which_tf32_trained_and_which_scored(tmp_path):
    """A run trained on a GPU (TF32 in its validation) and scored on the CPU says both."""
    from cifake_lib.engine.evaluate import run_facts

    cfg = TrainConfig(model="custom_cnn")
    ckpt = {"provenance": {"device": "NVIDIA H100 80GB HBM3"}, "epoch": 3}
    facts = run_facts(tmp_path, cfg, ckpt, torch.device("cpu"))
    assert facts["tf32"] is True and facts["tf32_scoring"] is False and "TF32" in facts["arithmetic"]
    assert run_facts(tmp_path, cfg, ckpt, torch.device("cuda", 0))["tf32_scoring"] is True
    off = TrainConfig(model="custom_cnn", tf32=False)
    assert run_facts(tmp_path, off, ckpt, torch.device("cuda", 0))["tf32_scoring"] is False
    cpu_run = run_facts(tmp_path, cfg, {"provenance": {"device": "cpu (x86_64, 2 threads)"}, "epoch": 1})
    assert cpu_run["tf32"] is False and cpu_run["arithmetic"] == "fp32"
