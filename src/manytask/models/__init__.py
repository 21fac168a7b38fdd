"""Sharing schemes (``MultiTaskModel``) and the encoders they share."""

from ._adaptive import AdaptiveSharing, AdaptiveWidening, task_affinity
from ._backbone import Backbone, FeatureInfo, as_backbone, last_weights, output_info, reinitialise, task_columns
from ._base import MultiTaskModel
from ._branching import LearnedBranching
from ._cross_stitch import CrossStitch, CrossStitchUnit
from ._dselect import DSelectK, smooth_step
from ._encoders import ENCODERS, MLP, BiLSTM, ConvNet, Transformer, create_encoder, padding_mask
from ._factory import MODELS, create_model
from ._hard_sharing import HardSharing
from ._heads import GradientReversal, make_head
from ._independent import Independent
from ._jmt import JointManyTask
from ._low_supervision import LowSupervision
from ._mmoe import MMoE
from ._mtan import MTAN
from ._ple import PLE
from ._relationship import RelationshipNetwork, task_covariance
from ._sluice import Sluice
from ._soft_sharing import SoftSharing
from ._tensor_factorisation import TensorFactorised, tensor_train, tucker

__all__ = [
    "Backbone",
    "FeatureInfo",
    "GradientReversal",
    "as_backbone",
    "make_head",
    "output_info",
    "reinitialise",
    "task_columns",
    "last_weights",
    "CrossStitch",
    "CrossStitchUnit",
    "DSelectK",
    "smooth_step",
    "LowSupervision",
    "MMoE",
    "MTAN",
    "PLE",
    "RelationshipNetwork",
    "task_covariance",
    "SoftSharing",
    "Sluice",
    "TensorFactorised",
    "tucker",
    "tensor_train",
    "ENCODERS",
    "MLP",
    "MODELS",
    "BiLSTM",
    "ConvNet",
    "HardSharing",
    "Independent",
    "JointManyTask",
    "LearnedBranching",
    "AdaptiveSharing",
    "AdaptiveWidening",
    "task_affinity",
    "MultiTaskModel",
    "Transformer",
    "padding_mask",
    "create_encoder",
    "create_model",
]
