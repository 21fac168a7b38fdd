"""One self-contained HTML page: headings, real tables, and matplotlib figures embedded as PNG."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Page"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f2f2f2; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
p.note { color: #555; font-size: 0.9em; }
"""


class Page:
    """Collects the parts of a report in order; :meth:`html` gives the page (no network needed)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str, note: bool = False) -> None:
        opening = '<p class="note">' if note else "<p>"
        self.parts.append(f"{opening}{html.escape(text)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]], caption: str | None = None) -> None:
        """A table with a header row; cells are shown with ``str`` (floats with 4 significant digits)."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, figure: Figure, caption: str) -> None:
        """Embed ``figure`` as a PNG data URL (the figure is not kept)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        alt = html.escape(caption, quote=True)
        self.parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def preformatted(self, text: str, summary: str) -> None:
        """Text shown as is, folded under ``summary``."""
        self.parts.append(f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre></details>")

    def html(self) -> str:
        title = html.escape(self.title)
        head = f'<head><meta charset="utf-8"><title>{title}</title><style>{_STYLE}</style></head>'
        body = f"<body><h1>{title}</h1>\n" + "\n".join(self.parts) + "\n</body>"
        return f'<!DOCTYPE html>\n<html lang="en">{head}{body}</html>\n'


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.4g}"
    return str(value)
