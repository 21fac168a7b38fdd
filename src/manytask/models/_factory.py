"""The model registry: sharing schemes by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from .._registry import Registry
from ..tasks import Task
from ._adaptive import AdaptiveSharing
from ._base import MultiTaskModel
from ._branching import LearnedBranching
from ._cross_stitch import CrossStitch
from ._hard_sharing import HardSharing
from ._independent import Independent
from ._jmt import JointManyTask
from ._low_supervision import LowSupervision
from ._mmoe import MMoE
from ._mtan import MTAN
from ._ple import PLE
from ._relationship import RelationshipNetwork
from ._sluice import Sluice
from ._soft_sharing import SoftSharing
from ._tensor_factorisation import TensorFactorised

__all__ = ["MODELS", "create_model"]

MODELS: Registry[MultiTaskModel] = Registry("model")


@MODELS.register("hps")
def hard_parameter_sharing(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> MultiTaskModel:
    """Hard parameter sharing: a shared encoder and one head per task (Caruana 1993)."""
    return HardSharing(encoder, tasks, feature_dim)


def create_model(name: str, **options: object) -> MultiTaskModel:
    """Build a registered model by name (``encoder`` and ``tasks`` among the options)."""
    return MODELS.create(name, **options)


@MODELS.register("independent")
def independent(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> MultiTaskModel:
    """No sharing: one encoder copy per task (single-task baselines in one run)."""
    return Independent(encoder, tasks, feature_dim)


@MODELS.register("cross_stitch", details={"paper": "Misra et al. 2016, CVPR (Eq. 1)",
                                          "shares": "columns mixed by learned units after every stage"})
def cross_stitch(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 init: Sequence[float] = (0.9, 0.1), alpha_lr_scale: float = 1.0) -> MultiTaskModel:
    """Cross-stitch networks: a column per task, stage outputs mixed by learned linear units."""
    return CrossStitch(encoder, tasks, feature_dim, init, alpha_lr_scale)


@MODELS.register("mmoe", details={"paper": "Ma et al. 2018, KDD (Eqs. 5-6); gate dselect: Hazimeh et al. 2021",
                                  "shares": "experts (backbone copies) mixed by a softmax gate per task"})
def mmoe(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None, num_experts: int = 4,
         gate_in: int | None = None, gate: Literal["softmax", "dselect"] = "softmax", k: int | None = None,
         gamma: float | None = None, entropy: float = 0.0) -> MultiTaskModel:
    """Multi-gate mixture of experts: shared experts, one gate per task (softmax, or DSelect-k).

    ``k`` (default 2) and ``gamma`` (default 1.0) are DSelect-k's, set only with ``gate: dselect``."""
    return MMoE(encoder, tasks, feature_dim, num_experts, gate_in, gate, k, gamma, entropy)


@MODELS.register("soft", details={"paper": "Duong et al. 2015 (l2); Yang & Hospedales 2017 (trace)",
                                  "shares": "nothing; a penalty pulls the task columns together"})
def soft_sharing(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 penalty: Literal["l2", "trace"] = "l2", strength: float = 1e-3) -> MultiTaskModel:
    """Soft parameter sharing: a column per task and an l2 or trace-norm penalty between them."""
    return SoftSharing(encoder, tasks, feature_dim, penalty, strength)


@MODELS.register("low_supervision", details={"paper": "Søgaard & Goldberg 2016, ACL",
                                             "shares": "one backbone; a head reads the stage tasks.<name>.attach_at"})
