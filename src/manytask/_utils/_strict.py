"""The base of every config model: unknown keys are errors, not silently dropped."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """A pydantic model that rejects keys it does not declare (``extra="forbid"``).

    Format its :class:`pydantic.ValidationError` with :func:`validation_messages`, which turns
    an unknown key into a "did you mean" message.
    """

    model_config = ConfigDict(extra="forbid")
