"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespaces = []
    for block in blocks:
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        namespaces.append(namespace)
    assert namespaces[0]["result"].steps == 50  # type: ignore[attr-defined]
    assert namespaces[1]["model"].coef_.shape == (5, 8)  # type: ignore[attr-defined]


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_counts_what_is_registered() -> None:
    from manytask.balancing import BALANCERS
    from manytask.models import MODELS

    words = {15: "fifteen"}
    text = " ".join(README.read_text().split())
    assert f"**{len(BALANCERS.names())} balancing methods**" in text
    assert f"**{words.get(len(MODELS.names()), len(MODELS.names()))} sharing schemes**" in text
