"""Shared helpers for the benchmark scripts: timing, medians, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a plain checkout too (the GPU machine has no install)
    sys.path.insert(0, str(ROOT))


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def machine() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cores": cores(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def median(values) -> float:
    return float(statistics.median(values))


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Fixed-width text table; columns are (key, header) pairs."""
    widths = [max(len(h), *(len(_fmt(r.get(k))) for r in rows)) for k, h in columns]
    lines = ["  ".join(h.rjust(w) for (_, h), w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(_fmt(r.get(k)).rjust(w) for (k, _), w in zip(columns, widths)))
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def write_json(path: str | None, result: dict) -> None:
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    p.write_text(json.dumps(result, indent=2))


def extract_image_folder(data, idx, dest: Path) -> Path:
    """Write rows `idx` of a CifakeData as an ImageFolder tree dest/{REAL,FAKE}/*.png (lossless),
    so that the paper-style pipeline reads the very same pixels."""
    from PIL import Image

    from cifake_lib.data.labels import CLASS_NAMES

    for name in CLASS_NAMES.values():
        (dest / name).mkdir(parents=True, exist_ok=True)
    for i in idx:
        Image.fromarray(data.images[i].transpose(1, 2, 0)).save(dest / CLASS_NAMES[int(data.labels[i])] / f"{i}.png")
    return dest


def load_or_synthesize(data_path: str | None, n_per_class: int, seed: int = 0):
    """Real CIFAKE rows when a source is given (or $CIFAKE_DATA is set), else synthetic data.

    Throughput does not depend on what the pixels show, so synthetic images are a fair stand-in."""
    import numpy as np

    from cifake_lib.data.dataset import load_cifake
    from cifake_lib.data.synth import make_synthetic_cifake

    path = data_path or os.environ.get("CIFAKE_DATA")
    if not path:
        import tempfile

        path = make_synthetic_cifake(Path(tempfile.mkdtemp()) / "synth", per_class=n_per_class, seed=seed, test=False)
    data = load_cifake(path, progress=False)
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [
            rng.choice(np.flatnonzero(data.labels == c), min(n_per_class, int((data.labels == c).sum())), replace=False)
            for c in (0, 1)
        ]
    )
    return data, np.sort(idx), str(path)
