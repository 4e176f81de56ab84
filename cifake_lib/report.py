"""`make report`: run the study on the chosen data and write what it produced under report/."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from . import paths
from .audit import audit, format_audit
from .data import load_cifake
from .sources import DataError, open_source
from .synth import make_synthetic_cifake

REPORT_DIR = paths.REPO_ROOT / "report"


def resolve_data(data: str | None, synth_dir: Path) -> tuple[Path, bool]:
    """DATA if given, else $CIFAKE_DATA, else data/ in the repo; else a synthetic demo set.

    Returns (path, synthetic_fallback)."""
    if data:
        return Path(data), False
    default = paths.default_data()
    if default is not None:
        try:
            open_source(default)
            return default, False
        except DataError as exc:
            print(f"note: {default} does not hold CIFAKE ({exc})", file=sys.stderr)
    if not (synth_dir / "train").exists():
        make_synthetic_cifake(synth_dir, per_class=300, seed=0)
    return synth_dir, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifake_lib.report", description=__doc__)
    parser.add_argument("--data", default="", help="CIFAKE folder or zip (default: $CIFAKE_DATA, data/, synthetic demo)")
    parser.add_argument("--profile", default="auto", help="auto, smoke, cpu or paper")
    parser.add_argument("--out", default=str(REPORT_DIR), help="report folder (default report/)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_path, synthetic = resolve_data(args.data or None, out / "synthetic-demo-data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = load_cifake(data_path)
    except DataError as exc:
        print(f"make report: error: {exc}", file=sys.stderr)
        return 2
    result = audit(data)
    (out / "audit.json").write_text(json.dumps(result, indent=2))
    (out / "audit.txt").write_text(format_audit(result) + "\n")
    print(format_audit(result))
    print()
    if synthetic:
        print("NOTE: no CIFAKE found (DATA, CIFAKE_DATA, data/): this ran on SYNTHETIC demo data.")
    print(f"wrote {out / 'audit.json'} and {out / 'audit.txt'}")
    print("Only the data audit ran: the notebooks and the HTML/PDF export are not built yet (issue 4).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
