"""The report a reader gets from the executed notebooks: HTML pages and one PDF with a front.

The PDF reads front to back: two front pages that say what was found (title, what ran, an
abstract computed from the results, the headline table, the conclusion sentences and the key
figures), a table of contents with page numbers, one chapter per notebook on new pages, and an
appendix with the settings, layer and per-epoch tables and the full provenance. Notebook cells
tagged ``appendix`` move to the appendix; cells tagged ``key-figure`` also appear on the front.
Page numbers, a footer and (on synthetic data) the warning banner sit in the page margins, so
they never cover text. ``index.html`` shows the same front and links every chapter page.
"""

from __future__ import annotations

import copy
import datetime as _dt
import glob
import io
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write
from .study.results import StudySummary

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
SYNTHETIC_BANNER = "SYNTHETIC DEMO DATA - NOT CIFAKE. These results only show that the pipeline runs."
APPENDIX_TAG, KEY_FIGURE_TAG = "appendix", "key-figure"
APPENDIX_LABEL = "Appendix A"  # stands above the appendix; chapters carry "Chapter k of n"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PAPER = "Detecting AI-Generated Synthetic Images using Deep Learning"


class ReportError(RuntimeError):
    """The report could not be built; the message says where and why."""


@dataclass
class Chapter:
    """One executed notebook, split for the report."""

    name: str
    number: int
    total: int
    title: str
    body: str = ""  # the chapter's HTML (no code), without its appendix cells
    appendix: str = ""  # HTML of the outputs that go to the appendix, each with its caption
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, base64 PNG) for the front

    @property
    def label(self) -> str:
        """What stands above the chapter's first line, and what finds its page in the PDF."""
        return f"Chapter {self.number} of {self.total}"


# ----------------------------------------------------------------------------- notebooks -> HTML


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


def _export(nb) -> tuple[str, str]:
    """(head, inner body) of a notebook exported without code."""
    page, _ = _exporter().from_notebook_node(nb)
    page = _offline(page)
    return page.split("<body", 1)[0], re.search(r"<body[^>]*>(.*)</body>", page, re.S).group(1)


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


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def read_chapter(path: Path, number: int, total: int) -> tuple[str, Chapter]:
    """(HTML head, chapter) of an executed notebook: appendix cells split off, key figures taken."""
    import nbformat

    nb = for_reading(path)
    first = nb.cells[0].source.splitlines()[0] if nb.cells and nb.cells[0].cell_type == "markdown" else path.stem
    chapter = Chapter(path.stem, number, total, first.lstrip("# ").strip())
    appendix = copy.deepcopy(nb)
    appendix.cells = []
    for cell in nb.cells:
        if KEY_FIGURE_TAG in _tags(cell):
            png = next((out["data"]["image/png"] for out in cell.outputs if "image/png" in out.get("data", {})), None)
            if png:
                chapter.figures.append((cell.metadata.get("caption", chapter.title), png))
        if APPENDIX_TAG in _tags(cell):
            caption = cell.metadata.get("caption", "")
            appendix.cells += [nbformat.v4.new_markdown_cell(f"**{caption}**"), cell] if caption else [cell]
    nb.cells = [c for c in nb.cells if APPENDIX_TAG not in _tags(c)]
    head, chapter.body = _export(nb)
    if appendix.cells:
        chapter.appendix = _export(appendix)[1]
    return head, chapter


# ----------------------------------------------------------------------------- the front

HEADLINE_METRICS = ("accuracy", "precision", "recall", "f1", "auc")


