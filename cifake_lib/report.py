"""`make report`: execute the numbered notebooks with papermill, export HTML and one PDF.

Steps: resolve the data (DATA, $CIFAKE_DATA, data/, else a synthetic demo set), remove every
output of an earlier report, execute notebooks 01-07 in order into ``report/executed/`` (a
failing notebook stops the run, naming the notebook and cell), export each to HTML without code,
build ``report/index.html`` and print one ``report/cifake_report.pdf`` with a headless Chromium.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import paths

NOTEBOOK_DIR = paths.REPO_ROOT / "notebooks"
NOTEBOOKS = (
    "01_data_exploration",
    "02_preprocessing",
    "03_train_resnet18",
    "04_train_custom_cnn",
    "05_comparative_evaluation",
    "06_explainability",
    "07_robustness",
)
TITLES = {
    "01_data_exploration": "1. Data exploration",
    "02_preprocessing": "2. Preprocessing and splits",
    "03_train_resnet18": "3. Fine-tuning ResNet-18",
    "04_train_custom_cnn": "4. Training the custom CNN",
    "05_comparative_evaluation": "5. Comparative evaluation",
    "06_explainability": "6. Explainability (Grad-CAM)",
    "07_robustness": "7. Robustness to image processing",
}
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-pdf-header-footer",
)
OUTPUTS = ("index.html", "cifake_report.pdf", "FAILED.txt", "timings.json")
SYNTHETIC_BANNER = "SYNTHETIC DEMO DATA - NOT CIFAKE. These results only show that the pipeline runs."


class ReportError(RuntimeError):
    """The report could not be built; the message says where and why."""


# ----------------------------------------------------------------------------- execution


def clear_outputs(report_dir: Path) -> None:
    """Remove what an earlier report left, so a failed run never looks complete."""
    for name in OUTPUTS:
        (report_dir / name).unlink(missing_ok=True)
    for sub in ("executed", "html"):
        shutil.rmtree(report_dir / sub, ignore_errors=True)


def run_notebooks(
    params: dict,
    executed_dir: Path,
    notebooks=NOTEBOOKS,
    notebook_dir: Path = NOTEBOOK_DIR,
    log=print,
    progress: bool = True,
) -> dict[str, float]:
    """Execute notebooks in order with papermill; returns {notebook: wall seconds}.

    Only the parameters a notebook declares are injected. Raises ReportError naming the
    notebook and cell of the first failure.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    executed_dir.mkdir(parents=True, exist_ok=True)
    timings = {}
    for name in notebooks:
        src = notebook_dir / f"{name}.ipynb"
        if not src.exists():
            raise ReportError(f"notebook {src} not found")
        declared = pm.inspect_notebook(str(src))
        inject = {k: v for k, v in params.items() if k in declared}
        dst = executed_dir / f"{name}.ipynb"
        log(f"running {name} ({', '.join(f'{k}={v!r}' for k, v in inject.items())})")
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(src),
                str(dst),
                parameters=inject,
                kernel_name="python3",
                cwd=str(notebook_dir),
                progress_bar=progress,
                log_output=False,
            )
        except PapermillExecutionError as exc:
            raise ReportError(
                f"notebook {name} failed at cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
                f"the partial notebook is {dst}"
            ) from None
        timings[name] = time.perf_counter() - t0
        log(f"  done in {timings[name]:.1f} s")
    return timings


# ----------------------------------------------------------------------------- export


def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    return exporter


_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.I)
_EXTERNAL_LINK = re.compile(r"<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*>", re.I)


def _offline(page: str) -> str:
    """Drop CDN scripts and styles (MathJax, require.js): the report must read well offline."""
    return _EXTERNAL_LINK.sub("", _EXTERNAL_SCRIPT.sub("", page))


