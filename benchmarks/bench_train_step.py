#!/usr/bin/env python
"""Training throughput: this project's trainer against a minimal plain PyTorch loop.

Both train the same model on the same images with the same batched preprocessing, one epoch;
the trainer's figure is its whole wall time (metrics, progress bars, a tiny validation pass,
checkpoints and history files included), so its overhead shows up in the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import median, table, timed, write_json

CASES = [("custom_cnn", 32, 10000), ("resnet18", 32, 1500), ("resnet18", 64, 750), ("resnet18", 224, 96)]


def plain_loop(model_name, size, images, labels, batch_size, device, seed=0):
    import torch
    import torch.nn as nn

    from cifake_lib.engine.models import build_model
    from cifake_lib.engine.preprocess import Preprocessor

    torch.manual_seed(seed)
    model = build_model(model_name).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    prep = Preprocessor(size, device=device, reuse_output=True)  # the same preprocessing as the trainer
    perm = torch.randperm(len(images))
    for start in range(0, len(perm), batch_size):
        b = perm[start : start + batch_size]
        loss = loss_fn(model(prep(images[b])), labels[b].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(perm)


def trainer_run(
    model_name, size, data, splits, batch_size, device, out: Path, amp="off", channels_last=False, progress=True
):
    """One epoch through the trainer (fp32 NCHW unless asked otherwise); returns the images trained."""
    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.trainer import train_model

    cfg = TrainConfig(
        model=model_name,
        image_size=size,
        epochs=1,
        batch_size=batch_size,
        device=device,
        amp=amp,
        channels_last=channels_last,
    )
    train_model(cfg, data, splits, out, progress=progress, log=lambda m: None)
    return len(splits.train)


def main(argv=None) -> dict:
    import numpy as np
    import torch
    from common import load_or_synthesize

    from cifake_lib.data.splits import Splits

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="CIFAKE folder or zip (default $CIFAKE_DATA, else synthetic)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the per-case image counts")
    ap.add_argument("--cases", nargs="+", help="model:size entries (default: all four)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    cases = CASES
    if args.cases:
        wanted = {tuple(c.split(":")) for c in args.cases}
        cases = [c for c in CASES if (c[0], str(c[1])) in wanted]
    biggest = max(int(n * args.scale) for _, _, n in cases)
    data, idx, source = load_or_synthesize(args.data, biggest // 2 + 64)
    rows, result = [], {"source": source, "batch_size": args.batch_size, "repeats": args.repeats, "cases": {}}
    tmp = Path(tempfile.mkdtemp(prefix="cifake-bench-train-"))
    try:
        for model_name, size, n in cases:
            n = max(2 * args.batch_size, int(n * args.scale))
            train_idx, val_idx = idx[:n], idx[-64:]
            splits = Splits(
                np.sort(train_idx), np.sort(val_idx), np.sort(val_idx), np.sort(val_idx), {"test_source": "benchmark"}
            )
            images = torch.from_numpy(data.images[train_idx])
            labels = torch.from_numpy(data.labels[train_idx])
            t_tr, t_pl = [], []
            for r in range(args.repeats):
                t, k = timed(trainer_run, model_name, size, data, splits, args.batch_size, args.device, tmp / f"run{r}")
                t_tr.append(k / t)
                t, k = timed(plain_loop, model_name, size, images, labels, args.batch_size, args.device)
                t_pl.append(k / t)
            tr, pl = median(t_tr), median(t_pl)
            rows.append({"case": f"{model_name} @ {size}px", "images": n, "plain": pl, "trainer": tr, "ratio": tr / pl})
            result["cases"][f"{model_name}@{size}"] = {
                "images": n,
                "plain_img_s": pl,
                "trainer_img_s": tr,
                "ratio": tr / pl,
                "plain_runs": t_pl,
                "trainer_runs": t_tr,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"training throughput on {args.device}, batch {args.batch_size}, one epoch, median of {args.repeats}")
    print(
        table(
            rows,
            [
                ("case", "case"),
                ("images", "images"),
                ("plain", "plain loop img/s"),
                ("trainer", "trainer img/s"),
                ("ratio", "trainer/plain"),
            ],
        )
    )
    write_json(args.json, {"benchmark": "train_step", **result})
    print("ratio (trainer / plain loop): " + ", ".join(f"{r['case']} {r['ratio']:.2f}" for r in rows))
    return result


if __name__ == "__main__":
    main()
