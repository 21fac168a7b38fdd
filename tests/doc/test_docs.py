"""Every python block in docs/*.md and every docstring example runs."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import manytask
from tests.doc._printed import checked, shows

DOCS = Path(__file__).resolve().parents[2] / "docs"
OWN_DOCS = ["concepts.md", "configuration.md", "balancing.md", "architectures.md", "auxiliary.md", "distributed.md",
            pytest.param("tutorial.md", marks=pytest.mark.report), pytest.param("reports.md", marks=pytest.mark.report),
            "relatedness.md"]


@pytest.mark.parametrize("name", OWN_DOCS)
def test_python_blocks_run_and_print_what_they_say(name: str) -> None:
    """Each block runs; a ``print(...)  # text`` must print what ``text`` starts with."""
    for block in re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), flags=re.S):
        exec(compile(checked(block, f"docs/{name}"), name, "exec"), {"_shows": shows})  # noqa: S102


def test_docstring_examples() -> None:
    failures = 0
    for info in pkgutil.walk_packages(manytask.__path__, "manytask."):
        if ".datasets" in info.name:
            continue  # covered by their own test suites (their examples read files)
        module = importlib.import_module(info.name)
        failures += doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed
    assert failures == 0


def test_public_surface() -> None:
    for name in manytask.__all__:
        assert getattr(manytask, name).__doc__, f"manytask.{name} has no docstring"
