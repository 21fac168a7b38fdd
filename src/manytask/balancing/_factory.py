"""The balancer registry."""

from __future__ import annotations

from collections.abc import Sequence

from .._registry import Registry
from ..tasks import Task
from ._aggregation import MGDA, PCGrad
from ._base import Balancer
from ._dwa import DWA
from ._ew import EW
from ._gradnorm import GradNorm
from ._uw import UW

__all__ = ["BALANCERS", "create_balancer"]

BALANCERS: Registry[Balancer] = Registry("balancer")
BALANCERS.register("ew", "Equal weights: the sum of the task losses.")(EW)
BALANCERS.register("uw", "Uncertainty weighting (Kendall, Gal & Cipolla 2018).")(UW)
BALANCERS.register("dwa", "Dynamic weight average (Liu, Johns & Davison 2019).")(DWA)
BALANCERS.register("gradnorm", "GradNorm (Chen et al. 2018).")(GradNorm)
BALANCERS.register("mgda", "MGDA min-norm gradient (Sener & Koltun 2018), exact or representation.")(MGDA)
BALANCERS.register("pcgrad", "PCGrad gradient surgery (Yu et al. 2020), exact or representation.")(PCGrad)


def create_balancer(name: str, tasks: Sequence[Task], **options: object) -> Balancer:
    """Build a registered balancer by name for ``tasks``."""
    return BALANCERS.create(name, tasks=tasks, **options)