def _inject(page: str, head: str = "", body_top: str = "") -> str:
    page = page.replace("</head>", head + "\n</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + body_top, page, count=1)


REPORT_CSS = """
<style>
  body { font-family: "DejaVu Sans", Arial, sans-serif; }
  .cifake-banner { position: fixed; top: 0; left: 0; right: 0; z-index: 1000; background: #b00020;
                   color: #fff; font-weight: bold; text-align: center; padding: 4px; font-size: 12px; }
  .cifake-title { page-break-after: always; break-after: page; padding: 60px 40px; }
  .cifake-title h1 { font-size: 30px; margin-bottom: 6px; }
  .cifake-title table { border-collapse: collapse; margin-top: 24px; font-size: 13px; }
  .cifake-title td { padding: 4px 10px; border-bottom: 1px solid #ddd; vertical-align: top; }
  .cifake-nb { break-before: page; page-break-before: always; }
  .jp-Notebook { padding: 0 !important; }
  @media print { .jp-OutputArea-output img { max-width: 100% !important; } }
</style>
"""


def _css(synthetic: bool) -> str:
    return REPORT_CSS + ("<style>body { padding-top: 30px !important; }</style>" if synthetic else "")


def _banner(synthetic: bool) -> str:
    return f'<div class="cifake-banner">{SYNTHETIC_BANNER}</div>' if synthetic else ""


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def for_reading(path: Path):
    """An executed notebook without what only matters live: progress bars (stderr streams and
    widget views) are dropped; results, tables, figures and printed text stay."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [
            o
            for o in cell.outputs
            if not (o.output_type == "stream" and o.name == "stderr")
            and not (o.output_type in ("display_data", "execute_result") and WIDGET_MIME in o.get("data", {}))
        ]
    return nb


def export_html(executed: Path, dst: Path, synthetic: bool) -> Path:
    """One executed notebook as a standalone HTML page without code."""
    body, _ = _exporter().from_notebook_node(for_reading(executed))
    page = _inject(_offline(body), _css(synthetic), _banner(synthetic))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(page)
    return dst


def title_rows(meta: dict) -> list[tuple[str, str]]:
    rows = [
        ("date (UTC)", meta["date"]),
        ("profile", meta["profile"]),
        ("data", meta["data"]["source"]),
        ("data fingerprint", meta["data"]["fingerprint"][:16]),
        ("synthetic data", "YES - not CIFAKE" if meta["data"]["synthetic"] else "no (CIFAKE layout)"),
        ("test part", meta.get("test_source") or "unknown"),
        ("training device(s)", ", ".join(meta["devices"]) or "unknown"),
        ("git commit", meta["git_commit"]),
    ]
    rows += [(k, str(v)) for k, v in meta["versions"].items()]
    return rows


def headline_html(summary: dict | None) -> str:
    if not summary:
        return "<p>No evaluation summary was found.</p>"
    from .study.compare import display_name, paper_metrics

    head = (
        "<tr><th>model</th><th>accuracy [95% CI]</th><th>precision</th><th>recall</th><th>F1</th><th>AUC</th>"
        "<th>paper accuracy</th></tr>"
    )
    rows = []
    for model, m in summary["metrics"].items():
        lo, hi = m["ci95"]["accuracy"]
        paper = paper_metrics(model)
        paper_acc = f"{paper['accuracy']:.4f}" if paper else "-"
        rows.append(
            f"<tr><td>{display_name(model)}</td><td>{m['accuracy']:.4f} [{lo:.4f}, {hi:.4f}]</td>"
            f"<td>{m['precision']:.4f}</td><td>{m['recall']:.4f}</td><td>{m['f1']:.4f}</td><td>{m['auc']:.4f}</td>"
            f"<td>{paper_acc}</td></tr>"
        )
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in summary.get("conclusion", []) + summary.get("notes", []))
    return f"<table>{head}{''.join(rows)}</table><ul>{sentences}</ul>"


def title_page(meta: dict, summary: dict | None) -> str:
    rows = "".join(
        f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>" for k, v in title_rows(meta)
    )
    return (
        '<div class="cifake-title"><h1>cifake: detecting AI-generated images on CIFAKE</h1>'
        "<p>Reproduction of <i>Detecting AI-Generated Synthetic Images using Deep Learning</i> "
        "(ResNet-18 fine-tuned at 224x224 vs a custom CNN). FAKE (AI-generated) is the positive class.</p>"
        f"<table>{rows}</table><h2>Headline results (test part)</h2>{headline_html(summary)}</div>"
    )


def build_combined_html(executed: list[Path], meta: dict, summary: dict | None, synthetic: bool) -> str:
    """Title page plus every executed notebook (without code) in one printable page."""
    exporter = _exporter()
    parts = []
    head = None
    for path in executed:
        body, _ = exporter.from_notebook_node(for_reading(path))
        body = _offline(body)
        if head is None:
            head = body.split("<body", 1)[0]
        inner = re.search(r"<body[^>]*>(.*)</body>", body, re.S).group(1)
        parts.append(f'<div class="cifake-nb">{inner}</div>')
    return (head or "<html><head>").replace(
        "</head>", _css(synthetic) + "</head>"
    ) + f"<body>{_banner(synthetic)}{title_page(meta, summary)}{''.join(parts)}</body></html>"


def find_chromium() -> str | None:
    """A headless-capable Chromium: $CHROMIUM, the usual names on PATH, or a Playwright-managed one."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    managed = sorted(glob.glob(str(Path.home() / ".cache/ms-playwright/chromium*/chrome-linux*/chrome")))
    return managed[-1] if managed else None


def print_pdf(html_file: Path, pdf: Path, chromium: str | None = None, timeout: int = 180) -> Path:
    chromium = chromium or find_chromium()
    if chromium is None:
        raise ReportError(
            "PDF export needs a headless Chromium and none was found: install Debian's `chromium` "
            "(apt-get install chromium), Google Chrome, or a Playwright-managed Chromium, or point "
            "$CHROMIUM at one. The HTML report was written anyway."
        )
    tmp_pdf = pdf.with_name(pdf.name + ".part")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--print-to-pdf={tmp_pdf}",
            html_file.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not tmp_pdf.exists() or tmp_pdf.stat().st_size == 0:
        tmp_pdf.unlink(missing_ok=True)
        raise ReportError(f"{chromium} could not print the PDF (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    os.replace(tmp_pdf, pdf)
    return pdf


def collect_meta(layout, profile: str, data) -> dict:
    """What the title page states: when, which profile and data, which devices and code."""
    from .provenance import git_commit, versions

    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "profile": profile,
        "data": data.provenance(),
        "test_source": layout.test_source(),
        "devices": sorted({run["provenance"]["device"] for run in layout.run_configs()}),
        "git_commit": git_commit(),
        "versions": versions(),
    }


def build_exports(
    report_dir: Path,
    executed: list[Path],
    meta: dict,
    summary: dict | None,
    synthetic: bool,
    pdf: bool = True,
    log=print,
) -> dict:
    """HTML per notebook, index.html and (when pdf) cifake_report.pdf."""
    html_dir = report_dir / "html"
    pages = [export_html(p, html_dir / f"{p.stem}.html", synthetic) for p in executed]
    links = "".join(f'<li><a href="html/{p.name}">{html.escape(TITLES.get(p.stem, p.stem))}</a></li>' for p in pages)
    pdf_link = '<p><a href="cifake_report.pdf">The whole report as one PDF</a></p>' if pdf else ""
    index = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cifake report</title>{_css(synthetic)}"
        "<style>table{border-collapse:collapse} th,td{padding:4px 8px;border-bottom:1px solid #ddd}</style></head>"
        f"<body>{_banner(synthetic)}{title_page(meta, summary).replace('cifake-title', 'cifake-index')}"
        f"<h2>Notebooks</h2><ol>{links}</ol>{pdf_link}</body></html>"
    )
    (report_dir / "index.html").write_text(index)
    out = {"index": report_dir / "index.html", "html": pages, "pdf": None}
    if pdf:
        combined = report_dir / "html" / "_combined_for_pdf.html"
        combined.write_text(build_combined_html(executed, meta, summary, synthetic))
        out["pdf"] = print_pdf(combined, report_dir / "cifake_report.pdf")
        log(f"wrote {out['pdf']}")
    return out


