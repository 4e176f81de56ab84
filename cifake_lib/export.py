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
import html
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
            png = next((o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})), None)
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


def _fmt_ci(m: dict, key: str) -> str:
    lo, hi = m["ci95"][key]
    return f'{m[key]:.4f}<br><span class="ci">[{lo:.4f}, {hi:.4f}]</span>'


def what_ran(summary: dict) -> list[str]:
    """One phrase per model: input size, pretrained or from scratch, training images."""
    from .study.compare import display_name

    out = []
    runs = [(m, r) for m, r in summary.get("runs", {}).items()]
    runs += [(m, c["run"]) for m, c in (summary.get("recipes") or {}).items()]
    if (summary.get("scratch") or {}).get("run"):  # 03's from-scratch twin of the pretrained ResNet-18
        runs.append(("resnet18", summary["scratch"]["run"]))
    for model, run in runs:
        start = "ImageNet-pretrained" if run.get("pretrained") else "trained from scratch"
        if model == "custom_cnn":
            start = "trained from scratch"
        images = f" on {run['train_images']:,} training images" if run.get("train_images") else ""
        recipe = f", {run['recipe']} recipe ({run['epochs']} epochs)" if run.get("recipe") else ""
        out.append(f"{display_name(model)} at {run['input_size']}x{run['input_size']} px, {start}{images}{recipe}")
    return out


def abstract(meta: dict, summary: dict | None) -> str:
    """One paragraph built from the measured numbers (no verdict on synthetic data)."""
    if not summary:
        return "No evaluation summary was found: notebook 05 did not run, so there are no results to report."
    from .study.compare import display_name, paper_metrics

    synthetic = meta["data"]["synthetic"]
    metrics = summary["metrics"]
    n = next(iter(metrics.values()))["n"]
    where = "the demo's test split" if synthetic else (summary.get("test_source") or "the test part")
    parts = []
    if synthetic:
        parts.append(
            "These pages come from SYNTHETIC demo data, not CIFAKE: they show that the pipeline runs and "
            "say nothing about how well the models detect AI-generated images."
        )
    else:
        parts.append(
            f"This study repeats the comparison in <i>{PAPER}</i> (ResNet-18 against a custom CNN) on "
            f"CIFAKE, under the <b>{meta['profile']}</b> profile."
        )
    ran = "; ".join(what_ran(summary))
    if ran:
        parts.append(f"What ran: {ran}.")
    scores = [
        f"{display_name(m)} reached accuracy {r['accuracy']:.2%} (95% CI {r['ci95']['accuracy'][0]:.2%} to "
        f"{r['ci95']['accuracy'][1]:.2%}) and AUC {r['auc']:.4f}"
        for m, r in metrics.items()
    ]
    parts.append(f"On {n:,} test images ({where}), " + "; ".join(scores) + ".")
    for m, c in (summary.get("recipes") or {}).items():
        r, d = c["metrics"], c["difference_vs_paper"]["accuracy"]
        parts.append(
            f"With the improved recipe, {display_name(m)} reached {r['accuracy']:.2%} (95% CI "
            f"{r['ci95']['accuracy'][0]:.2%} to {r['ci95']['accuracy'][1]:.2%}), {d['difference'] * 100:+.2f} "
            "percentage points against its paper-recipe run on the same images."
        )
    mc = summary.get("mcnemar")
    if mc and not synthetic:
        parts.append(f"On the images where the two disagree, McNemar's exact test gives p = {mc['p_value']:.3g}.")
    if not synthetic:
        paper = [f"{display_name(m)} {p['accuracy']:.2%}" for m in metrics if (p := paper_metrics(m))]
        if paper:
            parts.append(
                "The paper reports accuracy " + " and ".join(paper) + " on its own 10,000-image evaluation "
                "set (4,957 FAKE, 5,043 REAL): compare rates, not counts."
            )
    return " ".join(parts)


def headline_table(summary: dict | None, synthetic: bool) -> str:
    """Both networks with 95% intervals and, on CIFAKE, the paper's rates beside them."""
    if not summary:
        return "<p>No evaluation summary was found.</p>"
    from .study.compare import display_name, paper_metrics

    cols = ("accuracy", "precision", "recall", "f1", "auc")
    head = "<tr><th>model</th>" + "".join(f"<th>{c} [95% CI]</th>" for c in cols) + "<th>images</th></tr>"
    rows = []
    for model, m in summary["metrics"].items():
        cells = "".join(f"<td>{_fmt_ci(m, c)}</td>" for c in cols)
        rows.append(f"<tr><td><b>{display_name(model)}</b> (ours)</td>{cells}<td>{m['n']:,}</td></tr>")
        paper = None if synthetic else paper_metrics(model)
        if paper:
            cells = "".join(f"<td>{paper[c]:.4f}</td>" if c != "auc" else "<td>not reported</td>" for c in cols)
            rows.append(f'<tr class="paper"><td>{display_name(model)} (paper)</td>{cells}<td>10,000</td></tr>')
    for model, rec in (summary.get("recipes") or {}).items():
        m = rec["metrics"]
        cells = "".join(f"<td>{_fmt_ci(m, c)}</td>" for c in cols)
        name = f"<b>{display_name(model)}</b>, improved recipe (ours)"
        rows.append(f'<tr class="recipe"><td>{name}</td>{cells}<td>{m["n"]:,}</td></tr>')
    for name, b in (summary.get("baselines") or {}).items():
        cells = "".join(f"<td>{_fmt_ci(b, c)}</td>" if c in ("accuracy", "auc") else "<td>-</td>" for c in cols)
        rows.append(f'<tr class="baseline"><td>baseline: {html.escape(name)}</td>{cells}<td>{b["n"]:,}</td></tr>')
    for e in summary.get("extra") or []:
        for model, m in e["metrics"].items():
            cells = "".join(f"<td>{_fmt_ci(m, c)}</td>" for c in cols)
            where = html.escape(e["source"].split("/")[-1]) + (" (small)" if e["small"] else "")
            rows.append(f'<tr class="extra"><td>{display_name(model)} on {where}</td>{cells}<td>{m["n"]:,}</td></tr>')
    return f'<table class="cifake-headline">{head}{"".join(rows)}</table>'


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


