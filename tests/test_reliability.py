"""Faults a user meets for real: hostile checkpoints, concurrent and killed cache builds, training
killed by the operating system, hostile zips and images, random bytes in the decoder.

Each test names the fault it reproduces; README's "Reliability" table points here.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifake_lib.cli import main
from cifake_lib.data.cache import entry_dir
from cifake_lib.data.dataset import load_cifake
from cifake_lib.data.decode import MAX_PIXELS, ImageDecodeError, decode_image
from cifake_lib.data.sources import MAX_FILE_BYTES
from cifake_lib.data.synth import make_synthetic_cifake
from cifake_lib.engine.checkpoint import CheckpointError, load_checkpoint
from cifake_lib.engine.trainer import TIMING_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["train", "--model", "custom_cnn", "--epochs", "3", "--batch-size", "32", "--seed", "5", "--no-progress"]
TIMING = list(TIMING_COLUMNS)


def _env():
    # one thread: the killed, resumed and uninterrupted processes compute bit for bit alike
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {path.name} appeared: {proc.stderr.read()[-2000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.05)


def _run_killed(script: str, signal_file: Path) -> None:
    """Run a python script that touches ``signal_file`` at the moment to kill it, then SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(signal_file, proc)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifake_lib.cli", *args], env=_env(), capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_cifake(tmp_path_factory.mktemp("rel") / "ds", per_class=60, seed=7)


@pytest.fixture(scope="module")
def reference_run(dataset, tmp_path_factory):
    """An uninterrupted 3-epoch run, in its own process like the killed ones."""
    run = tmp_path_factory.mktemp("rel-ref") / "run"
    proc = _cli(*TRAIN, "--data", str(dataset), "--out", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_written_by_train_loads_with_weights_only(reference_run):
    for name in ("best.pt", "last.pt"):
        state = torch.load(reference_run / name, weights_only=True)
        assert state["format"] == 1 and state["epoch"] >= 1 and "model" in state


HOSTILE = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"format": 1, "model": Payload(), "config": {"model": "custom_cnn"}}, sys.argv[1])
"""


def test_hostile_checkpoint_runs_no_code(dataset, tmp_path, capsys):
    run, marker = tmp_path / "downloaded-run", tmp_path / "CODE_RAN"
    run.mkdir()
    subprocess.run([sys.executable, "-c", HOSTILE, str(run / "best.pt"), str(marker)], check=True, env=_env())
    image = next((dataset / "test" / "FAKE").iterdir())
    for argv in (["predict", "--run", str(run), str(image)], ["evaluate", "--run", str(run), "--data", str(dataset)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not loaded (loading it could run code)" in err
        assert not marker.exists()
    # the payload is real: unpickling the file the unsafe way runs it
    code = f"import torch; torch.load({str(run / 'best.pt')!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True)
    assert marker.exists()


def test_older_checkpoint_is_refused_with_the_command_that_converts_it(reference_run, tmp_path):
    state = torch.load(reference_run / "best.pt", weights_only=True)
    state["provenance"]["versions"]["torch"] = torch.__version__  # a TorchVersion, as older versions stored it
    old = tmp_path / "best.pt"
    torch.save(state, old)
    with pytest.raises(CheckpointError, match=r"--convert .*best\.pt"):
        load_checkpoint(old)
    from cifake_lib.engine.checkpoint import main as convert

    assert convert(["--convert", str(old)]) == 0
    assert load_checkpoint(old)["epoch"] == state["epoch"]
    assert type(load_checkpoint(old)["provenance"]["versions"]["torch"]) is str


# ----------------------------------------------------------------------------- the decode cache

LOAD = """
import hashlib, json, sys
from cifake_lib.data.dataset import load_cifake
d = load_cifake(sys.argv[1], cache_dir=sys.argv[2], progress=False, workers=1)
print(json.dumps({"n": len(d), "images": hashlib.sha256(d.images.tobytes()).hexdigest(),
                  "hashes": hashlib.sha256("".join(d.hashes).encode()).hexdigest()}))
