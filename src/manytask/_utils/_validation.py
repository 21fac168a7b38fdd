"""pydantic validation errors as sentences that name the key and the fix."""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ._suggest import did_you_mean

__all__ = ["validation_messages"]


def validation_messages(
    error: ValidationError,
    model: type[BaseModel] | None = None,
    *,
    noun: str = "key",
    where: str = "",
) -> list[str]:
    """One sentence per problem in ``error``.

    An unknown key (a :class:`StrictModel` forbids them) reads ``Unknown key 'a.b'. Did you
    mean 'a.c'? Valid keys here: c, d.`` (the suggestions need ``model``, the validated class);
    any other problem ``Key 'a.b': <pydantic's message> (got <the value>).``

    Args:
        error: What pydantic raised.
        model: The model that was validated, to list the valid keys beside an unknown one.
        noun: What a key is called in the messages (``"option"``: ``Option 'lr': ...``).
        where: Text after the key, e.g. ``" of balancer 'mgda'"``.
    """
    lines = []
    for item in error.errors():
        loc = [p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        key = ".".join(map(str, loc)) or "(top level)"
        if item["type"] == "extra_forbidden":
            parent = "".join(f"{p}." for p in loc[:-1])
            valid = _keys_at(model, loc[:-1]) if model is not None else []
            tail = did_you_mean(str(loc[-1]), valid, f"Valid {noun}s here", prefix=parent)
            lines.append(f"Unknown {noun} {key!r}{where}.{tail}")
        elif item["type"] == "missing":
            lines.append(f"{noun.capitalize()} {key!r}{where}: {item['msg']}.")
        else:
            got = item.get("input")
            lines.append(f"{noun.capitalize()} {key!r}{where}: {item['msg']} (got {got!r}).")
    return lines


def _keys_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The field names of the model found at ``path`` below ``model`` (empty if none)."""
    current: Any = model
    for part in path:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = _model_or_container(field.annotation) if field is not None else None
        elif get_origin(current) in (dict, Mapping):
            current = _model_or_container(get_args(current)[1])  # ``part`` is a dict key
        elif get_origin(current) in (list, Sequence):
            current = _model_or_container(get_args(current)[0])  # ``part`` is an index
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_or_container(annotation: Any) -> Any:
    """``annotation`` with ``Optional``/unions reduced to the model or container they hold."""
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            if (isinstance(arg, type) and issubclass(arg, BaseModel)) or get_origin(arg):
                return arg
        return None
    return annotation
