"""Balancing: how the per-task losses of a step become one update.

Loss weighting (EW, UW, DWA) weights the losses; GradNorm weights them from gradient norms at
the last shared layer; gradient aggregation (MGDA, PCGrad, any torchjd weighting) reads weights
off the Gramian of the per-task gradients, exactly over all shared parameters or at the shared
representation. A balancer never calls ``backward``: ``manytask.training.BackwardEngine`` does.
"""

from ._aggregation import MGDA, TorchJDWeighting
from ._aligned_mtl import AlignedMTL
from ._aux_schedule import AuxSchedule
from ._base import Balancer, GramianBalancer, JacobianBalancer, Level, LossBalancer, Needs
from ._cagrad import CAGrad
from ._config import ConFIG
from ._db_mtl import DBMTL
from ._dualproj import DualProj
from ._dwa import DWA
from ._ew import EW
from ._factory import BALANCERS, BalancerInfo, balancer_info, create_balancer, register_balancer
from ._fair_solver import fair_weights
from ._fairgrad import FairGrad
from ._famo import FAMO
from ._fixed import Fixed
from ._gls import GLS
from ._graddrop import GradDrop
from ._gradnorm import GradNorm
from ._gradvac import GradVac
from ._imtl_g import IMTLG
from ._imtl_l import IMTLL
from ._min_norm import min_norm_weights
from ._moco import MoCo
from ._nash_mtl import NashMTL
from ._pcgrad import PCGrad, pcgrad_weights
from ._rlw import RLW
from ._scalarizer import TorchJDScalarizer
from ._sdmgrad import SDMGrad
from ._si import SI
from ._stch import STCH
from ._upgrad import UPGrad
from ._uw import UW

__all__ = [
    "AlignedMTL",
    "CAGrad",
    "ConFIG",
    "DualProj",
    "GradVac",
    "IMTLG",
    "UPGrad",
    "BALANCERS",
    "DBMTL",
    "DWA",
    "EW",
    "FAMO",
    "GLS",
    "IMTLL",
    "MGDA",
    "RLW",
    "SDMGrad",
    "SI",
    "STCH",
    "UW",
    "AuxSchedule",
    "Balancer",
    "BalancerInfo",
    "FairGrad",
    "Fixed",
    "GradDrop",
    "GradNorm",
    "GramianBalancer",
    "JacobianBalancer",
    "Level",
    "LossBalancer",
    "MoCo",
    "NashMTL",
    "Needs",
    "PCGrad",
    "TorchJDScalarizer",
    "TorchJDWeighting",
    "balancer_info",
    "create_balancer",
    "fair_weights",
    "min_norm_weights",
    "pcgrad_weights",
    "register_balancer",
]
