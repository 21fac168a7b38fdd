"""ConFIG (Liu, Chu, Thuerey, 2024)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor

from ._aggregation import _LEVELS
from ._base import GramianBalancer
from ._factory import BalancerInfo, register_balancer
from ._gramian_linalg import gradient_norms, gramian_array, psd_pinv, to_weights

__all__ = ["ConFIG"]


@register_balancer("config", "ConFIG: the direction with equal cosine to every task gradient, length of their sum.",
                   BalancerInfo("Liu, Chu & Thuerey 2024, arXiv 2408.11104 (ConFIG) Eq. 2", "gramian", _LEVELS,
                                scale="direction"))
class ConFIG(GramianBalancer):
    r"""Conflict-free inverse gradients of `Liu, Chu & Thuerey (2024), "ConFIG: Towards
    Conflict-free Training of Physics Informed Neural Networks" <https://arxiv.org/abs/2408.11104>`_,
    Eq. 2.

    With unit gradients :math:`u_i = g_i / \|g_i\|` as the rows of :math:`U`:

    .. math::
        \tilde d = U^{+} 1, \qquad d_u = \tilde d / \|\tilde d\|, \qquad
        \Delta\theta = \Big(\sum_i g_i^\top d_u\Big)\, d_u ,

    the direction with equal projections on every unit gradient, scaled to the sum of the
    gradients' projections on it. Everything is an inner product: with
    :math:`D = \mathrm{diag}(\|g_i\|)`, :math:`U U^\top = D^{-1} G D^{-1}` and
    :math:`U^{+} = U^\top (U U^\top)^{+}`, so :math:`\tilde d = J^\top c` with
    :math:`c = D^{-1} (D^{-1} G D^{-1})^{+} 1`, :math:`\|\tilde d\|^2 = c^\top G c`, and the weights
    are :math:`\frac{1^\top G c}{c^\top G c}\, c`. The pseudo-inverse drops eigenvalues of
    :math:`D^{-1} G D^{-1}` below ``T' · eps(dtype) · λ_max`` (on the Gramian the singular values of
    :math:`U` are squared, so this is :math:`\sqrt{T' \epsilon}` relative to :math:`\|U\|`); a zero
    gradient gets weight 0 (torchjd sets its unit row to 0). torchjd's ``ConFIG`` is an
    aggregator of the Jacobian only; this is the same update from the Gramian.

    Linearly independent gradients: the update has the same positive cosine with every task
    gradient (no conflict), and scaling a task's loss leaves its direction unchanged (only the
    length :math:`\sum_i g_i^\top d_u` changes). Linearly dependent gradients: :math:`U^{+}1` is the
    least-squares solution and neither property is guaranteed (the length can be negative).

    The paper takes the gradients over all network parameters (``level="exact"`` here: all shared
    parameters); ``level="representation"`` uses the gradients w.r.t. the shared features.
    Stateless: an absent task is not part of :math:`J` (weight 0). (The paper's momentum variant,
    M-ConFIG, which updates one task's gradient per step, is not this balancer.)

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.

    Examples:
        >>> import torch
        >>> from manytask.tasks import Regression
        >>> config = ConFIG([Regression("a"), Regression("b")])
        >>> gramian = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # orthogonal, norms 2, 1
        >>> config.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.7500, 1.5000], dtype=torch.float64)
    """

    stateful: ClassVar[bool] = False

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        g = gramian_array(gramian, "ConFIG")
        t = g.shape[0]
        norms = gradient_norms(g)
        inverse = np.divide(1.0, norms, out=np.zeros(t), where=norms > 0)
        units = g * inverse[:, None] * inverse[None, :]
        c = inverse * (psd_pinv(units, gramian.dtype) @ np.ones(t))
        squared_norm = float(c @ g @ c)
        if not squared_norm > 0.0:  # every gradient is 0
            return to_weights(np.zeros(t), gramian)
        return to_weights(float(np.ones(t) @ g @ c) / squared_norm * c, gramian)
