"""The ``cifake`` command line: audit, synth, download, models, train, evaluate, predict."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import __version__

EPILOG = "FAKE (AI-generated) is the positive class (label 1) in every output."


class CliError(Exception):
    """An error reported as one line, without a traceback."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


# ----------------------------------------------------------------------------- commands


def cmd_audit(args) -> int:
    from .audit import audit, format_audit
    from .data import load_cifake

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt files are listed in the audit itself
        data = load_cifake(args.data, strict=args.strict, image_size=args.image_size, progress=not args.json)
    result = audit(data)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_audit(result))
    return 0


def cmd_synth(args) -> int:
    from .synth import make_synthetic_cifake

    root = make_synthetic_cifake(args.out, per_class=args.per_class, seed=args.seed, test=not args.no_test)
    print(f"wrote a SYNTHETIC dataset (not CIFAKE) to {root}: {args.per_class} images per class in train/")
    return 0


def cmd_download(args) -> int:
    from .download import DownloadError, download_cifake

    try:
        dest = download_cifake(args.dest, timeout=args.timeout)
    except DownloadError as exc:
        raise CliError(str(exc)) from None
    print(f"CIFAKE downloaded to {dest}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifake",
        description="Tell real photographs from AI-generated images on CIFAKE (Bird & Lotfi).",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"cifake {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "audit",
        help="check a dataset: counts, sizes, conversions, corrupt files, duplicates",
        description=(
            "Load a CIFAKE-layout folder or zip (decoding once, then cached) and report counts per "
            "split and class, image sizes and modes as found, conversions, corrupt and ignored "
            "files, mean RGB per class and exact duplicates by content hash (within splits and "
            "test-in-train leaks). Exit code 0 when the data is usable."
        ),
        epilog=EPILOG,
    )
    p.add_argument("data", help="folder (<root>/train/{REAL,FAKE}/...) or the Kaggle zip")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON (stable keys, see README)")
    p.add_argument("--strict", action="store_true", help="fail on corrupt image files instead of skipping them")
    p.add_argument("--image-size", type=_positive_int, default=32, help="decode size in pixels (default 32)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "synth",
        help="write a small SYNTHETIC dataset in the CIFAKE layout (tests, demos)",
        description=(
            "Write train/ (and test/) with REAL and FAKE JPEGs whose FAKE images carry an "
            "upsampling artifact a small CNN learns quickly. The folder is marked synthetic and "
            "every later stage says so. It is not CIFAKE."
        ),
    )
    p.add_argument("out", help="folder to create")
    p.add_argument("--per-class", type=_positive_int, default=200, help="training images per class (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-test", action="store_true", help="write train/ only (a test part is then carved)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "download",
        help="download CIFAKE from Kaggle (needs network and Kaggle credentials)",
        description=(
            "Fetch the Kaggle dataset birdy654/cifake-real-and-ai-generated-synthetic-images with "
            "kagglehub into a temporary folder and move it to DEST only when complete. Offline, it "
            "stops within seconds and says how to get the data by hand."
        ),
    )
    p.add_argument("dest", help="new or empty folder to put the dataset in")
    p.add_argument("--timeout", type=_positive_float, default=5.0, help="seconds to wait for Kaggle (default 5)")
    p.set_defaults(func=cmd_download)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .sources import DataError

    try:
        return int(args.func(args) or 0)
    except (CliError, DataError, FileNotFoundError, ValueError) as exc:
        print(f"cifake {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
