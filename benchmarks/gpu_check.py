#!/usr/bin/env python
"""One prepared GPU check (under 8 minutes on one H200): the paper recipe's speed, both paths.

1. Data path alone: 224px normalized batches per second from the uint8 tensor on the GPU.
2. This project's trainer: ResNet-18 at 224px, bf16 autocast, channels_last, one epoch over a
   100,000-image train split (CIFAKE-sized; real images when --data is given, else random ones:
   throughput does not depend on what the pixels show).
3. The paper-style path for a capped number of batches: ImageFolder over JPEG files, PIL
   Resize(224) + ToTensor + Normalize in DataLoader workers, the same model and precision.
Reports images per second for both, peak GPU memory and achieved FLOP/s against the bf16 peak
(ResNet-18 at 224px: about 1.8 GFLOP forward per image, about three times that per training
image). Writes gpu_check.json under $OUT (or --out). `--smoke` runs a tiny CPU configuration
so that the script is exercised by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cores, machine, table  # noqa: E402

RESNET18_FWD_FLOP_224 = 1.82e9  # per image, forward
TRAIN_FLOP_FACTOR = 3.0  # forward + backward ~ 3x forward
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def peak_for(name: str) -> float | None:
    for key, peak in BF16_PEAK.items():
        if key in name:
            return peak
    return None


def random_data(n: int, size: int = 32, seed: int = 0):
    import numpy as np

    from cifake_lib.data import CifakeData, LoadReport

    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int64)
    return CifakeData(
        images=rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8),
        labels=labels,
        categories=np.zeros(n, np.int64),
        paths=np.array([f"train/{'FAKE' if label else 'REAL'}/{i}.jpg" for i, label in enumerate(labels)]),
        hashes=np.array([f"{i:064x}" for i in range(n)]),
        splits=np.array(["train"] * n),
        source="random benchmark data",
        fingerprint="random-benchmark",
        synthetic=True,
        report=LoadReport(),
    )


def data_path_rate(images, size: int, batch: int, device, seconds: float = 3.0) -> float:
    import torch

    from cifake_lib.engine.preprocess import Preprocessor

    prep = Preprocessor(size, channels_last=device.type == "cuda", device=device)
    perm = torch.randperm(images.shape[0], device=images.device)
    n, t0 = 0, None
    for _ in range(1000):
        for start in range(0, len(perm) - batch + 1, batch):
            prep(images[perm[start : start + batch]])
            n += batch
            if t0 is None:  # first batch: warm-up
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0, n = time.perf_counter(), 0
        if device.type == "cuda":
            torch.cuda.synchronize()
        if time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0)


def paper_style_rate(data, n_files: int, size: int, batch: int, max_batches: int, device, workers: int) -> dict:
    import torch
    import torch.nn as nn
    from PIL import Image
    from torchvision import datasets, transforms

    from cifake_lib.engine.models import build_model

    tmp = Path(tempfile.mkdtemp(prefix="cifake-gpu-paper-"))
    try:
        for i in range(n_files):
            d = tmp / ("FAKE" if data.labels[i] else "REAL")
            d.mkdir(exist_ok=True)
            Image.fromarray(data.images[i].transpose(1, 2, 0)).save(d / f"{i}.jpg", quality=75)
        tf = transforms.Compose(
            [
                transforms.Resize(size),
                transforms.ToTensor(),
                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ]
        )
        loader = torch.utils.data.DataLoader(
            datasets.ImageFolder(str(tmp), transform=tf),
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
        )
        model = build_model("resnet18").to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        amp = (
            torch.autocast(device.type, dtype=torch.bfloat16)
            if device.type == "cuda"
            else torch.autocast("cpu", enabled=False)
        )
        n, t0 = 0, None
        for step, (x, y) in enumerate(loader):
            if step >= max_batches + 1:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with amp:
                loss = loss_fn(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if t0 is None:  # the first batch includes worker start-up and cuDNN autotuning
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            else:
                n += x.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        return {"img_s": n / seconds, "images": n, "batches": max_batches, "workers": workers}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> dict:
    import numpy as np
    import torch

    from cifake_lib.data.splits import Splits
    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.trainer import train_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="CIFAKE folder or zip carried to the machine (default: random images)")
    ap.add_argument("--images", type=int, default=100_000, help="train-split size for the one epoch")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--paper-files", type=int, default=8192, help="JPEG files for the paper-style path")
    ap.add_argument("--paper-batches", type=int, default=24, help="timed batches of the paper-style path")
    ap.add_argument("--compile", action="store_true", help="also torch.compile the model")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run (tests): 256 images at 32px")
    ap.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for gpu_check.json (default $OUT)")
    args = ap.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.smoke:
        args.images, args.batch_size, args.image_size = 256, 64, 32
        args.paper_files, args.paper_batches = 192, 2
    if device.type != "cuda" and not args.smoke:
        print("no CUDA device: run with --smoke on a CPU", file=sys.stderr)
        return {}
    t_start = time.perf_counter()
    if args.data:
        from cifake_lib.data.dataset import load_cifake

        data = load_cifake(args.data, progress=False)
    else:
        data = random_data(args.images + 2048)
    n = min(args.images, len(data) - 1024)
    splits = Splits(
        np.arange(n),
        np.arange(n, n + 1024),
        np.arange(n, n + 1024),
        np.arange(n, n + 1024),
        {"test_source": "benchmark"},
    )
    result = {
        "device": str(device),
        "machine": machine(),
        "images": n,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "data": data.source,
    }

    images = torch.from_numpy(data.images).to(device)
    result["data_path_img_s"] = data_path_rate(
        images, args.image_size, args.batch_size, device, seconds=0.5 if args.smoke else 3.0
    )
    del images

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run = Path(tempfile.mkdtemp(prefix="cifake-gpu-run-"))
    cfg = TrainConfig(
        model="resnet18",
        image_size=args.image_size,
        epochs=1,
        batch_size=args.batch_size,
        device=device.type,
        compile=args.compile,
        eval_batch_size=1024,
    )
    res = train_model(cfg, data, splits, run, progress=False, log=print)
    row = res.history.iloc[0]
    result["trainer"] = {
        "train_img_s": float(row["train_images_per_s"]),
        "epoch_time_s": float(row["epoch_time_s"]),
        "val_accuracy": float(row["val_accuracy"]),
        "amp": "bf16" if device.type == "cuda" else "off",
    }
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    shutil.rmtree(run, ignore_errors=True)

    result["paper_style"] = paper_style_rate(
        data,
        min(args.paper_files, len(data)),
        args.image_size,
        args.batch_size if not args.smoke else 32,
        args.paper_batches,
        device,
        workers=0 if args.smoke else cores(),
    )
    flop_per_img = RESNET18_FWD_FLOP_224 * TRAIN_FLOP_FACTOR * (args.image_size / 224) ** 2
    peak = peak_for(result["machine"].get("gpu", ""))
    for key, rate in (("trainer", result["trainer"]["train_img_s"]), ("paper_style", result["paper_style"]["img_s"])):
        result[key]["tflop_s"] = rate * flop_per_img / 1e12
        result[key]["fraction_of_bf16_peak"] = rate * flop_per_img / peak if peak else None
    result["speedup"] = result["trainer"]["train_img_s"] / result["paper_style"]["img_s"]
    result["wall_s"] = time.perf_counter() - t_start

    rows = [
        {"what": f"data path only ({args.image_size}px batches)", "img_s": result["data_path_img_s"]},
        {
            "what": "cifake trainer, 1 epoch",
            "img_s": result["trainer"]["train_img_s"],
            "tflops": result["trainer"]["tflop_s"],
            "peak": result["trainer"]["fraction_of_bf16_peak"],
        },
        {
            "what": f"paper-style path, {args.paper_batches} batches",
            "img_s": result["paper_style"]["img_s"],
            "tflops": result["paper_style"]["tflop_s"],
            "peak": result["paper_style"]["fraction_of_bf16_peak"],
        },
    ]
    print(
        f"GPU check on {result['machine'].get('gpu', device)}: ResNet-18 @ {args.image_size}px, batch {args.batch_size}"
    )
    print(table(rows, [("what", "what"), ("img_s", "images/s"), ("tflops", "TFLOP/s"), ("peak", "of bf16 peak")]))
    if "peak_gpu_memory_gib" in result:
        print(f"peak GPU memory: {result['peak_gpu_memory_gib']:.1f} GiB; wall {result['wall_s']:.0f} s")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(result, indent=2))
    print(f"speedup (cifake trainer / paper-style): {result['speedup']:.1f}x")
    return result


if __name__ == "__main__":
    main()