def front_html(meta: dict, summary: dict | None, figures: list[tuple[str, str]]) -> str:
    synthetic = meta["data"]["synthetic"]
    note = overrides_note(meta)
    line = " · ".join(
        (
            f"profile {meta['profile']}",
            meta["date"] + " UTC",
            f"git commit {meta['git_commit'][:12]}",
            f"data fingerprint {meta['data']['fingerprint'][:12]}",
        )
    )
    conclusion = (summary or {}).get("conclusion", []) + (summary or {}).get("notes", [])
    figs = "".join(
        f'<figure><img src="data:image/png;base64,{png}"/><figcaption>{html.escape(cap)}</figcaption></figure>'
        for cap, png in figures
    )
    return (
        '<section class="cifake-front">'
        "<h1>cifake: telling real photographs from AI-generated images</h1>"
        f'<p class="cifake-line">{html.escape(line)}</p>'
        + (f'<p class="cifake-overrides"><b>Overrides.</b> {html.escape(note)}</p>' if note else "")
        + f'<p class="cifake-abstract"><b>Abstract.</b> {abstract(meta, summary)}</p>'
        f"<h2>Headline results{' (synthetic demo data)' if synthetic else ''}</h2>"
        f"{headline_table(summary, synthetic)}"
        f'<h2>Key figures</h2><div class="cifake-figures">{figs}</div>'
        '<h2>What the numbers say</h2><ul class="cifake-conclusion">'
        + "".join(f"<li>{html.escape(s)}</li>" for s in conclusion)
        + "</ul></section>"
    )


def toc_html(chapters: list[Chapter], pages: dict[str, int] | None) -> str:
    def page(key):
        return str(pages[key]) if pages and key in pages else "…"

    rows = "".join(
        f'<tr><td>{c.number}</td><td><a href="#{c.name}">{html.escape(c.title)}</a></td><td>{page(c.label)}</td></tr>'
        for c in chapters
    )
    rows += (
        f'<tr><td>A</td><td><a href="#appendix">Settings, layers, per-epoch tables, provenance</a>'
        f"</td><td>{page(APPENDIX_LABEL)}</td></tr>"
    )
    return f'<section class="cifake-toc"><h1>Contents</h1><table>{rows}</table></section>'


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
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in provenance_rows(meta))
    parts = [
        f'<div class="cifake-appendix-part"><h2>{html.escape(c.title)}</h2>{c.appendix}</div>'
        for c in chapters
        if c.appendix
    ]
    return (
        f'<section class="cifake-chapter" id="appendix"><div class="cifake-label">{APPENDIX_LABEL}</div>'
        "<h1>Settings, layers and per-epoch tables</h1>"
        f'<div class="cifake-appendix-body">{"".join(parts)}</div>'
        f'<h2>Provenance</h2><table class="cifake-prov">{rows}</table></section>'
    )


# ----------------------------------------------------------------------------- styles

BASE_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; }
.cifake-banner { position: sticky; top: 0; z-index: 1000; background: #b00020; color: #fff; font-weight: bold;
                 text-align: center; padding: 4px; font-size: 12px; }
