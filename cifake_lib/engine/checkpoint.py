"""Checkpoint files: plain data only, written atomically, loaded without executing anything.

A checkpoint is a dict of tensors and plain Python values (dict, list, tuple, str, int, float,
bool, None), so ``torch.load(path, weights_only=True)`` reads it, and that is the only way this
project reads one: a run folder passed around between people cannot run code on the machine that
loads it. A checkpoint written by an older version that holds other objects is refused with a
message; ``python -m cifake_lib.engine.checkpoint --convert PATH`` rewrites such a file once,
for a user who trusts where it came from.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..atomic import atomic_write
from .config import TrainConfig
from .errors import CheckpointError
from .models import build_model

CHECKPOINT_FORMAT = 1
CONVERT_HINT = "python -m cifake_lib.engine.checkpoint --convert"


def plain(obj, where: str = "checkpoint"):
    """``obj`` with every leaf a tensor or a plain Python value (numpy scalars and str subclasses
    such as ``torch.__version__`` converted); TypeError naming the place of anything else."""
    if isinstance(obj, torch.Tensor) or obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, dict):
        return {plain(k, where): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    raise TypeError(
        f"{where} holds a {type(obj).__module__}.{type(obj).__name__}, which a checkpoint "
        "loaded with weights_only=True cannot contain"
    )


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """torch.save of the plain-data ``state`` to a temporary file, then os.replace: a crash
    mid-write leaves the previous checkpoint untouched."""
    state = plain(state)
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by the trainer with ``weights_only=True``; CheckpointError if it
    is not one, or if it holds anything but tensors and plain data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a refused class or function: damaged or not a checkpoint
            found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:Check the documentation|$)", str(exc), re.S)
            reason = found.group(1) if found else "UnpicklingError"
            raise CheckpointError(f"{path} is not a readable checkpoint ({reason[:200]})") from None
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain data, so it is not loaded (loading it could "
            f"run code). If it is a cifake checkpoint from a source you trust, convert it once with "
            f"`{CONVERT_HINT} {path}`"
        ) from None
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    return _checked(state, path)


def _checked(state, path: Path) -> dict:
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise CheckpointError(f"{path} is not a cifake checkpoint (no format/model entries)")
    return state


def convert_checkpoint(path: str | os.PathLike) -> Path:
    """Rewrite a trusted older checkpoint as plain data (atomically, in place). This unpickles
    the file: run it only on files from a source you trust."""
    path = Path(path)
    state = _checked(torch.load(path, map_location="cpu", weights_only=False), path)
    return save_checkpoint(state, path)


def load_run_model(run_dir: str | os.PathLike, which: str = "best", device="cpu") -> tuple[nn.Module, dict]:
    """The model of a finished run (``best.pt`` or ``last.pt``) in eval mode, with its checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; train one with `cifake train --out {run_dir}`")
    ckpt = load_checkpoint(run_dir / f"{which}.pt")
    model = build_model(ckpt["config"]["model"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


def run_config(ckpt: dict) -> TrainConfig:
    """The TrainConfig a checkpoint was trained with."""
    return TrainConfig.from_checkpoint(ckpt["config"])


def better(metric: str, new: float, old: float | None) -> bool:
    """Whether ``new`` improves on ``old`` for a selection metric (lower loss, higher others)."""
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return not math.isnan(new)
    return new < old if metric == "val_loss" else new > old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cifake_lib.engine.checkpoint",
        description="Rewrite trusted cifake checkpoints from older versions as plain data, so that they "
        "load with torch.load(weights_only=True). This unpickles each file once: convert only "
        "files whose source you trust.",
    )
    parser.add_argument(
        "--convert", nargs="+", metavar="PATH", required=True, help="checkpoint files (best.pt, last.pt)"
    )
    args = parser.parse_args(argv)
    for p in args.convert:
        try:
            convert_checkpoint(p)
        except (CheckpointError, OSError, pickle.UnpicklingError, TypeError) as exc:
            print(f"{p}: not converted: {exc}", file=sys.stderr)
            return 1
        print(f"{p}: converted; it now loads with weights_only=True")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
