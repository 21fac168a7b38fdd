"""Soft parameter sharing: a column per task, kept close by a penalty on the columns' parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ..tasks import Task
from ._independent import Independent

__all__ = ["SoftSharing"]


class SoftSharing(Independent):
    r"""Soft parameter sharing: a column per task, pulled together by a penalty.

    Task ``t`` reads its own copy of the encoder, and :meth:`penalty` pulls the copies together,
    over every parameter tensor ``W`` of the encoder (stacked over tasks as ``W_1 … W_T``):

    - ``"l2"`` (Duong, Cohn, Bird & Cook, 2015, "Low Resource Dependency Parsing: Cross-lingual
      Parameter Sharing in a Neural Network Parser", Sec. 3: :math:`\lambda\|W_1 - W_2\|_F^2`
      for two parsers), for T tasks every pair: :math:`\lambda \sum_{t<s} \|W_t - W_s\|_F^2`;
    - ``"trace"`` (Yang & Hospedales, 2017, "Trace Norm Regularised Deep Multi-Task Learning",
      the matrix form, Eq. 5): :math:`\lambda \|[\operatorname{vec} W_1, …, \operatorname{vec} W_T]\|_*`,
      the sum of the singular values of the ``T × |W|`` matrix, low when the columns span few
      directions.

    Nothing is shared by construction (each column serves one task), so gradient-level
    balancing has no shared parameters to combine; use a loss weighting. With ``strength=0`` the
    model trains as :class:`Independent` columns.

    Args:
        encoder: The encoder each column copies (the first keeps its weights).
        tasks: The tasks; one column and one head each.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        penalty: ``"l2"`` or ``"trace"``.
        strength: :math:`\lambda`.

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = SoftSharing(MLP(4, (8,)), [Regression("a"), Regression("b")], strength=0.1)
        >>> bool(model.penalty() > 0)
        True
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 penalty: Literal["l2", "trace"] = "l2", strength: float = 1e-3) -> None:
        if penalty not in ("l2", "trace"):
            raise ValueError(f"SoftSharing penalty must be 'l2' or 'trace'. Got {penalty!r}.")
        if strength < 0:
            raise ValueError(f"SoftSharing strength must be >= 0. Got {strength}.")
        super().__init__(encoder, tasks, feature_dim)
        self.kind = penalty
        self.strength = float(strength)

    def penalty(self) -> Tensor | None:
        r""":math:`\lambda` times the distance of the columns (see the class docstring); None for ``strength=0``."""
        if not self.strength or len(self.task_names) < 2:
            return None
        columns = [list(column.parameters()) for column in self.encoders.values()]
        total: Tensor | None = None
        for tensors in zip(*columns):  # one parameter tensor of the encoder, over the tasks
            stacked = torch.stack(tensors).flatten(1)  # [T, |W|]
            if self.kind == "l2":  # sum over pairs t < s of |W_t - W_s|^2 = T * sum_t |W_t - mean|^2
                term = len(tensors) * (stacked - stacked.mean(0)).pow(2).sum()
            else:
                term = torch.linalg.matrix_norm(stacked, ord="nuc")
            total = term if total is None else total + term
        return None if total is None else self.strength * total
