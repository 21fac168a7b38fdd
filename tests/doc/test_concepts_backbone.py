"""The user-defined backbone example of docs/concepts.md ("Backbones and heads") runs and prints
what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import torch

from manytask.models import Backbone, HardSharing

CONCEPTS = Path(__file__).resolve().parents[2] / "docs" / "concepts.md"


def section(text: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"docs/concepts.md has no section '## {title}'"
    return match.group(1)


def example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", section(CONCEPTS.read_text(), "Backbones and heads"), flags=re.S)
    assert len(blocks) == 1, "the section should hold one python example"
    return blocks[0]


def test_backbone_example_runs_and_prints_what_it_says() -> None:
    code = example()
    namespace: dict[str, object] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "concepts.md", "exec"), namespace)  # noqa: S102
    expected = [line.split("#", 1)[1].strip() for line in code.splitlines() if line.startswith("print(")]
    assert printed.getvalue().splitlines() == expected


def test_backbone_example_builds_what_it_describes() -> None:
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(example(), "concepts.md", "exec"), namespace)  # noqa: S102
    backbone, model = namespace["backbone"], namespace["model"]
    assert isinstance(backbone, Backbone) and isinstance(model, HardSharing)
    assert len(backbone.stages) == 2 and all(type(s) is torch.nn.Sequential for s in backbone.stages)
    assert model.encoder is backbone
    assert {t.name: t.level for t in namespace["tasks"]} == {"scene": "sample", "depth": "pixel"}  # type: ignore[attr-defined]
    out = model(namespace["images"])
    sum(o.sum() for o in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
