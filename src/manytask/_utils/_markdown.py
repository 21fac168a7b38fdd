"""Write one section of a markdown results page, leaving every other section untouched."""

from __future__ import annotations

from pathlib import Path

from ._atomic import atomic_write

__all__ = ["write_section"]


def write_section(section_id: str, markdown: str, path: str | Path = "docs/benchmarks.md") -> None:
    """Replace the text between ``<!-- section:ID start -->`` and ``<!-- section:ID end -->``.

    The section is appended when the markers are absent. The file is written atomically
    (:func:`atomic_write`).

    Args:
        section_id: the section's identifier (no spaces).
        markdown: the new content of the section.
        path: the markdown file (created if missing).
    """
    if not section_id or any(c.isspace() for c in section_id):
        raise ValueError(f"section_id must be a non-empty word; got {section_id!r}.")
    path = Path(path)
    start, end = f"<!-- section:{section_id} start -->", f"<!-- section:{section_id} end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{start}\n{markdown.strip()}\n{end}"
    i, j = text.find(start), text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(end) :]
    elif i >= 0 or j >= 0:
        raise ValueError(f"{path}: unbalanced markers for section {section_id!r}.")
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    atomic_write(path, text)