def _templates():
    """The report's Jinja2 templates (cifake_lib/templates): HTML escaped, the CSS not."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("cifake_lib", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **values) -> str:
    return _templates().get_template(template).render(**values)


def what_ran(summary: StudySummary) -> list[str]:
    """One phrase per run: input size, pretrained or from scratch, training images, recipe."""
    from .study.compare import display_name

    runs = [(m, s.run) for m, s in summary.models.items()]
    runs += [(m, c.improved.run) for m, c in summary.recipes.items()]
    if summary.scratch is not None:  # 03's from-scratch twin of the pretrained ResNet-18
        runs.append(("resnet18", summary.scratch.scratch.run))
    out = []
    for model, run in runs:
        start = "ImageNet-pretrained" if run.pretrained and model != "custom_cnn" else "trained from scratch"
        images = f" on {run.train_images:,} training images" if run.train_images else ""
        recipe = f", {run.recipe} recipe ({run.epochs} epochs)" if run.recipe else ""
        out.append(f"{display_name(model)} at {run.input_size}x{run.input_size} px, {start}{images}{recipe}")
    return out


def abstract(meta: dict, summary: StudySummary | None) -> str:
    """One paragraph built from the measured numbers (no verdict on synthetic data)."""
    if summary is None:
        return "No evaluation summary was found: notebook 05 did not run, so there are no results to report."
    from .study.compare import display_name, paper_metrics

    synthetic = meta["data"]["synthetic"]
    where = "the demo's test split" if synthetic else (summary.test_source or "the test part")
    parts = []
    if synthetic:
        parts.append(
            "These pages come from SYNTHETIC demo data, not CIFAKE: they show that the pipeline runs and "
            "say nothing about how well the models detect AI-generated images."
        )
    else:
        parts.append(
            f"This study repeats the comparison in \u201c{PAPER}\u201d (ResNet-18 against a custom CNN) on "
            f"CIFAKE, under the {meta['profile']} profile."
        )
    ran = "; ".join(what_ran(summary))
    if ran:
        parts.append(f"What ran: {ran}.")
    scores = []
    for m, s in summary.models.items():
        lo, hi = s.scores.interval("accuracy")
        scores.append(
            f"{display_name(m)} reached accuracy {s.scores.accuracy:.2%} (95% CI {lo:.2%} to {hi:.2%}) "
            f"and AUC {s.scores.auc:.4f}"
        )
    parts.append(f"On {summary.n:,} test images ({where}), " + "; ".join(scores) + ".")
    for m, c in summary.recipes.items():
        r, d = c.improved.scores, c.difference_vs_paper.accuracy
        lo, hi = r.interval("accuracy")
        parts.append(
            f"With the improved recipe, {display_name(m)} reached {r.accuracy:.2%} (95% CI {lo:.2%} to {hi:.2%}), "
            f"{d.difference * 100:+.2f} percentage points against its paper-recipe run on the same images."
        )
    if summary.mcnemar is not None and not synthetic:
        parts.append(
            f"On the images where the two disagree, McNemar's exact test gives p = {summary.mcnemar.p_value:.3g}."
        )
    if not synthetic:
        reported = [f"{display_name(m)} {paper['accuracy']:.2%}" for m in summary.models if (paper := paper_metrics(m))]
        if reported:
            parts.append(
                "The paper reports accuracy " + " and ".join(reported) + " on its own 10,000-image evaluation "
                "set (4,957 FAKE, 5,043 REAL): compare rates, not counts."
            )
    return " ".join(parts)


@dataclass(frozen=True)
class HeadlineCell:
    value: object  # a number, or text such as "not reported"
    ci: tuple | None = None


@dataclass(frozen=True)
class HeadlineRow:
    name: str
    cells: list
    images: int
    kind: str = ""  # the row's CSS class: paper, recipe, baseline, extra
    bold: bool = False
    suffix: str = ""


def _score_cells(scores, only=HEADLINE_METRICS) -> list[HeadlineCell]:
    return [
        HeadlineCell(scores.value(c), scores.interval(c)) if c in only else HeadlineCell("-") for c in HEADLINE_METRICS
    ]


def headline_rows(summary: StudySummary, synthetic: bool) -> list[HeadlineRow]:
    """Both networks with 95% intervals and, on CIFAKE, the paper's rates beside them; then the
    improved recipe, the simple baselines and every extra data set."""
    from .study.compare import PAPER_N, display_name, paper_metrics

    rows = []
    for model, s in summary.models.items():
        rows.append(HeadlineRow(display_name(model), _score_cells(s.scores), s.scores.n, bold=True, suffix=" (ours)"))
        paper = None if synthetic else paper_metrics(model)
        if paper:
            cells = [HeadlineCell(paper[c] if c != "auc" else "not reported") for c in HEADLINE_METRICS]
            rows.append(HeadlineRow(f"{display_name(model)} (paper)", cells, PAPER_N, kind="paper"))
    for model, c in summary.recipes.items():
        s = c.improved.scores
        rows.append(HeadlineRow(display_name(model), _score_cells(s), s.n, "recipe", True, ", improved recipe (ours)"))
    for name, b in summary.baselines.items():
        cells = _score_cells(b.scores, ("accuracy", "auc"))
        rows.append(HeadlineRow(f"baseline: {name}", cells, b.scores.n, "baseline"))
    for e in summary.extra:
        where = e.source.split("/")[-1] + (" (small)" if e.small else "")
        for model, s in e.scores.items():
            rows.append(HeadlineRow(f"{display_name(model)} on {where}", _score_cells(s), s.n, "extra"))
    return rows


def overrides_text(overrides: dict | None) -> str:
    """``NAME=value, ...`` for the overrides of a profile ("" for none)."""
    return ", ".join(f"{k}={v!r}" for k, v in (overrides or {}).items())


def overrides_note(meta: dict) -> str:
    """The front page's statement that the profile's settings were overridden ("" when not)."""
    values = overrides_text(meta.get("overrides"))
    if not values:
        return ""
    return (
        f"Made with overrides of the {meta['profile']} profile ({values}): these runs are not the profile's "
        "full settings, so their numbers rehearse the pipeline rather than measure it."
    )


def front_values(meta: dict, summary: StudySummary | None, figures: list[tuple[str, str]]) -> dict:
    """What front.html.j2 shows, computed from the run's facts and the typed summary."""
    synthetic = meta["data"]["synthetic"]
    line = " · ".join(
        (
            f"profile {meta['profile']}",
            meta["date"] + " UTC",
            f"git commit {meta['git_commit'][:12]}",
            f"data fingerprint {meta['data']['fingerprint'][:12]}",
        )
    )
    headline = None
    if summary is not None:
        headline = {"columns": HEADLINE_METRICS, "rows": headline_rows(summary, synthetic)}
    return {
        "line": line,
        "overrides": overrides_note(meta),
        "abstract": abstract(meta, summary),
        "synthetic": synthetic,
        "headline": headline,
        "figures": figures,
        "conclusion": [*summary.conclusion, *summary.notes] if summary is not None else [],
    }


