"""Checkpointable state of a wrapped torchjd object kept in plain attributes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["attribute_state", "load_attribute_state"]

_MODULE_INTERNALS = frozenset(vars(nn.Module()))
_PLAIN = (bool, int, float, str, type(None), np.ndarray, Tensor)


def attribute_state(module: nn.Module, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The attributes of ``module`` itself (not its parameters, buffers or submodules) that hold
    state: numbers, strings, arrays, tensors, None. Any other attribute raises ``TypeError``
    naming it, rather than being left out of the checkpoint silently."""
    state: dict[str, Any] = {}
    for key, value in vars(module).items():
        if key in _MODULE_INTERNALS or key in ignore:
            continue
        if not isinstance(value, _PLAIN):
            raise TypeError(
                f"{type(module).__name__}.{key} holds a {type(value).__name__}, which a checkpoint "
                "cannot store, so a resumed run would not continue exactly. Use manytask's own "
                "balancer for this method, or list the attribute in `ignore` if it is rebuilt."
            )
        state[key] = {"numpy": torch.from_numpy(np.array(value))} if isinstance(value, np.ndarray) else value
    return state


def load_attribute_state(module: nn.Module, state: dict[str, Any]) -> None:
    """Inverse of :func:`attribute_state`."""
    for key, value in state.items():
        if isinstance(value, dict) and set(value) == {"numpy"}:
            value = value["numpy"].numpy().copy()
        setattr(module, key, value)
