"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, 2023)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from torch import Tensor

from ..tasks import Task
from ._aggregation import _LEVELS
from ._base import GramianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._gramian_linalg import gramian_array, rank_tolerance, to_weights

__all__ = ["AlignedMTL"]

ScaleMode = Literal["min", "median", "rmse"]
_MODES = ("min", "median", "rmse")


@register_balancer("aligned-mtl", "Aligned-MTL: the task gradients made orthogonal with equal norms (condition 1).",
                   BalancerInfo("Senushkin et al. 2023, CVPR (Aligned-MTL) Alg. 1", "gramian", _LEVELS))
class AlignedMTL(GramianBalancer):
    r"""Aligned-MTL of `Senushkin, Patakin, Kuznetsov & Konushin (2023), "Independent Component
    Alignment for Multi-Task Learning" <https://openaccess.thecvf.com/content/CVPR2023/html/Senushkin_Independent_Component_Alignment_for_Multi-Task_Learning_CVPR_2023_paper.html>`_
    (CVPR), Algorithm 1.

    The task gradients are replaced by the closest orthogonal system whose singular values all
    equal the smallest non-zero one, :math:`\hat J^\top = \sigma_R\, U V^\top` for
    :math:`J^\top = U \Sigma V^\top` (so the aligned system has condition number 1), and the update
    is :math:`\hat J^\top w`. On the Gramian, with the eigendecomposition
    :math:`G = V \Lambda V^\top` restricted to its :math:`R` non-zero eigenvalues
    (above ``T' · eps · λ_max``, the official code's rank rule, with ``eps`` the Gramian dtype's
    machine epsilon where the official code always takes float32's):

    .. math::
        B = \sqrt{\lambda_R}\; V \Lambda^{-1/2} V^\top, \qquad \alpha = B w, \qquad
        \Delta\theta = J^\top \alpha = \hat J^\top w ,

    with :math:`w = 1` (the official code sums the aligned gradients; torchjd's
    ``AlignedMTLWeighting`` defaults to :math:`w = 1/T`, a :math:`T` times smaller step).
    ``scale_mode`` chooses :math:`\lambda_R` (``"min"``: the smallest non-zero eigenvalue, the
    paper), the median (``"median"``; of an even count the lower middle one, as ``torch.median``
    in the official code) or the mean (``"rmse"``) eigenvalue, the official code's options.
    Rank-deficient Gramians: only the non-zero eigenpairs are used, as in the paper; all
    gradients zero: :math:`B = I`, an update of 0.

    The update conflicts with no task when no two gradients conflict (it is then
    :math:`\sigma_{\min} \sum_i g_i / \|g_i\|`); it is permutation-equivariant but its direction
    depends on the tasks' loss scales (the polar factor :math:`U V^\top` of :math:`J^\top` changes
    when a row of :math:`J` is scaled), so no scale claim is made.

    Aligned-MTL takes the gradients over all shared parameters (``level="exact"``); the paper's
    Aligned-MTL-UB takes them w.r.t. the shared representation (``level="representation"``).
    Stateless: an absent task is not part of :math:`J` (weight 0).

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (Aligned-MTL) or ``"representation"`` (Aligned-MTL-UB).
        scale_mode: ``"min"`` (the paper), ``"median"`` or ``"rmse"``.

    Examples:
        >>> import torch
        >>> from manytask.tasks import Regression
        >>> aligned = AlignedMTL([Regression("a"), Regression("b")])
        >>> gramian = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # orthogonal, norms 2, 1
        >>> aligned.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.5000, 1.0000], dtype=torch.float64)
    """

    stateful: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[Task], level: Level = "exact", scale_mode: ScaleMode = "min") -> None:
        super().__init__(tasks, level)
        if scale_mode not in _MODES:
            raise ValueError(f"The 'scale_mode' parameter of AlignedMTL must be one of {list(_MODES)}. "
                             f"Got {scale_mode!r} instead.")
        self.scale_mode = scale_mode

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        g = gramian_array(gramian, "AlignedMTL")
        lam, v = np.linalg.eigh(g)
        keep = lam > rank_tolerance(lam, gramian.dtype)
        if not keep.any():
            return to_weights(np.ones(g.shape[0]), gramian)
        lam, v = lam[keep], v[:, keep]
        lower_median = np.sort(lam)[(len(lam) - 1) // 2]  # torch.median's, as in the official code
        scale = {"min": lam.min(), "median": lower_median, "rmse": lam.mean()}[self.scale_mode]
        balance = np.sqrt(scale) * (v / np.sqrt(lam)) @ v.T
        return to_weights(balance.sum(axis=1), gramian)

    def extra_repr(self) -> str:
        return f"level={self.level!r}, scale_mode={self.scale_mode!r}"
