"""The benchmark scripts run (tiny sizes) and end with their key figure; the GPU check dry-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(args, tmp_path, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "CIFAKE_DATA"}  # synthetic data: fast
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()


def test_gpu_check_smoke_dry_run(tmp_path):
    lines = _run([str(ROOT / "benchmarks/gpu_check.py"), "--smoke", "--out", str(tmp_path)], tmp_path)
    assert lines[-1].startswith("speedup (cifake trainer / paper-style):")
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["device"] == "cpu" and result["images"] == 256
    for key in ("data_path_img_s", "trainer", "paper_style", "speedup"):
        assert key in result
    assert result["trainer"]["train_img_s"] > 0 and result["paper_style"]["img_s"] > 0
    assert result["trainer"]["tflop_s"] > 0


def test_data_path_benchmark_prints_ratio(tmp_path):
    out = tmp_path / "d.json"
    lines = _run(
        [
            str(ROOT / "benchmarks/bench_data_path.py"),
            "--n-per-class",
            "64",
            "--repeats",
            "1",
            "--workers",
            "1",
            "--sizes",
            "32",
            "--json",
            str(out),
        ],
        tmp_path,
    )
    assert lines[-1].startswith("ratio (cifake / paper-style): 32px ")
    r = json.loads(out.read_text())
    assert r["32px"]["ratio"] > 0 and r["cache"]["first_decode_s"] > 0


def test_train_and_inference_benchmarks_print_figures(tmp_path):
    lines = _run(
        [
            str(ROOT / "benchmarks/bench_train_step.py"),
            "--cases",
            "custom_cnn:32",
            "--scale",
            "0.03",
            "--repeats",
            "1",
            "--json",
            str(tmp_path / "t.json"),
        ],
        tmp_path,
    )
    assert lines[-1].startswith("ratio (trainer / plain loop): custom_cnn @ 32px ")
    lines = _run(
        [
            str(ROOT / "benchmarks/bench_inference.py"),
            "--n-per-class",
            "64",
            "--files",
            "16",
            "--repeats",
            "1",
            "--models",
            "custom_cnn:32",
            "--json",
            str(tmp_path / "i.json"),
        ],
        tmp_path,
    )
    assert lines[-1].startswith("throughput: custom_cnn @ 32px evaluate ")


def test_cli_benchmark_prints_startup_against_the_floor(tmp_path):
    lines = _run(
        [str(ROOT / "benchmarks/bench_cli.py"), "--repeats", "1", "--json", str(tmp_path / "c.json")], tmp_path
    )
    assert lines[-1].startswith("cli start-up: slowest cifake case ")
    cases = json.loads((tmp_path / "c.json").read_text())["cases"]
    assert {"python -c pass (floor)", "cifake --help", "cifake audit /nonexistent"} <= set(cases)
    assert all(c["median_s"] > 0 for c in cases.values())


def test_gpu_recipe_runs_smoke(tmp_path):
    lines = _run([str(ROOT / "benchmarks/gpu_recipes.py"), "--smoke", "--out", str(tmp_path)], tmp_path)
    result = json.loads((tmp_path / "gpu_recipes.json").read_text())
    (row,) = result["runs"]
    assert row["model"] == "resnet18_cifar" and row["recipe"] == "improved" and 0 <= row["accuracy"] <= 1
    stored = json.loads((tmp_path / "resnet18_cifar_improved" / "config.json").read_text())["config"]
    assert stored["recipe"] == "improved" and stored["image_size"] == 32 and stored["epochs"] == 1
    assert any("improved" in line for line in lines)


def test_recipe_variants_train_import_and_tabulate(tmp_path, synth_root):
    """--variants trains the improved recipe's variants on the whole split and takes in a run
    trained elsewhere only when its settings and split are exactly the variant's."""
    label = "improved recipe before tuning (15 epochs)"
    script = str(ROOT / "benchmarks/ablation.py")
    base = [script, "--data", str(synth_root), "--variants", "--only", label, "--seeds", "0"]
    lines = _run([*base, "--json", str(tmp_path / "t.json")], tmp_path)
    (step,) = json.loads((tmp_path / "t.json").read_text())["steps"]
    (run,) = step["runs"]
    assert step["label"] == label and run["epochs"] == 15 and "imported_from" not in run
    assert run["arithmetic"].endswith("channels_last")  # this machine's defaults
    assert 0 <= run["val_accuracy_best"] <= 1 and run["train_s"] > 0
    row = f"| 1 | {label} | {run['arithmetic']} | {run['val_accuracy_best']:.4f} ({run['best_epoch']}) |"
    assert any(line.startswith(row) for line in lines)

    cli = [sys.executable, "-m", "cifake_lib.cli", "train", "--model", "custom_cnn", "--data", str(synth_root)]
    # the recipe as it stood before the tuning: 15 epochs, no test-time flip
    for name, extra in (("same", ["--epochs", "15", "--no-tta"]), ("other", ["--epochs", "3", "--no-tta"])):
        subprocess.run([*cli, "--recipe", "improved", "--out", str(tmp_path / name), *extra], check=True, cwd=tmp_path)
    _run([*base, "--json", str(tmp_path / "i.json"), "--import", f"{label}={tmp_path / 'same'}"], tmp_path)
    (run,) = json.loads((tmp_path / "i.json").read_text())["steps"][0]["runs"]
    assert run["imported_from"] == str(tmp_path / "same") and run["epochs"] == 15

    proc = subprocess.run(
        [sys.executable, *base, "--import", f"{label}={tmp_path / 'other'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode != 0 and "is not this variant: epochs: 3 (run) vs 15" in proc.stderr
    proc = subprocess.run(
        [sys.executable, *base[:4], "--only", "nonsense"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode != 0 and "--only names no variant: nonsense" in proc.stderr

    # a rescored variant scores the named row's best.pt again (flip TTA), training nothing
    rescored = "40 epochs + flip TTA (rescored)"
    _run([*base[:4], "--only", "40 epochs", rescored, "--seeds", "0", "--json", str(tmp_path / "r.json")], tmp_path)
    trained, again = (s["runs"][0] for s in json.loads((tmp_path / "r.json").read_text())["steps"])
    assert again["rescored"] and again["n_val"] > 0 and 0 <= again["val_accuracy_best"] <= 1
    assert again["best_epoch"] == trained["best_epoch"] and again["run_dir"] == trained["run_dir"]


def test_cpu_formats_benchmark_compares_four_ways_of_training(tmp_path):
    out = tmp_path / "f.json"
    lines = _run(
        [
            str(ROOT / "benchmarks/bench_cpu_formats.py"),
            *("--cases", "custom_cnn:32", "--scale", "0.03", "--repeats", "1", "--json", str(out)),
        ],
        tmp_path,
    )
    assert lines[-1].startswith("fastest vs fp32:")
    result = json.loads(out.read_text())
    case = result["cases"]["custom_cnn@32"]
    assert set(case) == {"images", *result["formats"]} and len(result["formats"]) == 4
    assert case["fp32"]["ratio_to_fp32"] == 1.0 and all(case[f]["img_s"] > 0 for f in result["formats"])
    assert isinstance(result["native_bf16"], bool)


def test_gpu_session_smoke_runs_every_step_and_folds_into_results(tmp_path):
    """The prepared GPU session, tiny on the CPU: versions, the CUDA test files (skipped without
    a GPU, the fakes run), gpu_check, the paper-profile slice and its estimate; run_all renders it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_all import gpu_session_lines

    lines = _run([str(ROOT / "benchmarks/gpu_session.py"), "--smoke", "--out", str(tmp_path)], tmp_path)
    assert lines[-1].startswith("session passed in")
    session = json.loads((tmp_path / "gpu_session.json").read_text())
    assert set(session["versions"]["missing_packages"]) <= {"kagglehub"}  # this venv has the rest
    counts = session["cuda_tests"]["counts"]
    assert session["cuda_tests"]["returncode"] == 0 and counts["passed"] >= 10 and counts["skipped"] == 3
    assert session["gpu_check"]["result"]["images"] == 256 and not (tmp_path / "gpu_check.json").exists()
    models = session["paper_slice"]["models"]
    assert set(models) == {"resnet18", "custom_cnn"} and all(m["train_img_s"] > 0 for m in models.values())
    est = session["paper_slice"]["estimate"]
    assert [p["run"] for p in est["runs"]] == [
        "resnet18 paper",
        "resnet18 scratch",
        "resnet18 improved",
        "custom_cnn paper",
        "custom_cnn improved",
    ]
    assert est["total_minutes"] == pytest.approx(sum(p["minutes"] for p in est["runs"]))
    log = (tmp_path / "gpu_session.log").read_text()
    assert "== 2. a slice of the paper profile" in log and "estimated wall time" in log
    text = "\n".join(gpu_session_lines(session))
    assert "| resnet18 | 32 | 64 |" in text and f"{est['total_minutes']:.0f} minutes" in text
    # a session cut off after its first step still renders, saying what is missing
    partial = {k: session[k] for k in ("time_utc", "smoke", "versions", "wall_s")}
    assert "not run" in "\n".join(gpu_session_lines(partial))


def test_time_to_accuracy_compares_recipes_and_splits_the_epoch(tmp_path, synth_root):
    out, fig = tmp_path / "tta.json", tmp_path / "tta.png"
    args = [str(ROOT / "benchmarks/bench_time_to_accuracy.py"), "--data", str(synth_root), "--quiet"]
    args += ["--recipes", "paper", "bn lr 3e-3=improved@custom_cnn_bn:lr=0.003", "--epochs", "2"]
    lines = _run([*args, "--targets", "0.0", "1.01", "--json", str(out), "--figure", str(fig)], tmp_path)
    result = json.loads(out.read_text())
    paper, bn = result["runs"]
    assert bn["config"]["model"] == "custom_cnn_bn" and bn["config"]["lr"] == 0.003 and paper["recipe"] == "paper"
    for run in (paper, bn):
        assert [p["epoch"] for p in run["curve"]] == [1, 2]
        assert run["curve"][0]["train_s"] < run["curve"][0]["wall_s"] < run["curve"][1]["wall_s"]
        assert run["time_to"]["0.000"]["epoch"] == 1 and run["time_to"]["1.010"] is None  # reached, never
        parts = run["breakdown"]
        assert sum(parts[k] for k in ("step_s", "prep_s", "loop_s", "val_s", "ckpt_s")) == pytest.approx(
            parts["epoch_s"]
        )
    assert fig.stat().st_size > 10_000
    text = "\n".join(lines)
    assert "to 0.0%" in text and "not reached" in text and "forward + backward + optimizer" in text
    assert _run([str(ROOT / "benchmarks/bench_time_to_accuracy.py"), "--table", str(out)], tmp_path)[0].startswith(
        "Time to validation accuracy"
    )


def test_recipe_seeds_trains_scores_and_tabulates(tmp_path, synth_root):
    out = tmp_path / "seeds.json"
    args = [str(ROOT / "benchmarks/recipe_seeds.py"), "--data", str(synth_root), "--model", "custom_cnn"]
    _run(
        [*args, "--recipe", "paper", "--seeds", "0", "1", "--keep", str(tmp_path / "runs"), "--json", str(out)],
        tmp_path,
    )
    result = json.loads(out.read_text())
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    for r in result["runs"]:
        assert 0 <= r["test_accuracy"] <= 1 and r["epochs"] == 10 and r["train_s"] > 0
        reads = (tmp_path / "runs" / f"seed{r['seed']}" / "test_reads.jsonl").read_text().splitlines()
        assert len(reads) == 1  # the test part read once per run
    s = result["summary"]["test_accuracy"]
    assert s["values"] == [r["test_accuracy"] for r in result["runs"]] and len(s["ci95"]) == 2
    table = _run([str(ROOT / "benchmarks/recipe_seeds.py"), "--table", str(out)], tmp_path)
    assert any(line.startswith("| mean |") for line in table)
