"""Fetch CIFAKE from Kaggle for online users; the only module that touches the network."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

from .sources import DataError, open_source

KAGGLE_HANDLE = "birdy654/cifake-real-and-ai-generated-synthetic-images"
KAGGLE_PAGE = f"https://www.kaggle.com/datasets/{KAGGLE_HANDLE}"
PROBE = ("www.kaggle.com", 443)

MANUAL = (
    f"To get CIFAKE by hand: download the zip from {KAGGLE_PAGE} (free Kaggle account), then either pass "
    "the zip itself (`DATA=path/to/archive.zip`, read in place) or unpack it so that "
    "DEST/train/{REAL,FAKE} and DEST/test/{REAL,FAKE} exist."
)


class DownloadError(RuntimeError):
    """CIFAKE could not be downloaded; the message says how to get it by hand."""


def _check_online(timeout: float) -> None:
    try:
        socket.create_connection(PROBE, timeout=timeout).close()
    except OSError as exc:
        raise DownloadError(f"cannot reach Kaggle ({PROBE[0]}: {exc}); you seem to be offline.\n{MANUAL}") from None


def _fetch_with_kagglehub() -> Path:
    try:
        import kagglehub
    except ImportError:  # pragma: no cover - kagglehub is a declared dependency
        raise DownloadError(f"kagglehub is not installed (pip install kagglehub).\n{MANUAL}") from None
    try:
        return Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as exc:  # kagglehub raises many kinds: auth, HTTP, disk
        raise DownloadError(f"Kaggle download failed: {exc}\n{MANUAL}") from None


def download_cifake(dest: str | os.PathLike, timeout: float = 5.0, fetch=None) -> Path:
    """Download CIFAKE into ``dest``, which appears only once the data is complete and valid.

    ``fetch`` (for tests) replaces the kagglehub call: a function returning a folder.
    """
    dest = Path(dest).expanduser()
    if dest.exists() and any(dest.iterdir()):
        raise DownloadError(f"{dest} already exists and is not empty; choose an empty or new folder")
    if fetch is None:
        _check_online(timeout)
        fetch = _fetch_with_kagglehub
    fetched = Path(fetch())
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cifake-download-", dir=dest.parent))
    try:
        staged = tmp / "data"
        shutil.copytree(fetched, staged)
        try:
            open_source(staged)
        except DataError as exc:
            raise DownloadError(f"the downloaded files are not in the CIFAKE layout: {exc}") from None
        if dest.exists():
            dest.rmdir()
        os.replace(staged, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