# ----------------------------------------------------------------------------- main


def resolve_data(data: str | None, synth_dir: Path) -> tuple[Path, bool]:
    """DATA if given, else $CIFAKE_DATA, else data/ in the repo; else a synthetic demo set."""
    from .study.notebook import default_study_data

    if data:
        p = Path(data).expanduser().resolve()
        if not p.exists():
            raise ReportError(f"DATA={data} does not exist")
        return p, False
    return default_study_data(synth_dir.parent)


def make_report(
    data: str | None,
    profile: str = "auto",
    report_dir: Path | None = None,
    notebooks=NOTEBOOKS,
    pdf: bool = True,
    log=print,
    progress: bool = True,
) -> dict:
    """The whole `make report`; returns what was written. Raises ReportError on failure."""
    from .data.dataset import load_cifake
    from .study.layout import StudyLayout
    from .study.profiles import resolve_profile

    report_dir = Path(report_dir or paths.REPO_ROOT / "report").resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(report_dir)
    try:
        profile = resolve_profile(profile)
        work = report_dir / "work"
        data_path, synthetic = resolve_data(data, work / "synthetic-demo-data")
        loaded = load_cifake(data_path)
        synthetic = synthetic or loaded.synthetic
        if synthetic:
            log(f"NOTE: {SYNTHETIC_BANNER}")
        log(f"data: {data_path} ({len(loaded):,} images); profile: {profile}; study folder: {work}")
        params = {"DATA": str(data_path), "PROFILE": profile, "OUT": str(work)}
        timings = run_notebooks(params, report_dir / "executed", notebooks, log=log, progress=progress)
        (report_dir / "timings.json").write_text(json.dumps({"profile": profile, "seconds": timings}, indent=2))
        layout = StudyLayout(work)
        meta = collect_meta(layout, profile, loaded)
        executed = [report_dir / "executed" / f"{n}.ipynb" for n in notebooks]
        out = build_exports(report_dir, executed, meta, layout.summary(), synthetic, pdf=pdf, log=log)
        out["timings"] = timings
        return out
    except Exception as exc:
        (report_dir / "FAILED.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cifake_lib.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default="", help="CIFAKE folder or zip (default: $CIFAKE_DATA, data/, synthetic demo)"
    )
    parser.add_argument("--profile", default="auto", help="auto (paper with CUDA, else cpu), smoke, cpu or paper")
    parser.add_argument("--out", default=str(paths.REPO_ROOT / "report"), help="report folder (default report/)")
    parser.add_argument("--no-pdf", action="store_true", help="HTML only")
    args = parser.parse_args(argv)
    from .data.sources import DataError
    from .engine.config import ConfigError

    try:
        out = make_report(args.data or None, args.profile, Path(args.out), pdf=not args.no_pdf)
    except (ReportError, ConfigError, DataError) as exc:
        print(f"make report: FAILED: {exc}", file=sys.stderr)
        print(f"(no report was produced; see {Path(args.out) / 'FAILED.txt'})", file=sys.stderr)
        return 1
    print(f"report: {out['index']}" + (f" and {out['pdf']}" if out["pdf"] else ""))
    for name, s in out["timings"].items():
        print(f"  {name:<28} {s:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
