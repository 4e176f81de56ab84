"""The numbered notebooks under papermill (smoke profile), nbval, and the HTML/PDF export."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cifake_lib.data.synth import make_synthetic_cifake
from cifake_lib.engine.config import ConfigError
from cifake_lib.report import NOTEBOOK_DIR, NOTEBOOKS, SYNTHETIC_BANNER, ReportError, find_chromium, make_report
from cifake_lib.study import notebook
from cifake_lib.study.results import SUMMARY_VERSION, StudySummary, seed_spread

pytestmark = pytest.mark.slow


def _need_chromium():
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium for the PDF export (.ci/run installs Debian's chromium)")
        pytest.skip("no Chromium on this machine: PDF export not tested")


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """One smoke-profile run of notebooks 01-07 on synthetic data, exported to HTML and PDF."""
    base = tmp_path_factory.mktemp("nb")
    data = make_synthetic_cifake(base / "synthetic", per_class=80, seed=0)
    report_dir = base / "report"
    pdf = find_chromium() is not None
    out = make_report(str(data), "smoke", report_dir, pdf=pdf, log=lambda m: None, progress=False)
    return {"dir": report_dir, "work": report_dir / "work", "out": out, "data": data, "pdf": pdf}


def test_notebooks_write_what_later_stages_read(smoke_report):
    work = smoke_report["work"]
    manifest = json.loads((work / "splits.json").read_text())
    assert manifest["settings"]["test_source"].startswith("official") and manifest["data"]["synthetic"]
    assert manifest["sizes"]["train"]["total"] + manifest["sizes"]["val"]["total"] == 160
    for model in ("resnet18", "custom_cnn"):
        hist = pd.read_csv(work / "runs" / model / "history.csv")
        assert list(hist["epoch"]) == [1]  # smoke: one epoch
        assert hist[["train_accuracy", "val_accuracy", "val_auc"]].apply(lambda c: c.between(0, 1)).all().all()
        m = json.loads((work / "evaluation" / model / "metrics.json").read_text())
        assert {"accuracy", "precision", "recall", "f1", "auc", "threshold", "n", "confusion"} <= m.keys()
        assert m["n"] == 32 and sum(m["confusion"].values()) == 32
        assert 0 <= m["accuracy"] <= 1 and m["synthetic"] is True
    summary = StudySummary.load(work / "evaluation" / "summary.json")
    assert summary.version == SUMMARY_VERSION and summary.mcnemar.n == 32 and summary.conclusion
    # smoke trains two seeds per model; 05 reports their mean and spread, and McNemar per seed pair
    assert (work / "runs" / "resnet18_seed1" / "best.pt").exists()
    assert summary.seeds["custom_cnn"]["accuracy"].n_seeds == 2 and len(summary.seed_mcnemar) == 2
    assert [t.seed_run for t in summary.seed_mcnemar] == [0, 1]
    # seeds are the unit of a claim: per-seed values and a t interval for the networks and the recipes
    network, recipe = summary.seed_differences
    assert (network.a, network.b) == ("resnet18", "custom_cnn") and network.difference.n_seeds == 2
    assert recipe.a == "custom_cnn, improved recipe" and recipe.difference.n_seeds == 2
    for c in (network, recipe):  # the t interval of the per-seed values, as stored
        assert len(c.difference.values) == 2 and c.difference.ci95 == seed_spread(c.difference.values).ci95
    assert sum("over 2 seeds" in line and "seed-level 95% CI" in line for line in summary.conclusion) == 2
    for model in ("resnet18", "custom_cnn"):
        cal = summary.calibration[model]
        assert cal.temperature > 0 and 0 <= cal.ece <= 1 and 0 <= cal.ece_scaled <= 1 and cal.val_n > 0
    # offline: no ImageNet weights, so the notes say the pretrained-vs-scratch test was not possible
    assert summary.scratch is None and any("could not be tested" in n for n in summary.notes)
    # the smoke profile, like cpu, also trains the custom CNN with the improved recipe; 05 compares
    # the two recipes on the same images and 07 scores the improved run too
    improved = json.loads((work / "runs" / "custom_cnn_improved" / "config.json").read_text())["config"]
    assert improved["recipe"] == "improved" and improved["augment"] and improved["optimizer"] == "adamw"
    assert json.loads((work / "runs" / "custom_cnn" / "config.json").read_text())["config"]["recipe"] == "paper"
    assert not (work / "runs" / "resnet18_improved").exists()
    rec = summary.recipes["custom_cnn"]
    assert rec.improved.scores.n == 32 and rec.improved.run.recipe == "improved" and rec.mcnemar_vs_paper.n == 32
    assert set(summary.recipes) == {"custom_cnn"}
    rob = pd.read_csv(work / "evaluation" / "robustness.csv")
    assert set(rob["model"]) == {"ResNet-18", "Custom CNN", "Custom CNN (improved recipe)"} and len(rob) == 3 * 11
    assert summary.conclusion[0].startswith("These numbers come from SYNTHETIC demo data")
    # the conclusion quotes measured numbers, not fixed claims
    acc = summary.models["custom_cnn"].scores.accuracy
    assert any(f"{acc:.2%}" in line for line in summary.conclusion)


def test_summary_json_round_trips_through_the_typed_results(smoke_report):
    """What 05 wrote reads back into the typed StudySummary and writes out the same JSON."""
    raw = json.loads((smoke_report["work"] / "evaluation" / "summary.json").read_text())
    summary = StudySummary.from_json(raw)
    assert summary.to_json() == raw
    assert StudySummary.from_json(summary.to_json()).to_json() == raw
    per_model = json.loads((smoke_report["work"] / "evaluation" / "custom_cnn" / "metrics.json").read_text())
    assert summary.models["custom_cnn"].scores.accuracy == per_model["accuracy"]  # the same number as metrics.json


def test_every_notebook_executed_with_its_parameters(smoke_report):
    import nbformat

    for name in NOTEBOOKS:
        nb = nbformat.read(smoke_report["dir"] / "executed" / f"{name}.ipynb", as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert sum("parameters" in t for t in tags) == 1
        assert any("injected-parameters" in t for t in tags)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors
    timings = json.loads((smoke_report["dir"] / "timings.json").read_text())
    assert list(timings["seconds"]) == list(NOTEBOOKS)


def test_source_notebooks_follow_the_conventions():
    import nbformat

    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and nb.cells.index(params[0]) == 1
        for line in params[0].source.splitlines():
            code = line.split("#")[0].strip()
            if code:  # NAME = literal
                lhs, rhs = (s.strip() for s in code.split("=", 1))
                value = ast.literal_eval(rhs)  # literals only: no names, calls or expressions
                assert lhs.isupper() and isinstance(value, (int, float, str, bool, type(None), list)), line
                assert not isinstance(value, list) or all(isinstance(v, str) for v in value), line
        assert "notebook.setup(" in nb.cells[2].source
        for c in nb.cells:
            if c.cell_type == "code":
                assert "def " not in c.source and "class " not in c.source, f"{name} defines code"
                assert "import " not in c.source or c is nb.cells[2]


def _code_cells(name: str) -> list[str]:
    import nbformat

    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_notebooks_show_their_steps():
    """No cell runs a whole notebook's stage: 05 computes each statistic in its own cell, 03 and
    04 show a batch before and after preprocessing and call train_model themselves."""
    import re

    from cifake_lib.study.stages import evaluation, explainability, robustness, training

    for module in (evaluation, explainability, robustness, training):
        assert not [n for n in dir(module) if n.endswith("_stage")], module.__name__
    for name in NOTEBOOKS:
        for src in _code_cells(name):
            assert not re.search(r"\w+_stage\(", src), (name, src)
    cells = _code_cells("05_comparative_evaluation")
    steps = (
        "stage.score_run(",
        "stage.paired_difference(",
        "stage.mcnemar(",
        "stage.study_baselines(",
        "stage.score_extra_sets(",
        "stage.seed_spreads(",
        "stage.seed_pair_tests(",
        "stage.seed_difference(",
        "stage.recipe_seed_differences(",
        "stage.score_scratch_twin(",
        "stage.score_improved_runs(",
        "stage.calibrate_all(",
        "stage.summarize(",
    )
    homes = {step: [i for i, src in enumerate(cells) if step in src] for step in steps}
    assert all(homes.values()), homes
    statistics = [homes[s][0] for s in steps[1:-1] if s not in ("stage.seed_spreads(",)]
    assert len(set(statistics)) == len(statistics)  # one cell per statistic
    for name in ("03_train_resnet18", "04_train_custom_cnn"):
        cells = _code_cells(name)
        assert any("stage.training_batch(" in c for c in cells) and any("plots.plot_batch(" in c for c in cells)
        assert any(re.search(r"^result = train_model\(", c, re.M) for c in cells)
        assert any("settings.table(" in c for c in cells)


def test_every_notebook_ends_with_try_this_naming_real_parameters():
    import re

    import nbformat

    from cifake_lib.study.parameters import NOTEBOOK_PARAMETERS

    declared = {p for params in NOTEBOOK_PARAMETERS.values() for p in params}
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        last = nb.cells[-1]
        assert last.cell_type == "markdown" and last.source.startswith("## Try this"), name
        named = re.findall(r"`([A-Z][A-Z_]+) = [^`]+`", last.source)
        assert len(set(named)) >= 2, (name, named)
        assert set(named) <= declared, (name, set(named) - declared)
        assert set(named) & set(NOTEBOOK_PARAMETERS[name]), name  # at least one of its own
        items = [line for line in last.source.splitlines() if line.startswith("- ")]
        assert 2 <= len(items) <= 4, name


def test_executed_training_notebook_shows_batch_history_and_setting_sources(smoke_report):
    import nbformat

    nb = nbformat.read(smoke_report["dir"] / "executed" / "04_train_custom_cnn.ipynb", as_version=4)
    text = {
        c.source: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in c.outputs)
        for c in nb.cells
        if c.cell_type == "code"
    }
    batch = next(out for src, out in text.items() if "stage.batch_table(" in src)
    assert "8 x 3 x 32 x 32" in batch and "uint8" in batch and "float32" in batch
    history = next(out for src, out in text.items() if "stage.history_view(" in src)
    assert "val_accuracy" in history
    sources = next(out for src, out in text.items() if "settings.table(set_only=True)" in src)
    assert "parameter SEED" in sources and "profile" in sources and "recipe" in sources


def test_nbval_reproduces_checked_outputs(smoke_report):
    executed = sorted((smoke_report["dir"] / "executed").glob("*.ipynb"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", *map(str, executed)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=smoke_report["dir"],
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_nbval_fails_when_a_checked_output_drifts(smoke_report, tmp_path):
    import nbformat

    src = smoke_report["dir"] / "executed" / "01_data_exploration.ipynb"
    nb = nbformat.read(src, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source)
    stream = next(o for o in cell.outputs if o.output_type == "stream")
    stream.text = stream.text.replace("160", "161")  # a count that no longer matches
    drifted = tmp_path / "drifted.ipynb"
    nbformat.write(nb, drifted)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", str(drifted)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode != 0 and "failed" in proc.stdout


def _pdf_text(pdf, first=None, last=None, *extra):
    pages = ["-f", str(first), "-l", str(last or first)] if first else []
    return subprocess.run(
        ["pdftotext", *extra, *pages, str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_html_and_pdf_export(smoke_report):
    _need_chromium()
    report = smoke_report["dir"]
    index = (report / "index.html").read_text()
    assert "SYNTHETIC DEMO DATA - NOT CIFAKE" in index and "cifake_report.pdf" in index
    assert "Abstract." in index and "Headline results" in index and "Key figures" in index  # the same front
    for name in NOTEBOOKS:
        assert f'href="html/{name}.html"' in index
        page = (report / "html" / f"{name}.html").read_text()
        assert "SYNTHETIC DEMO DATA" in page and "data:image/png;base64" in page
        assert 'src="https://' not in page  # reads offline
        assert "notebook.setup(" not in page  # code hidden
    assert 'href="html/appendix.html"' in index and "Provenance" in (report / "html" / "appendix.html").read_text()
    pdf = report / "cifake_report.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    pages = int(fields["Pages"])
    assert fields["Title"].strip() == "cifake: smoke profile on synthetic demo data"
    assert fields["Author"].strip() == "cifake" and "CIFAKE" in fields["Subject"] and fields["CreationDate"].strip()
    # front, contents, a chapter each, appendix; 37 pages measured on 2026-12-06 (30 before the
    # notebooks showed their steps, batches, setting sources, seed-level tables and "Try this")
    assert 1 + 1 + len(NOTEBOOKS) + 1 <= pages <= 38
    text = _pdf_text(pdf, 1)
    assert "SYNTHETIC DEMO DATA" in text and "profile" in text and "git commit" in text
    everything = _pdf_text(pdf)
    for heading in ("01 · Data exploration", "05 · Comparative evaluation", "06 · Explainability", "07 · Robustness"):
        assert heading in everything
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(report / "first")], check=True)
    from PIL import Image

    png = next(report.glob("first*.png"))
    arr = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert arr.std() > 10 and (arr < 128).mean() > 0.01  # real content, not a blank page


def test_pdf_front_tells_what_was_found(smoke_report):
    """Page 1: the abstract and the headline table of both networks; the front pages (before the
    contents) carry every key figure, at most two side by side."""
    _need_chromium()
    pdf = smoke_report["dir"] / "cifake_report.pdf"
    first = _pdf_text(pdf, 1)
    summary = StudySummary.load(smoke_report["work"] / "evaluation" / "summary.json")
    assert "Abstract." in first and "Headline results" in first and "Key figures" in first
    for model in ("ResNet-18", "Custom CNN"):
        assert model in first
    assert f"{summary.models['custom_cnn'].scores.accuracy:.4f}" in first  # the measured number, on page 1
    assert "(paper)" not in first  # synthetic demo numbers are never set beside the paper's
    pages = _pdf_text(pdf).split("\f")
    toc = next(i for i, p in enumerate(pages) if "Contents" in [x.strip() for x in p.splitlines()[:5]])
    assert toc == 2  # a front of two pages
    images = subprocess.run(
        ["pdfimages", "-list", "-f", "1", "-l", str(toc), str(pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    captions = _key_figure_captions(smoke_report["dir"])
    assert len(captions) == 5 and len(images) == len(captions)  # confusion, ROC, two mean CAMs, robustness
    front = _pdf_text(pdf, 1, toc, "-layout")
    rows = [sum(c in line for c in captions) for line in front.splitlines()]
    assert sum(rows) == len(captions) and max(rows) == 2  # every caption on the front; two per row


def _key_figure_captions(report_dir) -> list[str]:
    import nbformat

    out = []
    for name in NOTEBOOKS:
        nb = nbformat.read(report_dir / "executed" / f"{name}.ipynb", as_version=4)
        out += [c.metadata["caption"] for c in nb.cells if "key-figure" in c.metadata.get("tags", [])]
    return out


def test_pdf_has_no_near_empty_pages(smoke_report):
    """Every page carries a figure or at least a few lines of text (besides banner and footer):
    no heading or two lines stranded before a page break."""
    _need_chromium()
    pdf = smoke_report["dir"] / "cifake_report.pdf"
    pages = _pdf_text(pdf, None, None, "-layout").split("\f")[:-1]
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    with_images = {int(line.split()[0]) for line in listing.splitlines()[2:]}
    for n, page in enumerate(pages, start=1):
        lines = [x for x in page.splitlines() if x.strip() and "SYNTHETIC DEMO DATA" not in x and "cifake ·" not in x]
        assert n in with_images or len(lines) >= 6, f"page {n} holds only {len(lines)} lines: {lines}"


def test_training_logs_are_in_the_appendix(smoke_report):
    """The per-epoch log the training cells print goes to the appendix, not the chapters."""
    _need_chromium()
    pages = _pdf_text(smoke_report["dir"] / "cifake_report.pdf").split("\f")
    appendix = max(i for i, p in enumerate(pages) if "APPENDIX A" in p)
    log_pages = [i for i, p in enumerate(pages) if "*best" in p and "img/s" in p]  # the log's marks
    assert log_pages and min(log_pages) >= appendix, log_pages
    assert "Training log" in "".join(pages[appendix:])


def test_pdf_contents_chapters_and_appendix(smoke_report):
    """The table of contents gives the page each chapter starts on; chapters start on new pages;
    the appendix comes last."""
    _need_chromium()
    pdf = smoke_report["dir"] / "cifake_report.pdf"
    pages = _pdf_text(pdf).split("\f")
    toc_page = next(i for i, p in enumerate(pages) if "Contents" in [x.strip() for x in p.splitlines()[:5]])
    toc = _pdf_text(pdf, toc_page + 1, None, "-layout")  # one TOC row per line
    for k, name in enumerate(NOTEBOOKS, start=1):
        start = next(i for i, p in enumerate(pages) if f"CHAPTER {k} OF {len(NOTEBOOKS)}" in p) + 1
        first_lines = [line for line in pages[start - 1].splitlines() if line.strip()][:3]
        assert any(f"CHAPTER {k} OF" in line for line in first_lines)  # at the top: a new page
        heading = name[:2] + " · "
        row = next(line for line in toc.splitlines() if heading in line)
        assert row.split()[-1] == str(start), (row, start)
    appendix = next(i for i, p in enumerate(pages) if "APPENDIX A" in p and i > toc_page)
    assert appendix > max(i for i, p in enumerate(pages) if f"CHAPTER {len(NOTEBOOKS)} OF" in p)
    assert "Provenance" in "".join(pages[appendix:]) and "Per-epoch history" in "".join(pages[appendix:])
    assert "Per-epoch history" not in "".join(pages[:appendix])  # moved out of the chapters


def test_pdf_banner_never_covers_text(smoke_report):
    """The synthetic-data warning is on every page, in the top margin, above every line of text."""
    _need_chromium()
    import re

    bbox = _pdf_text(smoke_report["dir"] / "cifake_report.pdf", None, None, "-bbox")
    banner = set(SYNTHETIC_BANNER.split())
    pages = bbox.split("<page ")[1:]
    assert pages
    for n, page in enumerate(pages, start=1):
        words = [
            (w, float(y0), float(y1))
            for y0, y1, w in re.findall(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</word>', page)
        ]
        top = [w for w in words if w[0] in banner and w[2] < 45]
        assert len(top) >= len(banner) - 1, f"page {n}: no banner"
        rest = [w for w in words if w not in top and w[1] < 800]  # the footer sits in the bottom margin
        if rest:  # a page of figures only has no text to cover
            assert min(y0 for _, y0, _ in rest) > max(y1 for _, _, y1 in top), f"page {n}: text under the banner"


def test_unknown_parameter_stops_the_notebook(tmp_path):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as exc:
        pm.execute_notebook(
            str(NOTEBOOK_DIR / "01_data_exploration.ipynb"),
            str(tmp_path / "o.ipynb"),
            parameters={"OUT": str(tmp_path), "SEEED": 1},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(NOTEBOOK_DIR),
        )
    assert "unknown parameter(s) SEEED" in str(exc.value)


def test_failed_run_leaves_no_report_and_names_the_cell(tmp_path, smoke_report):
    report = tmp_path / "report"
    report.mkdir()
    (report / "cifake_report.pdf").write_bytes(b"%PDF stale")
    (report / "index.html").write_text("stale")
    with pytest.raises(ReportError) as exc:  # 03 without 02's split manifest
        make_report(
            str(smoke_report["data"]),
            "smoke",
            report,
            notebooks=("03_train_resnet18",),
            log=lambda m: None,
            progress=False,
        )
    msg = str(exc.value)
    assert "notebook 03_train_resnet18 failed at cell" in msg and "run 02_preprocessing.ipynb first" in msg
    assert not (report / "cifake_report.pdf").exists() and not (report / "index.html").exists()
    assert "03_train_resnet18" in (report / "FAILED.txt").read_text()


def test_setup_validates_parameters(tmp_path):
    base = {"DATA": "", "PROFILE": "smoke", "OUT": str(tmp_path), "SEED": 0}
    with pytest.raises(ConfigError, match="SEED='0' has type str"):
        notebook.setup("01_data_exploration", {**base, "SEED": "0"})
    with pytest.raises(ConfigError, match="must define SEED"):
        notebook.setup("01_data_exploration", {k: v for k, v in base.items() if k != "SEED"})
    with pytest.raises(ConfigError, match="unknown profile 'gpu'"):
        notebook.setup("01_data_exploration", {**base, "PROFILE": "gpu"})
    with pytest.raises(ConfigError, match="DATA='/nope' does not exist"):
        notebook.setup("01_data_exploration", {**base, "DATA": "/nope"})
    study = notebook.setup("01_data_exploration", {**base, "In": [], "_": None, "np": np})
    assert study.profile == "smoke" and study.out == tmp_path.resolve()


@pytest.mark.realdata
def test_whole_chain_on_real_cifake_subset(real_zip, real_cache, tmp_path, monkeypatch):
    """Smoke profile on the real train zip: 150 training images per class, 300 test images per class."""
    monkeypatch.setenv("CIFAKE_CACHE_DIR", str(real_cache))
    out = make_report(str(real_zip), "smoke", tmp_path / "report", pdf=False, log=lambda m: None, progress=False)
    summary = StudySummary.load(tmp_path / "report" / "work" / "evaluation" / "summary.json")
    assert summary.synthetic is False and summary.test_source.startswith("carved from train")
    for model in ("resnet18", "custom_cnn"):
        assert summary.models[model].scores.n == 600
    assert (tmp_path / "report" / "index.html").exists() and out["pdf"] is None
    text = (tmp_path / "report" / "html" / "01_data_exploration.html").read_text()
    assert "SYNTHETIC DEMO DATA" not in text and "100000" in text.replace(",", "")


def test_pretrained_vs_scratch_when_weights_are_available(tmp_path, monkeypatch):
    """With a local weights file, 03's stages train a from-scratch twin and 05 compares the two."""
    import torch
    from torchvision.models import resnet18

    from cifake_lib.study.stages import evaluation, preprocessing, training

    weights = tmp_path / "resnet18-f37072fd.pth"
    torch.save(resnet18().state_dict(), weights)  # stands in for the ImageNet file (offline here)
    data = make_synthetic_cifake(tmp_path / "ds", per_class=40, seed=5)
    base = {"DATA": str(data), "PROFILE": "smoke", "OUT": str(tmp_path / "out"), "SEED": 0}
    preprocessing.prepare_splits(notebook.setup("02_preprocessing", {**base, "IMAGE_SIZE": None, "VAL_FRACTION": 0.1}))
    train = {
        "RECIPE": "paper",
        "EPOCHS": None,
        "IMAGE_SIZE": None,
        "BATCH_SIZE": None,
        "LR": None,
        "AUGMENT": False,
        "AMP": None,
        "LIMIT_PER_CLASS": None,
        "RESUME": False,
        "SEEDS": 1,
    }
    study = notebook.setup(
        "03_train_resnet18",
        {**base, **train, "MODEL": "resnet18", "PRETRAINED": "auto", "WEIGHTS": str(weights), "COMPARE_SCRATCH": True},
    )
    cfg = study.train_config()
    assert cfg.pretrained is True and cfg.weights == str(weights)
    # the only note: smoke's one epoch departs from the paper recipe's ten
    assert study.notes == ["This resnet18 run departs from the paper recipe in: epochs 10 -> 1"]
    training.train_seeds(study, cfg)
    twin = training.train_scratch_twin(study, cfg)
    assert twin is not None and (study.layout.run_dir("resnet18", tag="scratch") / "best.pt").exists()
    cnn = notebook.setup("04_train_custom_cnn", {**base, **train, "MODEL": "custom_cnn"})
    training.train_seeds(cnn, cnn.train_config())
    ev = notebook.setup("05_comparative_evaluation", {**base, "EVAL_LIMIT_PER_CLASS": None, "EXTRA_TEST_DATA": []})
    resnet = evaluation.score_run(ev, "resnet18", n_boot=50)
    scratch = evaluation.score_scratch_twin(ev, resnet, n_boot=50)
    assert scratch is not None and scratch.scratch.run.pretrained is False and resnet.run.pretrained is True
    assert scratch.mcnemar_vs_pretrained.n == resnet.scores.n
    cnn = evaluation.score_run(ev, "custom_cnn", n_boot=50)
    summary = evaluation.summarize(ev, [resnet, cnn], scratch=scratch)
    assert any("from scratch reaches accuracy" in s for s in summary.conclusion)
    assert StudySummary.load(ev.layout.summary_path).scratch.to_json() == scratch.to_json()  # written, read back
    assert list(evaluation.scratch_table(resnet, scratch).index) == ["pretrained", "from scratch"]


