"""The library's shape: layers import one way, functions stay short, each setting is declared once."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "cifake_lib"
# a layer may import the layers before it and the shared helpers, never one after it
LAYERS = ("data", "engine", "study", "top")
TOP = ("cli", "report", "export")
HELPERS = ("paths", "provenance", "atomic", "_lazy")


def _modules():
    for path in sorted(LIB.rglob("*.py")):
        yield ".".join(("cifake_lib", *path.relative_to(LIB).with_suffix("").parts)).removesuffix(".__init__"), path


def _imported(module: str, path: Path) -> set[str]:
    """Every cifake_lib module a file imports, relative imports resolved, lazy imports included."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("cifake_lib")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("cifake_lib"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names}
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    if parts[1] in ("data", "engine", "study"):
        return parts[1]
    if parts[1] in TOP:
        return "top"
    return None  # the package itself and the shared helpers


def test_layers_import_one_way():
    wrong = []
    for module, path in _modules():
        mine = _layer(module)
        if mine is None:
            continue
        for target in _imported(module, path):
            theirs = _layer(target)
            if theirs is not None and LAYERS.index(theirs) > LAYERS.index(mine):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "lower layers import higher ones:\n" + "\n".join(wrong)


def test_the_import_check_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..study.notebook import setup\n")
    assert "cifake_lib.study.notebook" in _imported("cifake_lib.data.bad", bad)


def test_helpers_import_no_layer():
    for name in HELPERS:
        path = LIB / f"{name}.py"
        assert not {t for t in _imported(f"cifake_lib.{name}", path) if _layer(t)}, name


def _functions():
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{module}.{node.name}", node.end_lineno - node.lineno + 1


def test_no_function_over_80_lines():
    long = {name: n for name, n in _functions() if n > 80}
    assert not long, long


def test_train_model_reads_as_a_short_loop():
    sizes = dict(_functions())
    assert sizes["cifake_lib.engine.trainer.train_model"] < 50
    src = (LIB / "engine" / "trainer.py").read_text()
    body = src[src.index("def train_model(") : src.index("# ---", src.index("def train_model("))]
    assert "for epoch in range(" in body and "train_one_epoch(" in body and "validate(" in body


@pytest.mark.parametrize("package", ["cifake_lib.data", "cifake_lib.engine", "cifake_lib.study"])
def test_subpackages_export_a_short_public_list(package):
    mod = importlib.import_module(package)
    assert 0 < len(mod.__all__) <= 25
    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_building_the_parser_loads_no_heavy_library():
    code = (
        "import sys; from cifake_lib.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'torchvision', 'numpy', 'pandas', 'matplotlib', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_module_is_in_the_readme_layout():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    missing = [str(p.relative_to(ROOT)) for _, p in _modules() if p.name != "__init__.py" and p.name not in layout]
    missing += [
        f"{d.name}/" for d in LIB.rglob("*") if d.is_dir() and d.name != "__pycache__" and f"{d.name}/" not in layout
    ]
    assert not missing, f"README's Layout does not list: {missing}"
    assert "01-05" not in readme and "01-05" not in (ROOT / "Makefile").read_text()


# ----------------------------------------------------------------------------- settings declared once


def test_notebook_parameter_cells_are_generated_from_the_table():
    import nbformat

    from cifake_lib.study.parameters import NOTEBOOK_PARAMETERS, check_table, parameters_cell

    check_table()
    for stage in NOTEBOOK_PARAMETERS:
        nb = nbformat.read(ROOT / "notebooks" / f"{stage}.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert cell.source == parameters_cell(stage), f"{stage}: run python -m cifake_lib.study.parameters"


def test_notebooks_read_parameters_only_through_the_study():
    import nbformat

    from cifake_lib.study.parameters import PARAMETERS

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
                continue
            used = {n.id for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Name)}
            assert not used & set(PARAMETERS), f"{path.name} reads {used & set(PARAMETERS)} as globals"


def test_cli_train_options_are_the_config_fields():
    from cifake_lib.cli import build_parser
    from cifake_lib.engine.config import TrainConfig, cli_fields

    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("train"))
    dests = {a.dest for a in train._actions}
    assert {f.name for f in cli_fields()} <= dests
    split_options = {"val_fraction", "split_seed", "dedupe_train", "splits"}
    assert split_options <= dests and not split_options & {f.name for f in fields(TrainConfig)}


def test_every_help_page_renders_its_text_as_written():
    """argparse formats %-signs in option help but not in descriptions: a '%%' there shows."""
    from cifake_lib.cli import build_parser

    parser = build_parser()
    pages = {"cifake": parser.format_help()}
    pages.update((name, sub.format_help()) for name, sub in parser._subparsers._group_actions[0].choices.items())
    assert len(pages) > 5
    for name, text in pages.items():
        assert "%%" not in text and "%(" not in text, name


def test_eval_limits_live_in_the_profiles():
    from cifake_lib.study.profiles import PROFILES

    assert all("eval_limit_per_class" in p and "seeds" in p for p in PROFILES.values())
