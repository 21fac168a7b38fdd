"""The "did you mean" tail of every unknown-name message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(
    name: str,
    valid: Iterable[str],
    label: str | None = "Valid",
    *,
    prefix: str = "",
) -> str:
    """The end of an "unknown name" message: close matches, then the valid names.

    Returns ``" Did you mean 'a', 'b'? <label>: x, y, z."``; the first sentence only when some
    valid name is close to ``name`` (up to three, as :func:`difflib.get_close_matches` with
    cutoff 0.5 ranks them), the second only when ``label`` is given and ``valid`` is not empty.
    Append it to a sentence that names the unknown value: ``f"Unknown model {name!r}.{tail}"``.

    Args:
        name: The unknown name.
        valid: The names that would have been accepted, in the order to list them.
        label: What the list is called (``"Registered"``, ``"Columns"``); None omits the list
            (e.g. a folder listing too long to show).
        prefix: Put before each suggestion (``"training."`` suggests ``'training.steps'``).

    Example:
        >>> did_you_mean("mlpp", ["cnn", "mlp"], "Registered")
        " Did you mean 'mlp'? Registered: cnn, mlp."
    """
    valid = [str(v) for v in valid]
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
    listing = f" {label}: {', '.join(valid)}." if label is not None and valid else ""
    return hint + listing
