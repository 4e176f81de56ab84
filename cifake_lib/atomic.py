"""Atomic file writes: a crash or a kill mid-write leaves the old file (or none), never half a file.

Every file that a later step or a resumed run reads (checkpoints, history, manifests, metrics,
the decode cache) is written through :func:`atomic_write`: the content goes to a temporary name
in the same folder, is flushed to disk, then ``os.replace``-d over the target in one step.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np


def atomic_write(path: str | os.PathLike, content: str | bytes | Callable[[IO[bytes]], object]) -> Path:
    """Write ``content`` (text, bytes, or a function that writes into a binary file) to ``path``.

    The parent folder is created when missing. The temporary file is removed when writing fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            if isinstance(content, str):
                fh.write(content.encode())
            elif isinstance(content, (bytes, bytearray)):
                fh.write(content)
            else:
                content(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    remove_stale_temporaries(path)
    return path


def remove_stale_temporaries(path: Path) -> None:
    """Delete ``.<name>.tmp<pid>`` files and folders beside ``path`` whose process is gone (it was
    killed while writing); those of running processes are left alone."""
    for tmp in path.parent.glob(f".{path.name}.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def to_jsonable(o):
    """``json.dumps`` default for numpy scalars and arrays and paths."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    """``obj`` as JSON (numpy scalars and paths converted), written atomically."""
    return atomic_write(path, json.dumps(obj, indent=indent, default=to_jsonable))
