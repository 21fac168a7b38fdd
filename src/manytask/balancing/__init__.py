"""Balancing: how the per-task losses of a step become one update.

Loss weighting (EW, UW, DWA, GradNorm) costs one backward pass; gradient aggregation (MGDA,
PCGrad) combines per-task gradients, exactly over all shared parameters or at the shared
representation.
"""

from ._aggregation import MGDA, GradientAggregation, Level, PCGrad
from ._base import Balancer, LossWeighting, StepInfo, forward_for
from ._dwa import DWA
from ._ew import EW
from ._factory import BALANCERS, create_balancer
from ._gradnorm import GradNorm
from ._uw import UW

__all__ = [
    "BALANCERS",
    "DWA",
    "EW",
    "MGDA",
    "UW",
    "Balancer",
    "GradNorm",
    "GradientAggregation",
    "Level",
    "LossWeighting",
    "PCGrad",
    "StepInfo",
    "create_balancer",
    "forward_for",
]
