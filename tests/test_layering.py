"""The layers of docs/ARCHITECTURE.md: methods, losses and nn import nothing from engine/ (the
engine calls them, never the other way), so a method file can be read and tested on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clusterbench"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("layer", ["methods", "losses", "nn"])
def test_lower_layers_import_nothing_from_the_engine(layer):
    files = sorted((PACKAGE / layer).glob("*.py"))
    assert files
    upward = {
        f.name: [m for m in _imports(f) if m.startswith(("clusterbench.engine", "clusterbench.train", "clusterbench.bench"))] for f in files
    }
    assert {name: mods for name, mods in upward.items() if mods} == {}
