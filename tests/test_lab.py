"""`make lab`: JupyterLab starts (as root too, as in Docker images and cloud GPU boxes) and offers
the project's kernel, which the notebooks name."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from cifake_lib.report import NOTEBOOK_DIR, NOTEBOOKS

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def test_make_lab_passes_allow_root_only_as_root():
    proc = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True)
    line = next(x for x in proc.stdout.splitlines() if "jupyter lab" in x)
    assert ("--allow-root" in line) == (os.getuid() == 0)


def test_notebooks_select_the_projects_kernel():
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        assert nb.metadata.kernelspec.name == "cifake", name


def test_make_lab_answers_http_200_and_offers_the_cifake_kernel(tmp_path):
    if not (ROOT / ".venv" / "bin" / "jupyter").exists():
        pytest.skip("make lab runs the project's .venv, which this test run does not use")
    port, token = _free_port(), "cifake-test"
    args = f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.Popen(
        ["make", "-s", "lab", f"JUPYTER_ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        status, deadline = None, time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/lab?token={token}")
                break
            except OSError:
                time.sleep(0.5)
        if status is None:
            os.killpg(proc.pid, signal.SIGTERM)
            pytest.fail(f"make lab never answered (exit {proc.poll()}):\n{proc.communicate(timeout=10)[0][-3000:]}")
        assert status == 200
        _, body = _get(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}")
        specs = json.loads(body)["kernelspecs"]
        assert specs["cifake"]["spec"]["display_name"] == "Python (cifake)"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