def front_html(meta: dict, summary: StudySummary | None, figures: list[tuple[str, str]]) -> str:
    return render("front.html.j2", **front_values(meta, summary, figures))


def toc_html(chapters: list[Chapter], pages: dict[str, int] | None) -> str:
    return render("toc.html.j2", chapters=chapters, pages=pages or {}, appendix_label=APPENDIX_LABEL)


def provenance_rows(meta: dict) -> list[tuple[str, str]]:
    rows = [
        ("date (UTC)", meta["date"]),
        ("profile", meta["profile"]),
        ("overrides of the profile", overrides_text(meta.get("overrides")) or "none"),
        ("data", meta["data"]["source"]),
        ("data fingerprint", meta["data"]["fingerprint"][:16]),
        ("synthetic data", "YES - not CIFAKE" if meta["data"]["synthetic"] else "no (CIFAKE layout)"),
        ("test part", meta.get("test_source") or "unknown"),
        ("training device(s)", ", ".join(meta["devices"]) or "unknown"),
        ("git commit", meta["git_commit"]),
    ]
    return rows + [(k, str(v)) for k, v in meta["versions"].items()]


def appendix_html(chapters: list[Chapter], meta: dict) -> str:
    return render(
        "appendix.html.j2", chapters=chapters, provenance=provenance_rows(meta), appendix_label=APPENDIX_LABEL
    )


def study_name(meta: dict) -> str:
    data = "synthetic demo data" if meta["data"]["synthetic"] else meta["data"]["source"].split("/")[-1]
    overridden = " (with overrides)" if meta.get("overrides") else ""
    return f"{meta['profile']} profile{overridden} on {data}"


# ----------------------------------------------------------------------------- pages and the PDF


def page_html(head: str, body: str, meta: dict, for_print: bool) -> str:
    """One HTML page: nbconvert's head (its notebook styles) with our title and styles, the
    synthetic-data banner on synthetic data, then ``body``."""
    head = re.sub(r"<title>.*?</title>", "", head, flags=re.S).split("</head>", 1)[0]
    synthetic = meta["data"]["synthetic"]
    return render(
        "page.html.j2",
        head=head,
        title=f"cifake: {study_name(meta)}",
        body=body,
        synthetic=synthetic,
        banner=SYNTHETIC_BANNER,
        for_print=for_print,
        footer=f"cifake · {study_name(meta)}",
    )


def combined_body(meta: dict, summary: StudySummary | None, chapters: list[Chapter], pages: dict | None) -> str:
    figures = [f for c in chapters for f in c.figures]
    return render(
        "report.html.j2",
        **front_values(meta, summary, figures),
        chapters=chapters,
        pages=pages or {},
        appendix_label=APPENDIX_LABEL,
        provenance=provenance_rows(meta),
    )


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


