#!/usr/bin/env python
"""One prepared GPU session: everything a lent H100 or H200 should check, sized for under 9 minutes.

    PYTHONPATH=. python3 benchmarks/gpu_session.py --out "$OUT"

Writes ``gpu_session.json`` and ``gpu_session.log`` (everything printed, the subprocesses'
output too) into ``--out`` after every step, in four steps:

1. versions: Python, torch, torchvision, CUDA, cuDNN, the GPU, and which of the project's
   packages the machine lacks (the notebooks need them; this script does not);
2. a timed slice of the ``paper`` profile: ResNet-18 and the custom CNN at 224 px, one epoch
   each over a fixed number of images with the profile's own settings (batch size, bf16
   autocast, channels_last, TF32), then fp32 scoring as evaluation does; images/s and peak GPU
   memory, and from those rates an estimate of the full ``paper`` report's wall time (about a
   minute on a GPU by the project's own targets; a failure is recorded and the session goes on);
3. the tests (3 minutes at most): tests/test_cuda.py (training on the device in bf16, resume,
   evaluation equal to the recorded validation) and tests/test_cuda_paths.py (the CUDA branches
   with fakes);
4. ``benchmarks/gpu_check.py`` (3 minutes at most): the data path, the trainer and the
   paper-style pipeline.

Needs only what the GPU machines' image holds (torch, torchvision, numpy, pandas, scikit-learn,
scipy, tqdm, pillow, pytest): carry nothing. ``benchmarks/run_all.py --reuse --gpu-json
gpu_session.json`` folds the result into RESULTS.md. ``--smoke`` runs every step tiny on the CPU
(the test suite does, so the script cannot rot between GPU sessions).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine  # noqa: E402

# import name -> distribution, for the project's dependencies that a GPU image may lack
PROJECT_PACKAGES = {
    "papermill": "papermill",
    "nbconvert": "nbconvert",
    "nbval": "nbval",
    "ipykernel": "ipykernel",
    "pytorch_grad_cam": "grad-cam",
    "pypdf": "pypdf",
    "kagglehub": "kagglehub",
    "matplotlib": "matplotlib",
    "seaborn": "seaborn",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "pandas": "pandas",
    "tqdm": "tqdm",
    "PIL": "pillow",
    "pytest": "pytest",
    "hypothesis": "hypothesis",
}
# the size of the full run the estimate is for: the Kaggle download, 100,000 train images
# (10% kept for validation) and the official 20,000-image test split
FULL_TRAIN, FULL_VAL, FULL_TEST = 90_000, 10_000, 20_000
ROBUSTNESS_CONDITIONS = 11  # clean + 10 perturbations (study/perturb.py PERTURBATIONS)


class Log:
    """Print to stdout and append to the session's log file."""

    def __init__(self, path: Path):
        self.fh = path.open("a", encoding="utf-8")

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.fh.write(text + "\n")
        self.fh.flush()


def versions() -> dict:
    import torch
    import torchvision

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "machine": machine(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gib": props.total_memory / 2**30, "count": torch.cuda.device_count()}
    missing = [dist for mod, dist in PROJECT_PACKAGES.items() if importlib.util.find_spec(mod) is None]
    info["missing_packages"] = missing
    info["carry_hint"] = (
        "for the notebooks (make report), carry wheels of: " + ", ".join(missing) + " (see the device README)"
        if missing
        else "every project package is installed"
    )
    return info


def run_step(cmd: list[str], log: Log, timeout: float, env: dict | None = None) -> tuple[int, str, float]:
    """Run a subprocess from the repository root; its output goes to the log. Returns (rc, output, s)."""
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
        )
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = 124
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        output += f"\n(stopped after its {timeout:.0f} s limit)"
    log(output.rstrip())
    return rc, output, time.perf_counter() - t0


def pytest_counts(output: str) -> dict:
    """{'passed': n, 'failed': n, 'skipped': n, ...} from pytest's closing line."""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", output)}


