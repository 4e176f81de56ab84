"""Label conventions shared by every stage: FAKE (AI-generated) is the positive class."""

from __future__ import annotations

import re

REAL = 0
FAKE = 1
CLASS_NAMES = {REAL: "REAL", FAKE: "FAKE"}
CLASS_IDS = {"REAL": REAL, "FAKE": FAKE}

CIFAR10_CATEGORIES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
UNKNOWN_CATEGORY = -1

# CIFAKE names files "<index>.jpg" (airplane) or "<index> (k).jpg" with k = CIFAR-10 class + 1.
_CIFAKE_NAME = re.compile(r"^\d+(?: \((\d+)\))?$")


def category_from_name(stem: str) -> int:
    """CIFAR-10 category index encoded in a CIFAKE file stem, or UNKNOWN_CATEGORY (-1).

    >>> category_from_name("0000 (10)"), category_from_name("1000"), category_from_name("cat")
    (9, 0, -1)
    """
    match = _CIFAKE_NAME.match(stem)
    if not match:
        return UNKNOWN_CATEGORY
    k = int(match.group(1)) if match.group(1) else 1
    return k - 1 if 1 <= k <= len(CIFAR10_CATEGORIES) else UNKNOWN_CATEGORY


def category_name(index: int) -> str:
    """Readable name of a category index ("unknown" for -1)."""
    if 0 <= index < len(CIFAR10_CATEGORIES):
        return CIFAR10_CATEGORIES[index]
    return "unknown"
