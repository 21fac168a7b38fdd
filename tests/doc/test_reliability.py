"""Every test that docs/reliability.md names as proof exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_named_test_exists() -> None:
    text = (REPO / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(named) >= 15
    for path, function in named:
        assert (REPO / path).is_file(), path
        if function:
            tree = ast.parse((REPO / path).read_text())
            functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert function in functions, f"{path}::{function}"
