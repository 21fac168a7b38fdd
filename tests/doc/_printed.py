"""Docs' ``print(...)  # what it prints`` lines, checked: the comment must start with the output."""

from __future__ import annotations

import re

PRINT_WITH_COMMENT = re.compile(r"^([ \t]*)print\((.*)\)[ \t]+# (.*)$", flags=re.M)


def checked(block: str, doc: str) -> str:
    """``block`` with each ``print(args)  # text`` turned into ``_shows(doc, text, args)``."""
    return PRINT_WITH_COMMENT.sub(lambda m: f"{m[1]}_shows({doc!r}, {m[3]!r}, {m[2]})", block)


def shows(doc: str, comment: str, *values: object) -> None:
    """What the rewritten ``print`` runs: assert the comment starts with the printed text."""
    printed = " ".join(str(v) for v in values)
    assert comment.startswith(printed), f"{doc} says {comment!r}, the code prints {printed!r}"