"""


def test_two_processes_decoding_at_once_agree_and_leave_one_cache(tmp_path):
    ds = make_synthetic_cifake(tmp_path / "ds", per_class=600, seed=3)
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOAD, str(ds), str(cache)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1000:] for _, err in outs]
    a, b = (json.loads(out) for out, _ in outs)
    assert a == b and a["n"] == len(load_cifake(ds, cache_dir=cache, progress=False))
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 1 and not entries[0].startswith("."), entries
    assert load_cifake(ds, cache_dir=cache, progress=False).from_cache


KILLED_DECODE = """
import sys, time
from pathlib import Path
import numpy as np
import cifake_lib.data.cache as cache
real_savez = np.savez
def savez_then_hang(*args, **kwargs):
    real_savez(*args, **kwargs)
    Path(sys.argv[3]).touch()  # images.npy and meta.npz are written, info.json is not
    time.sleep(600)
cache.np.savez = savez_then_hang
from cifake_lib.data.dataset import load_cifake
load_cifake(sys.argv[1], cache_dir=sys.argv[2], progress=False, workers=1)
"""


def test_decode_killed_while_writing_the_cache_is_decoded_again(tmp_path, dataset):
    cache, signal_file = tmp_path / "cache", tmp_path / "writing"
    _run_killed(
        KILLED_DECODE.replace("sys.argv[1]", repr(str(dataset)))
        .replace("sys.argv[2]", repr(str(cache)))
        .replace("sys.argv[3]", repr(str(signal_file))),
        signal_file,
    )
    leftovers = list(cache.iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers)  # only the killed writer's temporary
    data = load_cifake(dataset, cache_dir=cache, progress=False)
    assert not data.from_cache and len(data) == 2 * 60 + len(list((dataset / "test").rglob("*.jpg")))
    assert [p.name for p in cache.iterdir()] == [entry_dir(cache, data.fingerprint).name]  # stale one removed
    again = load_cifake(dataset, cache_dir=cache, progress=False)
    assert again.from_cache and np.array_equal(again.images, data.images)


# ----------------------------------------------------------------------------- training killed for real

KILLED_TRAINING = """
import sys, time
from pathlib import Path
import cifake_lib.engine.trainer as trainer
real = trainer.train_one_epoch
def stop_in_epoch_2(model, state, images, labels, train_idx, env, cfg, epoch):
    if epoch == 2:
        Path(SIGNAL).touch()
        time.sleep(600)
    return real(model, state, images, labels, train_idx, env, cfg, epoch)
trainer.train_one_epoch = stop_in_epoch_2
from cifake_lib.cli import main
main(ARGV)
"""

KILLED_CHECKPOINT_WRITE = """
import sys, time
from pathlib import Path
import cifake_lib.engine.checkpoint as checkpoint
real = checkpoint.torch.save
def save_half_then_hang(state, fh, *args, **kwargs):
    if state["epoch"] == 2:
        fh.write(b"PK\\x03\\x04 half of a checkpoint")
        fh.flush()
        Path(SIGNAL).touch()
        time.sleep(600)
    return real(state, fh, *args, **kwargs)
