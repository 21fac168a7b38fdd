"""Run the python code blocks of docs/linear.md in order, in one namespace; a ``print(...)``
with a trailing comment must print what the comment starts with."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from tests.doc._printed import PRINT_WITH_COMMENT, checked, shows

DOC = Path(__file__).resolve().parents[2] / "docs" / "linear.md"


def test_docs_linear_examples_run_and_print_what_they_say() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 12
    assert sum(len(PRINT_WITH_COMMENT.findall(b)) for b in blocks) >= 7
    namespace: dict = {"__name__": "docs_linear", "_shows": shows}
    with contextlib.redirect_stdout(io.StringIO()):
        for i, block in enumerate(blocks):
            exec(compile(checked(block, "docs/linear.md"), f"{DOC.name}[block {i}]", "exec"), namespace)  # noqa: S102