def low_supervision(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> MultiTaskModel:
    """Low supervision: heads at different depths of one shared backbone (tasks.<name>.attach_at)."""
    return LowSupervision(encoder, tasks, feature_dim)


@MODELS.register("ple", details={"paper": "Tang et al. 2020, RecSys (CGC Eqs. 2-4, extraction network)",
                                 "shares": "shared and per-task experts per stage, per-task and shared gates"})
def ple(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None, shared_experts: int = 1,
        task_experts: int = 1, gate_in: int | None = None) -> MultiTaskModel:
    """Progressive Layered Extraction: an extraction level per backbone stage."""
    return PLE(encoder, tasks, feature_dim, shared_experts, task_experts, "stages", gate_in)


@MODELS.register("cgc", details={"paper": "Tang et al. 2020, RecSys (Eqs. 2-4)",
                                 "shares": "shared experts; each task also has its own, and its gate mixes both"})
def cgc(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None, shared_experts: int = 1,
        task_experts: int = 1, gate_in: int | None = None) -> MultiTaskModel:
    """Customized Gate Control: PLE's single level (the whole backbone is one expert)."""
    return PLE(encoder, tasks, feature_dim, shared_experts, task_experts, "one", gate_in)


@MODELS.register("mtan", details={"paper": "Liu, Johns & Davison 2019, CVPR (Eq. 1)",
                                  "shares": "one backbone; each task reads every stage through its own attention mask"})
def mtan(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> MultiTaskModel:
    """Multi-Task Attention Network: per-task soft-attention masks over the shared stages."""
    return MTAN(encoder, tasks, feature_dim)


@MODELS.register("relationship", details={"paper": "Long et al. 2017, NeurIPS (Multilinear Relationship Networks)",
                                          "shares": "lower stages; upper ones per task, a learned task covariance"})
def relationship(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None, task_stages: int = 1,
                 strength: float = 1e-3) -> MultiTaskModel:
    """Deep relationship networks: task-specific upper stages under a matrix-normal prior."""
    return RelationshipNetwork(encoder, tasks, feature_dim, task_stages, strength)


@MODELS.register("dmtrl", details={"paper": "Yang & Hospedales 2017, ICLR (Tucker and tensor-train forms)",
                                   "shares": "the factors of every weight; each task its own factor row"})
def dmtrl(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
          ranks: Sequence[int] | None = None, form: Literal["tucker", "tt"] = "tucker") -> MultiTaskModel:
    """Tensor-factorised networks: every task's weights from one factorised tensor."""
    return TensorFactorised(encoder, tasks, feature_dim, ranks, form)


@MODELS.register("jmt", details={"paper": "Hashimoto et al. 2017, EMNLP",
                                 "shares": "one backbone; stages pass up the lower tasks' label embeddings"})
def jmt(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
        successive: float = 0.0, shortcuts: bool = False) -> MultiTaskModel:
    """Joint Many-Task model: tasks at stages, lower predictions fed upwards, successive regularisation."""
    return JointManyTask(encoder, tasks, feature_dim, successive, shortcuts)


@MODELS.register("branching", details={"paper": "Guo, Lee & Ulbricht 2020, ICML (learning to branch)",
                                       "shares": "a tree of stage copies; parents chosen by Gumbel-softmax"})
def branching(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
              branches: Sequence[int] | None = None, temperature: float = 1.0) -> MultiTaskModel:
    """Learning to branch: a learned tree of stage copies, one leaf per task."""
    return LearnedBranching(encoder, tasks, feature_dim, branches, temperature)


@MODELS.register("adaptive", details={"paper": "Lu et al. 2017, CVPR (fully-adaptive feature sharing)",
                                      "shares": "all stages at first; widened top-down by task affinity"})
def adaptive(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None, branch_cost: float = 0.1,
             stage_costs: Sequence[float] | None = None, widen_every: int | None = None,
             affinity_examples: int = 2000) -> MultiTaskModel:
    """Fully-adaptive feature sharing: a shared network split top-down into groups of tasks whose errors agree."""
    return AdaptiveSharing(encoder, tasks, feature_dim, branch_cost, stage_costs, widen_every, affinity_examples)


@MODELS.register("sluice", details={"paper": "Ruder, Bingel, Augenstein & Søgaard 2019, AAAI",
                                    "shares": "columns mixed per subspace by alpha units; stages mixed by beta"})
def sluice(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None, subspaces: int = 2,
           init: Sequence[float] = (0.9, 0.1), orthogonality: float = 0.0) -> MultiTaskModel:
    """Sluice networks: subspaces mixed across tasks by alpha, stages mixed per task by beta."""
    return Sluice(encoder, tasks, feature_dim, subspaces, init, orthogonality)