def print_pdf(html_file: Path, pdf: Path, chromium: str | None = None, timeout: int = 300) -> Path:
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


def _quiet_pypdf() -> None:
    # Chromium's PDFs make pypdf log harmless notes (e.g. on the trailer size) while reading
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def chapter_pages(pdf: Path, labels: list[str]) -> dict[str, int]:
    """{label: 1-based page} of the first page that starts with each chapter label."""
    from pypdf import PdfReader

    _quiet_pypdf()
    found = {}
    for i, page in enumerate(PdfReader(pdf).pages, start=1):
        text = " ".join((page.extract_text() or "").split()).lower()
        for label in labels:
            if label not in found and re.search(rf"\b{re.escape(label.lower())}\b", text):
                found[label] = i
    return found


def finish_pdf(pdf: Path, meta: dict, chapters: list[Chapter], pages: dict[str, int]) -> None:
    """Metadata (title, author, subject, creation date) and an outline of the chapters."""
    from pypdf import PdfReader, PdfWriter

    _quiet_pypdf()
    writer = PdfWriter(clone_from=PdfReader(pdf))
    now = _dt.datetime.now(_dt.UTC).strftime("D:%Y%m%d%H%M%SZ")
    writer.add_metadata(
        {
            "/Title": f"cifake: {study_name(meta)}",
            "/Author": "cifake",
            "/Subject": "Telling real photographs from AI-generated images on CIFAKE: ResNet-18 vs a custom CNN",
            "/Keywords": "CIFAKE, AI-generated image detection, ResNet-18, CNN, reproduction",
            "/CreationDate": now,
            "/ModDate": now,
        }
    )
    writer.add_outline_item(title="Front: abstract, headline results, key figures", page_number=0)
    for c in chapters:
        if c.label in pages:
            writer.add_outline_item(title=c.title, page_number=pages[c.label] - 1)
    if APPENDIX_LABEL in pages:
        writer.add_outline_item(
            title="Appendix: settings, layers, per-epoch tables", page_number=pages[APPENDIX_LABEL] - 1
        )
    buf = io.BytesIO()
    writer.write(buf)
    atomic_write(pdf, buf.getvalue())


def build_pdf(report_dir: Path, head: str, meta: dict, summary, chapters: list[Chapter], log=print) -> Path:
    """Print twice: the first pass tells on which page each chapter starts, the second prints
    those numbers in the table of contents (which stays one page, so they do not move)."""
    combined = report_dir / "html" / "_combined_for_pdf.html"
    pdf = report_dir / "cifake_report.pdf"
    labels = [c.label for c in chapters] + [APPENDIX_LABEL]
    pages = None
    for _ in range(2):
        combined.write_text(page_html(head, combined_body(meta, summary, chapters, pages), meta, for_print=True))
        print_pdf(combined, pdf)
        found = chapter_pages(pdf, labels)
        if pages == found:
            break
        pages = found
    finish_pdf(pdf, meta, chapters, pages or {})
    log(f"wrote {pdf}")
    return pdf


def build_exports(
    report_dir: Path, executed: list[Path], meta: dict, summary: StudySummary | None, pdf: bool = True, log=print
) -> dict:
    """html/<chapter>.html, html/appendix.html, index.html and (when pdf) cifake_report.pdf."""
    html_dir = report_dir / "html"
    html_dir.mkdir(parents=True, exist_ok=True)
    head, chapters = "<html><head></head>", []
    for i, path in enumerate(executed, start=1):
        head, chapter = read_chapter(path, i, len(executed))
        chapters.append(chapter)
    pages = []
    for c in chapters:
        dst = html_dir / f"{c.name}.html"
        dst.write_text(page_html(head, render("chapter.html.j2", chapter=c), meta, for_print=False))
        pages.append(dst)
    (html_dir / "appendix.html").write_text(page_html(head, appendix_html(chapters, meta), meta, for_print=False))
    figures = [f for c in chapters for f in c.figures]
    index = render("index.html.j2", **front_values(meta, summary, figures), chapters=chapters, pdf=pdf)
    (report_dir / "index.html").write_text(page_html(head, index, meta, for_print=False))
    out = {"index": report_dir / "index.html", "html": pages, "pdf": None}
    if pdf:
        out["pdf"] = build_pdf(report_dir, head, meta, summary, chapters, log=log)
    return out
