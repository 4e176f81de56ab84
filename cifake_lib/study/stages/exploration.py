"""01_data_exploration: the audit of the study's data, its duplicates and conversions."""

from __future__ import annotations

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
    rows = [{"where": f"within {k}", "extra copies": v} for k, v in d["within"].items()]
    rows += [{"where": k, "extra copies": v} for k, v in d["by_class"].items()]
    rows.append({"where": "test images also in train (leaks)", "extra copies": d["across"]})
    rows.append({"where": "same bytes with both labels", "extra copies": d["label_conflicts"]})
    return pd.DataFrame(rows).set_index("where")


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
