"""Nested state (dicts, lists, numbers, tensors) <-> one safetensors file, without pickle.

Tensors go into the safetensors payload; everything else becomes JSON in its metadata, with
``{"__tensor__": key}`` placeholders. Dicts with non-string keys (optimizer states) and tuples
are tagged so they round-trip exactly.
"""

from __future__ import annotations

import json
import math
from typing import Any

from torch import Tensor

__all__ = ["flatten_state", "unflatten_state"]


def flatten_state(state: Any) -> tuple[str, dict[str, Tensor]]:
    """Split ``state`` into a JSON string and a flat dict of contiguous tensors."""
    tensors: dict[str, Tensor] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = value.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {"__dict__": {k: encode(v) for k, v in value.items()}}
            return {"__items__": [[encode(k), encode(v)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"__tuple__": [encode(v) for v in value]}
        if isinstance(value, list):
            return [encode(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return {"__float__": repr(value)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"Cannot store a value of type {type(value).__name__} in a checkpoint.")

    return json.dumps(encode(state)), tensors


def unflatten_state(text: str, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__dict__" in value:
            return {k: decode(v) for k, v in value["__dict__"].items()}
        if "__items__" in value:
            return {decode(k): decode(v) for k, v in value["__items__"]}
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        if "__float__" in value:
            return float(value["__float__"])
        raise ValueError(f"Unknown tag in stored state: {sorted(value)}.")

    return decode(json.loads(text))


