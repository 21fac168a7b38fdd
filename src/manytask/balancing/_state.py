"""Checkpointable state of a wrapped torchjd object kept in plain attributes."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["WrappedState", "attribute_state", "fill_unset_buffers", "load_attribute_state"]

_MODULE_INTERNALS = frozenset(vars(nn.Module()))


class _Unstorable(TypeError):
    pass


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, Tensor)):
        return value
    if isinstance(value, np.ndarray):
        return {"numpy": torch.from_numpy(np.array(value))}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_encode(v) for v in value)
    raise _Unstorable(type(value).__name__)


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"numpy"}:
        return value["numpy"].numpy().copy()
    if isinstance(value, dict) and set(value) == {"dtype"}:
        return getattr(torch, value["dtype"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    return value


def attribute_state(module: nn.Module, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The attributes of ``module`` itself (not its parameters, buffers or submodules) that hold
    state: numbers, strings, arrays, tensors, dtypes, None, and lists or tuples of them. Any other
    attribute raises ``TypeError`` naming it, rather than being left out of the checkpoint."""
    state: dict[str, Any] = {}
    for key, value in vars(module).items():
        if key in _MODULE_INTERNALS or key in ignore:
            continue
        try:
            state[key] = _encode(value)
        except _Unstorable as error:
            raise TypeError(
                f"{type(module).__name__}.{key} holds a {error}, which a checkpoint cannot store, so "
                "a resumed run would not continue exactly. Use manytask's own balancer for this "
                "method, or list the attribute in `ignore` if it is rebuilt."
            ) from None
    return state


def load_attribute_state(module: nn.Module, state: dict[str, Any]) -> None:
    """Inverse of :func:`attribute_state`."""
    for key, value in state.items():
        setattr(module, key, _decode(value))


def fill_unset_buffers(module: nn.Module, prefix: str, state_dict: dict[str, Any]) -> None:
    """Buffers that ``module`` registered as None (created lazily, e.g. torchjd's GradVac) take
    their saved value, so ``load_state_dict`` does not see them as unexpected keys."""
    for name, buffer in list(module._buffers.items()):
        key = prefix + name
        if buffer is None and key in state_dict:
            module._buffers[name] = state_dict[key].clone()


class WrappedState(nn.Module):
    """Mixin of a balancer that wraps a torchjd object in the attribute named ``wrapped``: every
    piece of its state goes into ``state_dict`` (lazy buffers included), and ``reset`` resets it.
    Attributes listed in ``ignore`` are derived and not saved."""

    wrapped: ClassVar[str]
    ignore: tuple[str, ...] = ()

    def _inner(self) -> nn.Module:
        inner: nn.Module = getattr(self, self.wrapped)
        return inner

    def reset(self) -> None:
        reset = getattr(self._inner(), "reset", None)
        if callable(reset):
            reset()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:  # type: ignore[override]
        fill_unset_buffers(self._inner(), f"{prefix}{self.wrapped}.", state_dict)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def get_extra_state(self) -> dict[str, Any]:
        return attribute_state(self._inner(), self.ignore)

    def set_extra_state(self, state: dict[str, Any]) -> None:
        load_attribute_state(self._inner(), state)
