#!/usr/bin/env python
"""Data path: normalized training batches per second, paper-style pipeline vs this project's.

(a) paper-style: torchvision ImageFolder over the same JPEG files extracted to a folder, PIL
    Resize + ToTensor + Normalize per image in DataLoader workers (num_workers = cores);
(b) this project: the decoded uint8 tensor in memory, batches sliced by a random permutation and
    resized + normalized as whole batches on the device (cifake_lib.engine.preprocess.Preprocessor).
Both produce the same float batches; the two are run alternately, several times, and the
medians are compared. The first-time cost of building the decode cache is measured separately.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import cores, median, table, timed, write_json


def paper_loader(folder: Path, size: int, batch_size: int, workers: int):
    import torch
    from torchvision import datasets, transforms

    steps = [transforms.Resize(size)] if size != 32 else []
    tf = transforms.Compose(
        [*steps, transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    )
    ds = datasets.ImageFolder(str(folder), transform=tf)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )


def paper_pass(loader) -> int:
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    return n


def our_pass(images, size: int, batch_size: int, device) -> int:
    import torch

    from cifake_lib.engine.preprocess import Preprocessor

    prep = Preprocessor(size, device=device, reuse_output=True)  # as the trainer uses it
    perm = torch.randperm(images.shape[0], device=images.device)
    n = 0
    for start in range(0, len(perm), batch_size):
        x = prep(images[perm[start : start + batch_size]])
        n += x.shape[0]
    if x.is_cuda:
        torch.cuda.synchronize()
    return n


def extract_jpegs(source_path: str, paths, dest: Path) -> Path:
    from cifake_lib.data.sources import open_source

    src = open_source(source_path)
    for i, rel in enumerate(paths):
        split, cls, name = rel.split("/")[-3:]
        (dest / cls.upper()).mkdir(parents=True, exist_ok=True)
        (dest / cls.upper() / f"{i}_{name}").write_bytes(src.read_bytes(rel))
    src.close()
    return dest


def cache_cost(source_path: str) -> dict:
    """First decode (cold cache, all cores) and second load of the whole source."""
    from cifake_lib.data.dataset import load_cifake

    tmp = Path(tempfile.mkdtemp(prefix="cifake-bench-cache-"))
    try:
        first, data = timed(load_cifake, source_path, cache_dir=tmp, progress=False)
        second, _ = timed(load_cifake, source_path, cache_dir=tmp, progress=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "images": len(data),
        "first_decode_s": first,
        "first_images_per_s": len(data) / first,
        "cached_load_s": second,
    }


def main(argv=None) -> dict:
    import torch
    from common import load_or_synthesize

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="CIFAKE folder or zip (default $CIFAKE_DATA, else synthetic)")
    ap.add_argument("--n-per-class", type=int, default=2000, help="images per class in the benchmark set")
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 32], help="batch image sizes")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=cores(), help="DataLoader workers (default: cores)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-cache", action="store_true", help="do not measure the first decode of the source")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    data, idx, source = load_or_synthesize(args.data, args.n_per_class)
    tmp = Path(tempfile.mkdtemp(prefix="cifake-bench-folder-"))
    rows, result = (
        [],
        {
            "source": source,
            "images": int(len(idx)),
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "workers": args.workers,
            "device": args.device,
        },
    )
    try:
        folder = extract_jpegs(source, data.paths[idx].tolist(), tmp / "imagefolder")
        images = torch.from_numpy(data.images[idx]).to(args.device)
        for size in args.sizes:
            loader = paper_loader(folder, size, args.batch_size, args.workers)
            paper_pass(loader)  # warm-up: workers started, files in the page cache
            our_pass(images, size, args.batch_size, args.device)
            t_paper, t_ours = [], []
            for _ in range(args.repeats):  # alternate, so drifts in machine load hit both
                t, n = timed(paper_pass, loader)
                t_paper.append(n / t)
                t, n = timed(our_pass, images, size, args.batch_size, args.device)
                t_ours.append(n / t)
            del loader
            p, o = median(t_paper), median(t_ours)
            rows.append({"size": f"{size}px", "pipeline": "paper-style (ImageFolder + PIL, workers)", "img_s": p})
            rows.append(
                {
                    "size": f"{size}px",
                    "pipeline": "cifake (cached uint8, batched on device)",
                    "img_s": o,
                    "ratio": o / p,
                }
            )
            result[f"{size}px"] = {
                "paper_img_s": p,
                "ours_img_s": o,
                "ratio": o / p,
                "paper_runs": t_paper,
                "ours_runs": t_ours,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.skip_cache:
        result["cache"] = cache_cost(source)
    print(f"data path on {args.device}, {len(idx):,} images, batch {args.batch_size}, median of {args.repeats}")
    print(table(rows, [("size", "size"), ("pipeline", "pipeline"), ("img_s", "images/s"), ("ratio", "ratio")]))
    if "cache" in result:
        c = result["cache"]
        print(
            f"decode-once cache for {c['images']:,} images: first build {c['first_decode_s']:.1f} s "
            f"({c['first_images_per_s']:,.0f} img/s), cached load {c['cached_load_s']:.2f} s"
        )
    write_json(args.json, {"benchmark": "data_path", **result})
    print("ratio (cifake / paper-style): " + ", ".join(f"{s}px {result[f'{s}px']['ratio']:.1f}x" for s in args.sizes))
    return result


if __name__ == "__main__":
    main()