def test_05_scores_extra_data_baselines_and_the_difference(smoke_report, tmp_path):
    """05 with EXTRA_TEST_DATA: a plain REAL/ FAKE/ folder of mixed sizes becomes extra rows; the
    simple baselines and the paired difference are computed on the networks' own test images."""
    import shutil

    from PIL import Image

    from cifake_lib.study.baselines import BASELINES
    from cifake_lib.study.stages import evaluation

    out = tmp_path / "out"
    shutil.copytree(smoke_report["work"], out, ignore=shutil.ignore_patterns("evaluation"))
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for cls in ("REAL", "FAKE"):
        for i, size in enumerate([(40, 30), (64, 64), (300, 200)]):
            (photos / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(photos / cls / f"{i}.png")
    params = {
        "DATA": str(smoke_report["data"]),
        "PROFILE": "smoke",
        "OUT": str(out),
        "SEED": 0,
        "EVAL_LIMIT_PER_CLASS": None,
        "EXTRA_TEST_DATA": [str(photos)],
    }
    study = notebook.setup("05_comparative_evaluation", params)
    resnet, cnn = (evaluation.score_run(study, m, n_boot=50) for m in ("resnet18", "custom_cnn"))
    (extra,) = evaluation.score_extra_sets(study, n_boot=50)
    assert extra.n == 6 and extra.small and set(extra.scores) == {"resnet18", "custom_cnn"}
    assert len(evaluation.extra_data_table((extra,))) == 2
    baselines = evaluation.study_baselines(study, cnn, n_boot=50)
    assert set(baselines) == {b.name for b in BASELINES}
    assert all(b.scores.n == cnn.scores.n and 0 <= b.scores.accuracy <= 1 for b in baselines.values())
    assert len(evaluation.baselines_table([resnet, cnn], baselines)) == 2 + len(baselines)
    d = evaluation.paired_difference(resnet, cnn, n_boot=50).accuracy
    assert d.difference == pytest.approx(resnet.scores.accuracy - cnn.scores.accuracy)
    assert d.ci95[0] <= d.difference <= d.ci95[1]
    summary = evaluation.summarize(
        study,
        [resnet, cnn],
        difference=evaluation.paired_difference(resnet, cnn, n_boot=50),
        baselines=baselines,
        extra=(extra,),
    )
    assert any(s.startswith("Simple features carry") for s in summary.conclusion)
    saved = StudySummary.load(out / "evaluation" / "summary.json")
    assert saved.extra[0].n == 6 and saved.difference == summary.difference
    assert {k: b.to_json() for k, b in saved.baselines.items()} == {k: b.to_json() for k, b in baselines.items()}
    assert saved.models["custom_cnn"].scores.average_precision == cnn.scores.average_precision
    assert (out / "evaluation" / "extra0" / "resnet18").is_dir()


# ----------------------------------------------------------------------------- the paper profile, rehearsed

REHEARSAL = {"LIMIT_PER_CLASS": 16, "EPOCHS": 1, "BATCH_SIZE": 12, "AMP": "bf16", "EVAL_LIMIT_PER_CLASS": 8}
PAPER_RUNS = {  # run folder -> (model, recipe, pretrained)
    "resnet18": ("resnet18", "paper", True),
    "resnet18_scratch": ("resnet18", "paper", False),
    "resnet18_improved": ("resnet18", "improved", True),
    "custom_cnn": ("custom_cnn", "paper", False),
    "custom_cnn_improved": ("custom_cnn", "improved", False),
}


@pytest.fixture(scope="module")
def paper_rehearsal(tmp_path_factory):
    """The GPU batch run's own code paths on the CPU: `make report PROFILE=paper` with overrides
    (a few dozen images, 1 epoch, ragged batches, bf16 autocast forced on), ImageNet weights for
    ResNet-18 read from a stand-in file in a temporary torch hub cache."""
    import torch
    from torchvision.models import resnet18

    base = tmp_path_factory.mktemp("paper")
    data = make_synthetic_cifake(base / "synthetic", per_class=60, seed=2)
    hub = base / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(12345)  # not the seed any run initialises with
    standin = resnet18().state_dict()
    torch.save(standin, hub / "resnet18-f37072fd.pth")
    report_dir = base / "report"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(base / "torch"))  # the notebook kernels inherit it
        out = make_report(
            str(data),
            "paper",
            report_dir,
            pdf=find_chromium() is not None,
            log=lambda m: None,
            progress=False,
            overrides=REHEARSAL,
        )
    return {"dir": report_dir, "work": report_dir / "work", "out": out, "standin": standin}


