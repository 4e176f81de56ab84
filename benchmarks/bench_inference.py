#!/usr/bin/env python
"""Inference throughput: `evaluate` over the in-memory test images and `predict` over files.

A model is trained for one short epoch (its accuracy does not matter here), then scored on N
images with evaluate_model (batched, on the device) and on JPEG files with predict_files
(each file read, decoded, converted and downscaled as `cifake predict` does).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import median, table, timed, write_json


def main(argv=None) -> dict:
    import numpy as np
    import torch
    from common import load_or_synthesize

    from cifake_lib.data.splits import Splits
    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.evaluate import evaluate_model
    from cifake_lib.engine.predict import predict_files
    from cifake_lib.engine.trainer import train_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="CIFAKE folder or zip (default $CIFAKE_DATA, else synthetic)")
    ap.add_argument("--n-per-class", type=int, default=2500, help="images per class scored by evaluate")
    ap.add_argument("--files", type=int, default=1000, help="image files scored by predict")
    ap.add_argument("--models", nargs="+", default=["custom_cnn:32", "resnet18:32"], help="model:size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    data, idx, source = load_or_synthesize(args.data, args.n_per_class)
    tmp = Path(tempfile.mkdtemp(prefix="cifake-bench-infer-"))
    rows, result = [], {"source": source, "images": int(len(idx)), "files": args.files, "models": {}}
    try:
        from cifake_lib.data.sources import open_source

        src = open_source(source)
        files = []
        for i, rel in enumerate(data.paths[idx[: args.files]].tolist()):
            f = tmp / "files" / f"{i}.jpg"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(src.read_bytes(rel))
            files.append(f)
        src.close()
        for spec in args.models:
            model, size = spec.split(":")
            small = np.sort(idx[:256])
            splits = Splits(small, small[:64], np.sort(idx), np.sort(idx), {"test_source": "benchmark"})
            run = tmp / f"run-{model}-{size}"
            cfg = TrainConfig(model=model, image_size=int(size), epochs=1, batch_size=64, device=args.device)
            train_model(cfg, data, splits, run, progress=False, log=lambda m: None)
            ev, pr = [], []
            for _ in range(args.repeats):
                t, rep = timed(evaluate_model, run, data, splits=splits, n_boot=1, progress=False, device=args.device)
                ev.append(rep.metrics["n"] / t)
                t, out = timed(lambda run=run: list(predict_files(run, [tmp / "files"], device=args.device)))
                assert len(out) == len(files) and all("p_fake" in r for r in out)
                pr.append(len(out) / t)
            rows.append({"case": f"{model} @ {size}px", "evaluate": median(ev), "predict": median(pr)})
            result["models"][spec] = {
                "evaluate_img_s": median(ev),
                "predict_files_s": median(pr),
                "evaluate_runs": ev,
                "predict_runs": pr,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"inference on {args.device}: evaluate over {len(idx):,} images (whole call, bootstrap off), "
        f"predict over {len(files):,} JPEG files; median of {args.repeats}"
    )
    print(table(rows, [("case", "case"), ("evaluate", "evaluate img/s"), ("predict", "predict files/s")]))
    write_json(args.json, {"benchmark": "inference", **result})
    print(
        "throughput: "
        + ", ".join(
            f"{r['case']} evaluate {r['evaluate']:,.0f} img/s, predict {r['predict']:,.0f} files/s" for r in rows
        )
    )
    return result


if __name__ == "__main__":
    main()