.cifake-front h1 { font-size: 24px; margin: 0 0 4px 0; }
.cifake-line { color: #555; font-size: 11px; margin: 0 0 10px 0; }
.cifake-overrides { background: #fff4ce; border-left: 4px solid #b58900; padding: 4px 8px; font-size: 12px; }
.cifake-abstract { font-size: 12.5px; line-height: 1.45; text-align: justify; }
.cifake-front h2 { font-size: 15px; margin: 12px 0 4px 0; }
.cifake-headline, .cifake-toc table, .cifake-prov { border-collapse: collapse; font-size: 11px; }
.cifake-headline th, .cifake-headline td, .cifake-toc td, .cifake-prov td { padding: 3px 6px;
    border-bottom: 1px solid #ddd; text-align: right; }
.cifake-headline td:first-child, .cifake-headline th:first-child, .cifake-toc td, .cifake-prov td
    { text-align: left; }
.cifake-headline tr.paper td { color: #555; font-style: italic; }
.cifake-headline tr.baseline td, .cifake-headline tr.extra td { color: #333; font-size: 10px; }
.cifake-headline .ci { color: #666; font-size: 9.5px; }
.cifake-conclusion { font-size: 11.5px; line-height: 1.35; padding-left: 18px; }
.cifake-figures { display: flex; flex-wrap: wrap; gap: 8px; }
.cifake-figures figure { margin: 0; width: 32%; break-inside: avoid; }
.cifake-figures img { width: 100%; height: 44mm; object-fit: contain; }
.cifake-figures figcaption { font-size: 10px; color: #444; text-align: center; }
.cifake-toc table { font-size: 14px; width: 100%; }
.cifake-toc td:last-child { text-align: right; }
.cifake-label { color: #888; font-size: 11px; text-transform: uppercase; letter-spacing: 1px; }
.jp-Notebook { padding: 0 !important; }
"""

PRINT_CSS = """
@page { size: A4; margin: 16mm 13mm 15mm 13mm;
        @bottom-left { content: FOOTER; font-size: 8pt; color: #666; }
        @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt; color: #666; }
        BANNER }
.cifake-banner { display: none; }
.cifake-toc, .cifake-chapter { break-before: page; }
.jp-OutputArea-output img { max-width: 100% !important; max-height: 80mm; width: auto; }
.cifake-appendix-body { column-count: 2; column-gap: 16px; }
.cifake-appendix-body .jp-Cell, .cifake-appendix-body table { break-inside: avoid; }
.cifake-appendix-body h2 { font-size: 13px; break-after: avoid; }
.jp-RenderedHTMLCommon table, .jp-OutputArea-output table { font-size: 9px !important; }
.jp-RenderedHTMLCommon { font-size: 12px; }
.jp-OutputArea-output pre { font-size: 9px; }
.jp-Cell { break-inside: avoid; }
"""


def _css(synthetic: bool, footer: str, for_print: bool) -> str:
    css = BASE_CSS
    if for_print:
        banner = (
            (
                f'@top-center {{ content: "{SYNTHETIC_BANNER}"; color: #fff; background: #b00020; '
                f"font-weight: bold; font-size: 9pt; }}"
            )
            if synthetic
            else ""
        )
        css += PRINT_CSS.replace("FOOTER", f'"{footer}"').replace("BANNER", banner)
    return f"<style>{css}</style>"


def _banner(synthetic: bool) -> str:
    return f'<div class="cifake-banner">{SYNTHETIC_BANNER}</div>' if synthetic else ""


def study_name(meta: dict) -> str:
    data = "synthetic demo data" if meta["data"]["synthetic"] else meta["data"]["source"].split("/")[-1]
    overridden = " (with overrides)" if meta.get("overrides") else ""
    return f"{meta['profile']} profile{overridden} on {data}"


# ----------------------------------------------------------------------------- pages and the PDF


def page_html(head: str, body: str, meta: dict, for_print: bool) -> str:
    title = html.escape(f"cifake: {study_name(meta)}")
    footer = f"cifake · {study_name(meta)}".replace('"', "'")
    head = re.sub(r"<title>.*?</title>", "", head, flags=re.S)
    return (
        head.replace("</head>", f"<title>{title}</title>{_css(meta['data']['synthetic'], footer, for_print)}</head>")
        + f"<body>{_banner(meta['data']['synthetic'])}{body}</body></html>"
    )


def combined_body(meta: dict, summary: dict | None, chapters: list[Chapter], pages: dict | None) -> str:
    figures = [f for c in chapters for f in c.figures]
    parts = [front_html(meta, summary, figures), toc_html(chapters, pages)]
    parts += [
        f'<section class="cifake-chapter" id="{c.name}"><div class="cifake-label">{c.label}</div>{c.body}</section>'
        for c in chapters
    ]
    return "".join(parts) + appendix_html(chapters, meta)


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
    report_dir: Path, executed: list[Path], meta: dict, summary: dict | None, pdf: bool = True, log=print
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
        dst.write_text(page_html(head, f'<div class="cifake-label">{c.label}</div>{c.body}', meta, for_print=False))
        pages.append(dst)
    (html_dir / "appendix.html").write_text(page_html(head, appendix_html(chapters, meta), meta, for_print=False))
    links = "".join(f'<li><a href="html/{c.name}.html">{html.escape(c.title)}</a></li>' for c in chapters)
    links += '<li><a href="html/appendix.html">Appendix: settings, layers, per-epoch tables, provenance</a></li>'
    pdf_link = '<p><a href="cifake_report.pdf">The whole report as one PDF</a></p>' if pdf else ""
    front = front_html(meta, summary, [f for c in chapters for f in c.figures])
    (report_dir / "index.html").write_text(
        page_html(head, f"{front}<h2>Chapters</h2><ol>{links}</ol>{pdf_link}", meta, for_print=False)
    )
    out = {"index": report_dir / "index.html", "html": pages, "pdf": None}
    if pdf:
        out["pdf"] = build_pdf(report_dir, head, meta, summary, chapters, log=log)
    return out