def test_paper_rehearsal_trains_the_five_runs_at_224px(paper_rehearsal):
    import torch

    runs = paper_rehearsal["work"] / "runs"
    assert sorted(p.name for p in runs.iterdir()) == sorted(PAPER_RUNS)
    for name, (model, recipe, pretrained) in PAPER_RUNS.items():
        doc = json.loads((runs / name / "config.json").read_text())
        cfg = doc["config"]
        assert doc["input_size"] == 224 and doc["preprocessing"]["image_size"] == 224, name
        assert (cfg["model"], cfg["recipe"], cfg["pretrained"]) == (model, recipe, pretrained), name
        assert doc["amp"] == "torch.bfloat16" and cfg["epochs"] == 1 and cfg["batch_size"] == 12, name
        hist = pd.read_csv(runs / name / "history.csv")
        manifest = json.loads((runs / name / "splits.json").read_text())
        n_train = manifest["sizes"]["train"]["total"]
        assert n_train == 32 and n_train % cfg["batch_size"] != 0  # two full batches, then a ragged one
        assert list(hist["epoch"]) == [1] and np.isfinite(hist["train_loss"]).all()
    # the pretrained runs start from the stand-in weights (one epoch moves them little); the
    # from-scratch twin does not
    standin = paper_rehearsal["standin"]["layer3.0.conv1.weight"]
    for name, expect_close in (("resnet18", True), ("resnet18_improved", True), ("resnet18_scratch", False)):
        state = torch.load(runs / name / "best.pt", map_location="cpu", weights_only=True)["model"]
        gap = (state["layer3.0.conv1.weight"].float() - standin).abs().max().item()
        assert (gap < 0.02) == expect_close, (name, gap)


