"""Every name the benchmarks and scripts import from the project exists where they import it.

The scripts are not run by the suite (they take minutes); a module that moves must not leave
them importing from its old home.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")])


def _project_imports(path: Path) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in ("safes_framework", "safes_plugins"):
                found += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (a.name, None)
                for a in node.names
                if a.name.split(".")[0] in ("safes_framework", "safes_plugins")
            ]
    return found


def test_there_are_scripts_to_check() -> None:
    assert any(p.parent.name == "benchmarks" for p in SCRIPTS)
    assert any(_project_imports(p) for p in SCRIPTS)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_project_imports_resolve(path: Path) -> None:
    for module, name in _project_imports(path):
        mod = importlib.import_module(module)
        if name is not None and not hasattr(mod, name):
            importlib.import_module(f"{module}.{name}")  # a submodule imported by name
