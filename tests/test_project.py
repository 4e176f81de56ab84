"""Project-level checks: dependency lists agree, source notebooks carry no outputs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_mirrors_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = (ROOT / "environment.yml").read_text()
    pinned = set(re.findall(r"^\s+- ([A-Za-z0-9_.\-]+==[^\s]+)\s*$", env, re.M))
    assert set(deps) == pinned
    # the same Pythons as requires-python (3.11 to 3.13)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11,<3.14"
    assert re.search(r"^\s+- python>=3\.11,<3\.14\b", env, re.M)


def test_source_notebooks_have_no_outputs():
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{nb_path.name} has outputs: clear them before committing"
                assert cell.get("execution_count") is None, f"{nb_path.name} has execution counts"
