"""The balancer registry, with what each method needs and what it claims.

Each method's module registers itself with :func:`register_balancer`; adding a method is one
module (plus its import in ``balancing/__init__.py``) and one test file. The claims in
:class:`BalancerInfo` are checked for every registered method by ``tests/contract``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .._registry import Registry
from ..tasks import Task
from ._base import Balancer, Level, Needs

__all__ = ["BALANCERS", "BalancerInfo", "balancer_info", "create_balancer", "register_balancer"]

B = TypeVar("B", bound=type[Balancer])


@dataclass(frozen=True)
class BalancerInfo:
    """Registry metadata of a balancer, shown by ``manytask list`` and checked by the contract tests.

    Args:
        paper: Authors, year, venue and the equation implemented.
        needs: ``losses``, ``gramian`` or ``jacobian``.
        levels: Where per-task gradients can be taken, default first (empty for loss weightings).
        stateful: Whether it keeps state between steps.
        extra: The pip extra it needs, if any.
        equivariant: Permuting the tasks permutes the weights (and leaves the update unchanged).
        scale: What multiplying one task's loss by ``c > 0`` does to the shared update:
            ``"invariant"`` (unchanged), ``"direction"`` (same direction) or ``""`` (no claim).
        nonconflicting: When no two task gradients conflict, the update conflicts with none.
        random: Draws from the global torch RNG (restored by checkpoints).
        example: Options for the three tasks ``a, b, c`` of the docs and contract tests.
    """

    paper: str
    needs: Needs
    levels: tuple[Level, ...] = ()
    stateful: bool = False
    extra: str = ""
    equivariant: bool = True
    scale: Literal["invariant", "direction", ""] = ""
    nonconflicting: bool = True
    random: bool = False
    example: Mapping[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, str]:
        out = {"paper": self.paper, "needs": self.needs, "levels": ", ".join(self.levels) or "-",
               "stateful": "yes" if self.stateful else "no"}
        return out | ({"extra": self.extra} if self.extra else {})


BALANCERS: Registry[Balancer] = Registry("balancer")
_INFO: dict[str, BalancerInfo] = {}


def register_balancer(name: str, summary: str, info: BalancerInfo) -> Callable[[B], B]:
    """Class decorator registering a balancer under ``name`` (its paper's acronym, lower case)."""

    def decorator(cls: B) -> B:
        BALANCERS.register(name, summary, info.details())(cls)
        _INFO[name] = info
        return cls

    return decorator


def balancer_info(name: str) -> BalancerInfo:
    """The :class:`BalancerInfo` of a registered balancer."""
    BALANCERS.get(name)  # an unknown name raises with the closest matches
    return _INFO[name]


def create_balancer(name: str, tasks: Sequence[Task], **options: object) -> Balancer:
    """Build a registered balancer by name for ``tasks``."""
    return BALANCERS.create(name, tasks=tasks, **options)
