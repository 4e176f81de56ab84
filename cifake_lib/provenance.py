"""Where a result came from: code version, library versions, device, time."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess

from . import __version__, paths


def git_commit() -> str:
    """The repository's HEAD commit, with "+dirty" when tracked files have changes; "unknown" outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=paths.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions() -> dict:
    import numpy
    import sklearn
    import torch
    import torchvision

    return {
        "cifake_lib": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def provenance(device="cpu") -> dict:
    """Everything needed to say which code, libraries and machine produced a result."""
    return {
        "git_commit": git_commit(),
        "versions": versions(),
        "device": device_name(device),
        "host": platform.node(),
        "time_utc": utc_now(),
    }
