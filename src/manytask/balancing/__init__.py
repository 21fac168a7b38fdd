"""Balancing: how the per-task losses of a step become one update.

Loss weighting (EW, UW, DWA) weights the losses; GradNorm weights them from gradient norms at
the last shared layer; gradient aggregation (MGDA, PCGrad, any torchjd weighting) reads weights
off the Gramian of the per-task gradients, exactly over all shared parameters or at the shared
representation. A balancer never calls ``backward``: ``manytask.training.BackwardEngine`` does.
"""

from ._aggregation import MGDA, PCGrad, TorchJDWeighting
from ._base import Balancer, GramianBalancer, JacobianBalancer, Level, LossBalancer, Needs
from ._dwa import DWA
from ._ew import EW
from ._factory import BALANCERS, BalancerInfo, balancer_info, create_balancer, register_balancer
from ._gradnorm import GradNorm
from ._min_norm import min_norm_weights
from ._scalarizer import TorchJDScalarizer
from ._uw import UW

__all__ = [
    "BALANCERS",
    "DWA",
    "EW",
    "MGDA",
    "UW",
    "Balancer",
    "BalancerInfo",
    "GradNorm",
    "GramianBalancer",
    "JacobianBalancer",
    "Level",
    "LossBalancer",
    "Needs",
    "PCGrad",
    "TorchJDScalarizer",
    "TorchJDWeighting",
    "balancer_info",
    "create_balancer",
    "min_norm_weights",
    "register_balancer",
]