def cuda_tests(log: Log, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda_paths.py"]
    cmd += ["tests/test_cuda.py"]
    rc, output, seconds = run_step(cmd, log, timeout, env={"CIFAKE_TEST_DEVICE": "cuda"})
    return {"returncode": rc, "counts": pytest_counts(output), "seconds": seconds}


def gpu_check(log: Log, out: Path, timeout: float, smoke: bool) -> dict:
    args = ["--smoke"] if smoke else ["--images", "50000", "--paper-files", "4096", "--paper-batches", "16"]
    rc, _, seconds = run_step([sys.executable, "benchmarks/gpu_check.py", *args, "--out", str(out)], log, timeout)
    path = out / "gpu_check.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    path.unlink(missing_ok=True)  # folded into gpu_session.json
    return {"returncode": rc, "seconds": seconds, "result": result}


def paper_slice(log: Log, images: int, smoke: bool) -> dict:
    """Each network of the paper profile for one epoch over ``images`` images, then fp32 scoring."""
    import numpy as np
    import torch
    from gpu_check import random_data

    from cifake_lib.data.splits import Splits
    from cifake_lib.engine.inference import predict_array
    from cifake_lib.engine.models import build_model
    from cifake_lib.engine.trainer import train_model
    from cifake_lib.study.profiles import profile_config

    n_val = 1024 if smoke else 10_000
    data = random_data(images + n_val)
    rows = np.arange(images + n_val)
    splits = Splits(rows[:images], rows[images:], rows[images:], rows[images:], {"test_source": "benchmark"})
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    out = {"images": images, "val_images": n_val, "device": device, "models": {}}
    for model in ("resnet18", "custom_cnn"):
        # the paper profile's settings; no ImageNet download here, and the speed is the same
        extra = {"image_size": 32, "batch_size": 64} if smoke else {}
        cfg = profile_config("paper", model, epochs=1, device=device, pretrained=False, **extra)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        run = Path(os.environ.get("TMPDIR", "/tmp")) / f"cifake-gpu-session-{model}"
        row = train_model(cfg, data, splits, run, progress=False, log=log).history.iloc[0]
        train_peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        net = build_model(model)
        predict_array(net, data.images[splits.val[:256]], cfg, torch.device(device), progress=False)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        predict_array(net, data.images[splits.val], cfg, torch.device(device), progress=False)
        if device == "cuda":
            torch.cuda.synchronize()
        eval_s = time.perf_counter() - t0
        out["models"][model] = {
            "input_size": cfg.input_size,
            "batch_size": cfg.batch_size,
            "amp": cfg.amp,
            "tf32": cfg.tf32,
            "train_img_s": float(row["train_images_per_s"]),
            "epoch_time_s": float(row["epoch_time_s"]),
            "eval_img_s": n_val / eval_s,
            "peak_train_memory_gib": train_peak,
        }
        m = out["models"][model]
        log(
            f"{model} @ {cfg.input_size}px, batch {cfg.batch_size}: train {m['train_img_s']:,.0f} img/s, "
            f"fp32 scoring {m['eval_img_s']:,.0f} img/s, epoch (with validation) {m['epoch_time_s']:.1f} s"
            + (f", peak memory {train_peak:.1f} GiB" if train_peak is not None else "")
        )
    out["estimate"] = estimate_paper_report(out["models"])
    return out


def estimate_paper_report(rates: dict) -> dict:
    """Minutes of the full ``paper`` report (training with per-epoch validation, 05's scoring of
    the test and validation parts, 07's perturbed test images) from measured images/s. Not
    counted: decoding the data once, checkpoint writes, notebook start-up, Grad-CAM, the PDF."""
    from cifake_lib.study.profiles import profile_config, profile_recipes

    runs = []
    for model in ("resnet18", "custom_cnn"):
        for recipe in profile_recipes("paper", model):
            runs.append((model, recipe))
            if model == "resnet18" and recipe == "paper":
                runs.append((model, "scratch"))  # 03's from-scratch twin, same recipe
    parts, total = [], 0.0
    for model, recipe in runs:
        cfg = profile_config("paper", model, recipe="paper" if recipe == "scratch" else recipe)
        r = rates[model]
        passes = 2 if cfg.tta else 1  # flip test-time augmentation scores each image twice
        train = cfg.epochs * (FULL_TRAIN / r["train_img_s"] + FULL_VAL * passes / r["eval_img_s"])
        evaluate = (FULL_TEST + FULL_VAL) * passes / r["eval_img_s"]
        robust = 0.0 if recipe == "scratch" else ROBUSTNESS_CONDITIONS * FULL_TEST * passes / r["eval_img_s"]
        parts.append({"run": f"{model} {recipe}", "epochs": cfg.epochs, "minutes": (train + evaluate + robust) / 60})
        total += train + evaluate + robust
    return {"runs": parts, "total_minutes": total / 60}


def print_estimate(spec: str, out: str) -> int:
    """The estimate of the full paper report from assumed rates (before any GPU measured them)."""
    try:
        train, score = (float(v) for v in spec.split(","))
    except ValueError:
        raise SystemExit(f"--estimate wants TRAIN,SCORE images/s, e.g. 6000,15000; got {spec!r}") from None
    rates = {m: {"train_img_s": train, "eval_img_s": score} for m in ("resnet18", "custom_cnn")}
    est = {"assumed_rates": rates, **estimate_paper_report(rates)}
    for part in est["runs"]:
        print(f"  {part['run']:<22} {part['epochs']:>3} epochs  {part['minutes']:6.1f} min")
    print(
        f"estimated wall time of the full paper report at {train:,.0f} / {score:,.0f} img/s: "
        f"{est['total_minutes']:.0f} minutes"
    )
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"paper_estimate_{train:.0f}_{score:.0f}.json").write_text(json.dumps(est, indent=2))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for the JSON and the log (default $OUT)")
    ap.add_argument("--slice-images", type=int, default=25_600, help="images of the paper-profile slice's epoch")
    ap.add_argument("--smoke", action="store_true", help="every step tiny, on the CPU (the test suite runs this)")
    ap.add_argument(
        "--estimate",
        metavar="TRAIN,SCORE",
        help="only print (and with --out write) the paper-report estimate for assumed images/s of training and "
        "of fp32 scoring, the same for both networks; no GPU needed",
    )
    args = ap.parse_args(argv)
    if args.estimate:
        return print_estimate(args.estimate, args.out)
    if not args.out:
        ap.error("--out (or $OUT) is required")
    out = Path(args.out).resolve()  # the subprocesses run in the repository root
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_session.log").unlink(missing_ok=True)
    log = Log(out / "gpu_session.log")
    t0 = time.perf_counter()
    result: dict = {"time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "smoke": args.smoke}

    def save() -> None:
        result["wall_s"] = time.perf_counter() - t0
        (out / "gpu_session.json").write_text(json.dumps(result, indent=2))

    log("== 1. versions")
    result["versions"] = versions()
    log(json.dumps(result["versions"], indent=2))
    if not result["versions"]["cuda_available"] and not args.smoke:
        log("no CUDA device here: run on a GPU machine, or with --smoke on a CPU")
        save()
        return 1
    save()
    # the slice first: it is in-process (no time limit of its own) and yields the estimate
    log("== 2. a slice of the paper profile")
    try:
        result["paper_slice"] = paper_slice(log, 256 if args.smoke else args.slice_images, args.smoke)
        est = result["paper_slice"]["estimate"]
        for part in est["runs"]:
            log(f"  estimate: {part['run']:<22} {part['epochs']:>3} epochs  {part['minutes']:6.1f} min")
        log(f"estimated wall time of the full paper report at these rates: {est['total_minutes']:.0f} minutes")
    except Exception as exc:  # out of memory, a driver error...: keep what the other steps find
        result["paper_slice"] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"paper slice FAILED: {result['paper_slice']['error']}")
    save()
    log("== 3. tests that need CUDA (and the CUDA branches with fakes)")
    result["cuda_tests"] = cuda_tests(log, timeout=180)
    save()
    log("== 4. benchmarks/gpu_check.py")
    result["gpu_check"] = gpu_check(log, out, timeout=180, smoke=args.smoke)
    save()
    ok = (
        "error" not in result["paper_slice"]
        and result["cuda_tests"]["returncode"] == 0
        and result["gpu_check"]["returncode"] == 0
    )
    log(f"session {'passed' if ok else 'FAILED'} in {result['wall_s']:.0f} s; wrote {out / 'gpu_session.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
