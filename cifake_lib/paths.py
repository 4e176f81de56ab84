"""Default locations, in one place; each can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where decoded datasets are cached: $CIFAKE_CACHE_DIR, else $XDG_CACHE_HOME/cifake."""
    env = os.environ.get("CIFAKE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cifake"


def default_data() -> Path | None:
    """$CIFAKE_DATA if set, else data/ in the repository when it exists, else None."""
    env = os.environ.get("CIFAKE_DATA")
    if env:
        return Path(env).expanduser()
    local = REPO_ROOT / "data"
    return local if local.exists() else None