def test_paper_rehearsal_notebooks_05_to_07_use_every_run(paper_rehearsal):
    work = paper_rehearsal["work"]
    summary = StudySummary.load(work / "evaluation" / "summary.json")
    assert summary.profile == "paper" and summary.eval_limit_per_class == 8
    for model, pretrained in (("resnet18", True), ("custom_cnn", False)):
        scored = summary.models[model]
        assert scored.run.input_size == 224 and scored.run.pretrained is pretrained
        assert scored.scores.n == 16
        assert summary.recipes[model].improved.run.input_size == 224
        assert summary.recipes[model].improved.run.recipe == "improved"
    scratch = summary.scratch
    assert scratch.scratch.run.input_size == 224 and scratch.scratch.run.pretrained is False
    assert scratch.scratch.scores.n == 16 and scratch.mcnemar_vs_pretrained.n == 16
    rob = pd.read_csv(work / "evaluation" / "robustness.csv")
    names = {"ResNet-18", "Custom CNN", "ResNet-18 (improved recipe)", "Custom CNN (improved recipe)"}
    assert set(rob["model"]) == names and len(rob) == 4 * 11
    import nbformat

    nb = nbformat.read(paper_rehearsal["dir"] / "executed" / "06_explainability.ipynb", as_version=4)
    text = "".join(
        o.get("text", "") + "".join(str(v) for v in o.get("data", {}).values())
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "Grad-CAM" in text and "layer4" in text  # ResNet-18's 7x7 stage: 224px input


def test_paper_rehearsal_report_says_it_was_made_with_overrides(paper_rehearsal):
    index = (paper_rehearsal["dir"] / "index.html").read_text()
    assert "Made with overrides of the paper profile" in index and "LIMIT_PER_CLASS=16" in index
    timings = json.loads((paper_rehearsal["dir"] / "timings.json").read_text())
    assert timings["profile"] == "paper" and timings["overrides"] == REHEARSAL
    if paper_rehearsal["out"]["pdf"]:
        from pypdf import PdfReader

        first = PdfReader(str(paper_rehearsal["out"]["pdf"])).pages[0].extract_text()
        assert "Made with overrides" in first


def test_report_overrides_are_checked_before_any_notebook_runs(tmp_path, monkeypatch):
    from cifake_lib.report import check_overrides

    with pytest.raises(ReportError, match="not a report override"):
        check_overrides({"SEEDZ": 3})
    with pytest.raises(ReportError, match="EPOCHS='1' has type str"):
        check_overrides({"EPOCHS": "1"})
    with pytest.raises(ReportError, match="LIMIT_PER_CLASS=-1: must be at least 0"):
        check_overrides({"LIMIT_PER_CLASS": -1})
    with pytest.raises(ReportError, match="AMP='fp16': choose one of"):
        check_overrides({"AMP": "fp16"})
    with pytest.raises(ReportError, match="does not exist"):
        check_overrides({"WEIGHTS": str(tmp_path / "missing.pth")})
    # paths become absolute: the notebooks run in notebooks/, not where make was called
    (tmp_path / "w.pth").write_bytes(b"")
    (tmp_path / "extra").mkdir()
    monkeypatch.chdir(tmp_path)
    assert check_overrides({"WEIGHTS": "w.pth", "EXTRA_TEST_DATA": ["extra"]}) == {
        "WEIGHTS": str(tmp_path / "w.pth"),
        "EXTRA_TEST_DATA": [str(tmp_path / "extra")],
    }


def test_make_report_passes_every_override_on(tmp_path, capsys):
    args = ["PROFILE=paper", "LIMIT_PER_CLASS=16", "EPOCHS=1", "WEIGHTS=w.pth", "BATCH_SIZE=12", "AMP=bf16"]
    args += ["EVAL_LIMIT_PER_CLASS=8", "EXTRA_TEST_DATA=a,b"]
    proc = subprocess.run(
        ["make", "-n", "report", *args], cwd=NOTEBOOK_DIR.parent, capture_output=True, text=True, check=True
    )
    line = next(x for x in proc.stdout.splitlines() if "cifake_lib.report" in x)
    flags = ['--profile "paper"', '--limit-per-class "16"', '--epochs "1"', '--weights "w.pth"', '--batch-size "12"']
    flags += ['--amp "bf16"', '--eval-limit-per-class "8"', '--extra-test-data "a,b"']
    for flag in flags:
        assert flag in line, flag
    from cifake_lib.report import main

    # the command line turns them into the notebooks' parameters (a bad one stops before any notebook)
    (tmp_path / "index.html").write_text("an earlier report")
    assert main(["--profile", "paper", "--epochs", "0", "--out", str(tmp_path)]) == 1
    assert "EPOCHS=0: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "executed").exists()
    assert (tmp_path / "index.html").read_text() == "an earlier report"  # a typo removes nothing
