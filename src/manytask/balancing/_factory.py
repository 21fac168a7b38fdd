"""The balancer registry, with what each method needs and where it comes from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._registry import Registry
from ..tasks import Task
from ._aggregation import MGDA, PCGrad
from ._base import Balancer
from ._dwa import DWA
from ._ew import EW
from ._gradnorm import GradNorm
from ._uw import UW

__all__ = ["BALANCERS", "BalancerInfo", "create_balancer"]


@dataclass(frozen=True)
class BalancerInfo:
    """Registry metadata of a balancer, shown by ``manytask list``.

    Args:
        paper: Authors, year and title.
        needs: ``losses``, ``gramian`` or ``jacobian``.
        levels: Where per-task gradients can be taken (``-`` for loss weightings).
        stateful: Whether it keeps state between steps.
        extra: The pip extra it needs, if any.
    """

    paper: str
    needs: str
    levels: str = "-"
    stateful: bool = False
    extra: str = ""

    def details(self) -> dict[str, str]:
        out = {"paper": self.paper, "needs": self.needs, "levels": self.levels,
               "stateful": "yes" if self.stateful else "no"}
        return out | ({"extra": self.extra} if self.extra else {})


BALANCERS: Registry[Balancer] = Registry("balancer")


def _register(name: str, summary: str, info: BalancerInfo, factory: type[Balancer]) -> None:
    BALANCERS.register(name, summary, info.details())(factory)


_register("ew", "Equal weights: the sum of the task losses.",
          BalancerInfo("Caruana 1997, Multitask Learning", "losses"), EW)
_register("uw", "Uncertainty weighting: learned homoscedastic noise per task.",
          BalancerInfo("Kendall, Gal & Cipolla 2018, CVPR", "losses", stateful=True), UW)
_register("dwa", "Dynamic weight average: weights from the epochs' loss ratios.",
          BalancerInfo("Liu, Johns & Davison 2019, CVPR (MTAN) Eq. 7", "losses", stateful=True), DWA)
_register("gradnorm", "GradNorm: equal gradient norms at the last shared layer.",
          BalancerInfo("Chen et al. 2018, ICML", "gramian", "last_shared", stateful=True), GradNorm)
_register("mgda", "MGDA: the min-norm point of the task gradients' convex hull, solved exactly.",
          BalancerInfo("Sener & Koltun 2018, NeurIPS Eq. 3", "gramian", "exact, representation"), MGDA)
_register("pcgrad", "PCGrad: project away conflicting gradient components.",
          BalancerInfo("Yu et al. 2020, NeurIPS Alg. 1", "gramian", "exact, representation"), PCGrad)


def create_balancer(name: str, tasks: Sequence[Task], **options: object) -> Balancer:
    """Build a registered balancer by name for ``tasks``."""
    return BALANCERS.create(name, tasks=tasks, **options)