checkpoint.torch.save = save_half_then_hang
from cifake_lib.cli import main
main(ARGV)
"""


def _assert_same_run(run: Path, reference: Path) -> None:
    a = pd.read_csv(reference / "history.csv").drop(columns=TIMING)
    b = pd.read_csv(run / "history.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)
    wa, wb = (load_checkpoint(r / "best.pt") for r in (reference, run))
    assert wa["epoch"] == wb["epoch"] and all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "script", [KILLED_TRAINING, KILLED_CHECKPOINT_WRITE], ids=["in-epoch-2", "in-checkpoint-write"]
)
def test_sigkill_then_resume_equals_an_uninterrupted_run(script, dataset, reference_run, tmp_path):
    run, signal_file = tmp_path / "run", tmp_path / "now"
    argv = [*TRAIN, "--data", str(dataset), "--out", str(run)]
    _run_killed(script.replace("SIGNAL", repr(str(signal_file))).replace("ARGV", repr(argv)), signal_file)
    # last.pt is the complete epoch-1 file: a kill mid-write never replaces it with half a file
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    assert len(pd.read_csv(run / "history.csv")) == 1
    proc = _cli(*argv, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming" in proc.stdout
    _assert_same_run(run, reference_run)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # the killed writer's temporary is gone


# ----------------------------------------------------------------------------- hostile files


def _patch_declared_size(zip_path: Path, member: str, size: int) -> None:
    """Make a zip member declare ``size`` bytes (local header and central directory) while its
    compressed data still inflates to what it really holds."""
    raw = bytearray(zip_path.read_bytes())
    name = member.encode()
    # (signature, offset of the uncompressed size, of the name length, of the name)
    for sig, size_at, len_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        pos = raw.find(sig)
        while pos != -1:
            name_len = int.from_bytes(raw[pos + len_at : pos + len_at + 2], "little")
            if raw[pos + name_at : pos + name_at + name_len] == name:
                raw[pos + size_at : pos + size_at + 4] = size.to_bytes(4, "little")
            pos = raw.find(sig, pos + 4)
    zip_path.write_bytes(bytes(raw))


def test_hostile_zip_members_are_skipped_and_named(dataset, tmp_path):
    zpath = tmp_path / "hostile.zip"
    big = b"\0" * (MAX_FILE_BYTES + 1024)
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(dataset.rglob("*.jpg")):
            zf.write(p, p.relative_to(dataset).as_posix())
        zf.writestr("train/FAKE/declares-too-much.jpg", big)  # declares (and holds) 50 MB + 1 KB
        zf.writestr("train/REAL/inflates-past.jpg", big)  # will declare 1 KB below
    _patch_declared_size(zpath, "train/REAL/inflates-past.jpg", 1024)
    with zipfile.ZipFile(zpath) as zf:
        assert zf.getinfo("train/REAL/inflates-past.jpg").file_size == 1024
    with pytest.warns(UserWarning, match="skipped 2 corrupt"):
        data = load_cifake(zpath, cache_dir=tmp_path / "cache", progress=False)
    corrupt = data.report.corrupt
    assert set(corrupt) == {"train/FAKE/declares-too-much.jpg", "train/REAL/inflates-past.jpg"}
    assert "limit" in corrupt["train/FAKE/declares-too-much.jpg"]
    assert "damaged zip member" in corrupt["train/REAL/inflates-past.jpg"]
    assert len(data) == len(list(dataset.rglob("*.jpg")))


@pytest.mark.slow
def test_predict_on_a_12000px_png_prints_clean_json(reference_run, tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("1", (12_000, 12_000), 1).save(big)  # 144 megapixels: above PIL's warning limit
    proc = _cli("predict", "--run", str(reference_run), str(big))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 1 and 0 <= rows[0]["p_fake"] <= 1
    assert "Warning" not in proc.stderr and "DecompressionBomb" not in proc.stderr


def test_pixel_limit_is_a_clear_error():
    from PIL import Image

    side = int(np.sqrt(MAX_PIXELS)) + 16
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG")
    with pytest.raises(ImageDecodeError, match=f"more than {MAX_PIXELS:,} pixels.*decompression bomb"):
        decode_image(buf.getvalue(), 32)


# ----------------------------------------------------------------------------- property tests of the decoder


def _valid_files() -> dict[str, bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = {}
    for fmt in ("JPEG", "PNG", "WEBP"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out[fmt] = buf.getvalue()
    return out


VALID = _valid_files()


def _decodes_or_refuses(data: bytes) -> None:
    try:
        arr, *_ = decode_image(data, 32)
    except ImageDecodeError:
        return
    assert arr.shape == (3, 32, 32) and arr.dtype == np.uint8


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096))
def test_decoder_on_random_bytes(data):
    _decodes_or_refuses(data)


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.floats(0, 1))
def test_decoder_on_truncated_files(fmt, frac):
    data = VALID[fmt]
    _decodes_or_refuses(data[: int(len(data) * frac)])


@FUZZ
@given(
    st.sampled_from(sorted(VALID)),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=8),
)
def test_decoder_on_bit_flipped_files(fmt, flips):
    data = bytearray(VALID[fmt])
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    _decodes_or_refuses(bytes(data))


def test_valid_files_decode():
    """The property tests start from real files: each decodes, and the lossless PNG to the very
    pixels it was made from (the decoder's output is 3 x H x W)."""
    for data in VALID.values():
        assert decode_image(data, 32)[0].shape == (3, 32, 32)
    source = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(VALID["PNG"], 32)[0], source.transpose(2, 0, 1))
