"""Euclidean projection onto the probability simplex (SDMGrad's and MoCo's weight updates)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["project_onto_simplex", "simplex_start"]


def project_onto_simplex(values: Tensor) -> Tensor:
    r"""The point of :math:`\{w \ge 0,\ \sum_i w_i = 1\}` closest to ``values`` ``[T]``.

    The sort-based algorithm of Duchi, Shalev-Shwartz, Singer & Chandra (2008), Fig. 1:
    :math:`w = \max(v - \theta, 0)` with :math:`\theta = (\sum_{j \le \rho} u_j - 1) / \rho`,
    :math:`u` the values sorted in decreasing order and :math:`\rho` the largest :math:`j` with
    :math:`u_j > (\sum_{k \le j} u_k - 1) / j` (a prefix of the :math:`j`, so it is counted).
    Batched, without a Python loop or a host synchronisation.
    """
    u = torch.sort(values, descending=True).values
    css = u.cumsum(0) - 1
    k = torch.arange(1, values.shape[0] + 1, dtype=values.dtype, device=values.device)
    rho = (u - css / k > 0).sum().clamp(min=1) - 1
    theta = css[rho] / (rho + 1).to(values.dtype)
    return (values - theta).clamp(min=0)


def simplex_start(stored: Tensor) -> Tensor:
    """The present tasks' stored weights ``[T']`` as a point of the simplex: renormalised to sum
    to 1 (they were projected over another set of tasks when some were absent), or uniform if
    they sum to 0 or are not finite."""
    total = stored.sum()
    uniform = torch.full_like(stored, 1.0 / stored.shape[0])
    ok = torch.isfinite(total) & (total > 0) & (stored >= 0).all()
    return torch.where(ok, stored / torch.where(ok, total, 1.0), uniform)
