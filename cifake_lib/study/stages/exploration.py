"""01_data_exploration: the audit of the study's data, its duplicates and conversions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...atomic import write_json
from ...data.audit import audit
from ..notebook import Study


def audit_summary(study: Study) -> dict:
    """Audit of the study's data, also saved as OUT/audit.json."""
    result = audit(study.load_data())
    write_json(study.layout.audit_path, result)
    return result


def duplicates_table(a: dict) -> pd.DataFrame:
    d = a["duplicates"]
    rows = [{"where": f"within {k}: extra copies (same bytes)", "count": v} for k, v in d["within"].items()]
    rows += [{"where": f"{k}: extra copies (same bytes)", "count": v} for k, v in d["by_class"].items()]
    rows.append({"where": "test images whose bytes are in train (leaks)", "count": d["across"]})
    rows.append({"where": "images with the same bytes under both labels", "count": d["label_conflicts"]})
    near = a.get("near_duplicates")
    if near:
        rows += [{"where": f"{k} images with a near-copy in {k}", "count": v} for k, v in near["within"].items()]
        if near["across"] is not None:
            rows.append({"where": "test images with a near-copy in train", "count": near["across"]})
    return pd.DataFrame(rows).set_index("where")


def near_duplicate_examples(study: Study, a: dict, pairs: int = 4) -> tuple[np.ndarray, list[str]]:
    """Images of the first few near-duplicate pairs the audit found, side by side, with their names."""
    data = study.load_data()
    examples = a["near_duplicates"]["examples"][:pairs]
    if not examples:
        return np.zeros((0, 3, data.image_size, data.image_size), dtype=np.uint8), []
    paths = [p for pair in examples for p in pair]
    return data.images[data.index_of(paths)], [p.rsplit("/", 1)[-1][:18] for p in paths]


def audit_details(a: dict) -> str:
    """Conversions, corrupt and ignored files, and a few duplicate groups, as text."""
    lines = [
        f"conversions: {a['converted'] or 'none'}",
        f"corrupt files skipped: {len(a['corrupt'])} {a['corrupt'][:5]}",
        f"ignored non-image files: {len(a['ignored'])} {a['ignored'][:5]}",
        "examples of duplicate groups:",
    ]
    lines += ["   " + " == ".join(group) for group in a["duplicates"]["examples"]] or ["   none"]
    return "\n".join(lines)
