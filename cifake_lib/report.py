"""`make report`: execute the numbered notebooks with papermill, export HTML and one PDF.

Steps: resolve the data (DATA, $CIFAKE_DATA, data/, else a synthetic demo set), remove every
output of an earlier report, execute notebooks 01-07 in order into ``report/executed/`` (a
failing notebook stops the run, naming the notebook and cell), then :mod:`.export` writes an HTML
page per chapter, ``report/index.html`` and one ``report/cifake_report.pdf`` (front pages, contents,
chapters, appendix) with a headless Chromium.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import sys
import time
from pathlib import Path

from . import paths
from .export import (  # noqa: F401 (find_chromium: API)
    SYNTHETIC_BANNER,
    ReportError,
    build_exports,
    find_chromium,
    overrides_text,
)

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
OUTPUTS = ("index.html", "cifake_report.pdf", "FAILED.txt", "timings.json")
# notebook parameters `make report` passes on (to the notebooks that declare them), so that any
# profile can be tried on a subset: make report PROFILE=paper LIMIT_PER_CLASS=16 EPOCHS=1
OVERRIDES = (
    "LIMIT_PER_CLASS",
    "EPOCHS",
    "BATCH_SIZE",
    "WEIGHTS",
    "AMP",
    "EVAL_LIMIT_PER_CLASS",
    "EXTRA_TEST_DATA",
)
PATH_OVERRIDES = ("WEIGHTS", "EXTRA_TEST_DATA")  # resolved here: the notebooks run in notebooks/
# 0: all images; a batch of one would break BatchNorm (the trainer skips such batches)
OVERRIDE_MINIMUM = {"EPOCHS": 1, "BATCH_SIZE": 2, "LIMIT_PER_CLASS": 0, "EVAL_LIMIT_PER_CLASS": 0}


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


def check_overrides(overrides: dict) -> dict:
    """The overrides with paths made absolute, each checked as its notebooks will check it.

    Raises ReportError for a name `make report` does not pass on, a value of the wrong kind, or
    a path that does not exist, before any notebook starts."""
    from .engine.config import ConfigError
    from .study.parameters import check_value

    out = {}
    for name, value in overrides.items():
        if name not in OVERRIDES:
            raise ReportError(f"{name} is not a report override; choose from {', '.join(OVERRIDES)}")
        if name in PATH_OVERRIDES and value:
            paths_ = [value] if isinstance(value, str) else value
            missing = [p for p in paths_ if not Path(p).expanduser().exists()]
            if missing:
                raise ReportError(f"{name}: {', '.join(missing)} does not exist")
            resolved = [str(Path(p).expanduser().resolve()) for p in paths_]
            value = resolved[0] if isinstance(value, str) else resolved
        try:
            check_value(name, value)
        except ConfigError as exc:
            raise ReportError(str(exc)) from None
        if name in OVERRIDE_MINIMUM and value < OVERRIDE_MINIMUM[name]:
            raise ReportError(f"{name}={value}: must be at least {OVERRIDE_MINIMUM[name]}")
        out[name] = value
    return out


# ----------------------------------------------------------------------------- export


def collect_meta(layout, profile: str, data, overrides: dict | None = None) -> dict:
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
        "overrides": dict(overrides or {}),
    }


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
    overrides: dict | None = None,
) -> dict:
    """The whole `make report`; returns what was written. Raises ReportError on failure.

    ``overrides`` maps notebook parameters (see OVERRIDES) to values that replace the profile's
    in every notebook that declares them; the report's front page lists them."""
    from .data.dataset import load_cifake
    from .study.layout import StudyLayout
    from .study.profiles import resolve_profile

    report_dir = Path(report_dir or paths.REPO_ROOT / "report").resolve()
    # a mistyped profile or override stops here, before an earlier report is removed
    profile = resolve_profile(profile)
    overrides = check_overrides(overrides or {})
    report_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(report_dir)
    try:
        work = report_dir / "work"
        data_path, synthetic = resolve_data(data, work / "synthetic-demo-data")
        loaded = load_cifake(data_path)
        synthetic = synthetic or loaded.synthetic
        if synthetic:
            log(f"NOTE: {SYNTHETIC_BANNER}")
        log(f"data: {data_path} ({len(loaded):,} images); profile: {profile}; study folder: {work}")
        if overrides:
            log(f"overrides of the profile: {overrides_text(overrides)}")
        params = {"DATA": str(data_path), "PROFILE": profile, "OUT": str(work), **overrides}
        timings = run_notebooks(params, report_dir / "executed", notebooks, log=log, progress=progress)
        from .provenance import git_commit, utc_now

        record = {"profile": profile, "overrides": overrides, "data": str(data_path), "git_commit": git_commit()}
        record.update(finished_utc=utc_now(), seconds=timings)
        (report_dir / "timings.json").write_text(json.dumps(record, indent=2))
        layout = StudyLayout(work)
        meta = collect_meta(layout, profile, loaded, overrides)
        executed = [report_dir / "executed" / f"{n}.ipynb" for n in notebooks]
        meta["data"]["synthetic"] = bool(synthetic)
        out = build_exports(report_dir, executed, meta, layout.summary(), pdf=pdf, log=log)
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
    sub = parser.add_argument_group(
        "overrides",
        "replace the profile's values in the notebooks that take them, e.g. to rehearse the paper profile on a "
        "CPU: --profile paper --limit-per-class 16 --epochs 1 --weights resnet18-f37072fd.pth. "
        "A report made with overrides says so on its front page.",
    )
    sub.add_argument("--limit-per-class", type=int, metavar="K", help="training images per class (0: all)")
    sub.add_argument("--epochs", type=int, metavar="N", help="epochs of every training run (all recipes)")
    sub.add_argument("--batch-size", type=int, metavar="B", help="training batch size of every run")
    sub.add_argument("--weights", metavar="FILE", help="local ImageNet ResNet-18 weights (resnet18-f37072fd.pth)")
    sub.add_argument("--amp", choices=("auto", "bf16", "off"), help="training arithmetic (bf16 autocast or fp32)")
    sub.add_argument(
        "--eval-limit-per-class", type=int, metavar="K", help="test images per class scored in 05 and 07 (0: all)"
    )
    sub.add_argument(
        "--extra-test-data", metavar="A,B", help="comma-separated paths of more labelled data scored in 05"
    )
    args = parser.parse_args(argv)
    # each override's option is its name in lower case (--limit-per-class: LIMIT_PER_CLASS)
    given = {name: getattr(args, name.lower()) for name in OVERRIDES}
    if given["EXTRA_TEST_DATA"] is not None:
        given["EXTRA_TEST_DATA"] = [p for p in given["EXTRA_TEST_DATA"].split(",") if p] or None
    overrides = {name: value for name, value in given.items() if value is not None and value != ""}
    from .data.sources import DataError
    from .engine.config import ConfigError

    try:
        out = make_report(args.data or None, args.profile, Path(args.out), pdf=not args.no_pdf, overrides=overrides)
    except (ReportError, ConfigError, DataError) as exc:
        print(f"make report: FAILED: {exc}", file=sys.stderr)
        failed = Path(args.out) / "FAILED.txt"
        print(f"(no report was produced{f'; see {failed}' if failed.exists() else ''})", file=sys.stderr)
        return 1
    print(f"report: {out['index']}" + (f" and {out['pdf']}" if out["pdf"] else ""))
    for name, s in out["timings"].items():
        print(f"  {name:<28} {s:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
