"""DSelect-k (Hazimeh et al., 2021): a differentiable gate that selects k of n experts."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..data import Inputs

__all__ = ["DSelectK", "smooth_step"]


def smooth_step(t: Tensor, gamma: float) -> Tensor:
    r"""Hazimeh et al.'s (2021) smooth-step function: 0 for :math:`t \le -\gamma/2`, 1 for :math:`t \ge \gamma/2`,
    and :math:`-\frac{2}{\gamma^3} t^3 + \frac{3}{2\gamma} t + \frac12` between (continuously
    differentiable, with zero slope at both ends, so a selector can reach exact 0 and 1)."""
    cubic = -2.0 / gamma**3 * t**3 + 1.5 / gamma * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), cubic))


class DSelectK(nn.Module):
    r"""A per-example DSelect-k gate over ``n = 2^m`` experts (Hazimeh, Zhao, Chowdhery,
    Sathiamoorthy, Chen, Mazumder, Hong & Chi, 2021, "DSelect-k: Differentiable Selection in the
    Mixture of Experts with Applications to Multi-Task Learning").

    Each of ``k`` single-expert selectors reads ``m`` numbers :math:`z` and puts
    :math:`r(z)_e = \prod_j S(z_j)^{b_j(e)} (1 - S(z_j))^{1 - b_j(e)}` on expert ``e``
    (:math:`b_j(e)` the ``j``-th bit of ``e``, :math:`S` the :func:`smooth_step`; their
    "single expert selector"): a
    distribution over the experts that is one expert exactly once every :math:`z_j` is outside
    :math:`(-\gamma/2, \gamma/2)`. The gate is :math:`\sum_i \operatorname{softmax}(\alpha)_i\, r(z^{(i)})`
    (their gate), so at most ``k`` experts get weight once the selectors settle. :math:`\alpha`
    and the :math:`z^{(i)}` are linear in the gate's input (their per-example gate), read by
    ``summary``.

    The paper's optional entropy regulariser, :math:`\lambda \sum_i H(r(z^{(i)}))` with
    :math:`H(r) = -\sum_e r_e \log r_e`, pushes each selector to one expert sooner: with
    ``entropy`` :math:`= \lambda > 0` a training forward keeps it, averaged over the examples,
    in :attr:`regulariser` (None otherwise), which :class:`~manytask.models.MMoE` returns as its
    ``penalty()``. (Written from the paper's description of the term; its full text was not
    reachable here, so no equation number is cited.)

    Args:
        summary: A module mapping the inputs to ``k * (m + 1)`` numbers (see ``gate_summary``).
        num_experts: ``n``, a power of 2 (at least 2).
        k: Number of selectors.
        gamma: Width of the smooth step's ramp.
        entropy: :math:`\lambda`, the weight of the selectors' entropy (0: none).
    """

    codes: Tensor  # [n, m] buffer: expert e's bits

    def __init__(self, summary: nn.Module, num_experts: int, k: int, gamma: float = 1.0,
                 entropy: float = 0.0) -> None:
        super().__init__()
        if not entropy >= 0:
            raise ValueError(f"DSelect-k's entropy weight must be >= 0. Got {entropy}.")
        self.entropy = entropy
        self.regulariser: Tensor | None = None  # the last training forward's entropy term
        bits = int(math.log2(num_experts)) if num_experts >= 2 else 0
        if num_experts < 2 or 2**bits != num_experts:
            raise ValueError(f"DSelect-k needs a power of 2 experts (2, 4, 8, ...). Got {num_experts}.")
        if k < 1 or gamma <= 0:
            raise ValueError(f"DSelect-k needs k >= 1 and gamma > 0. Got k={k}, gamma={gamma}.")
        self.summary, self.k, self.bits, self.gamma = summary, k, bits, gamma
        codes = torch.tensor([[(e >> j) & 1 for j in range(bits)] for e in range(num_experts)], dtype=torch.float32)
        self.register_buffer("codes", codes, persistent=False)  # [n, m]: expert e's bits
        self._start_inside_the_ramp()

    def _start_inside_the_ramp(self) -> None:
        """Draw the selectors' part of the summary's last layer from U(-gamma/100, gamma/100), as the
        authors' code does (``z_initializer``): every z starts inside the smooth step's ramp, where
        it has a gradient. A default draw (U(±1/sqrt(in)) for a linear layer, N(0, 1) for an
        embedding bag) puts about 40 % of the bits past ±gamma/2 at the start, where S' = 0."""
        last = [m for m in self.summary.modules() if isinstance(m, (nn.Linear, nn.EmbeddingBag))]
        if not last:
            return  # a summary of the caller's own: its initialisation is theirs
        z, bound = self.k * self.bits, self.gamma / 100
        with torch.no_grad():
            layer = last[-1]
            if isinstance(layer, nn.Linear):
                layer.weight[:z].uniform_(-bound, bound)
                if layer.bias is not None:
                    layer.bias[:z].uniform_(-bound, bound)
            else:
                layer.weight[:, :z].uniform_(-bound, bound)
                if layer.padding_idx is not None:
                    layer.weight[layer.padding_idx].zero_()

    @staticmethod
    def width(num_experts: int, k: int) -> int:
        """How many numbers the summary must give: ``k`` selectors of ``m`` bits, and ``k`` weights."""
        return k * (int(math.log2(max(num_experts, 2))) + 1)

    def selectors(self, z: Tensor) -> Tensor:
        """``[..., k, m]`` -> ``[..., k, n]``: each selector's distribution over the experts."""
        s = smooth_step(z, self.gamma)[..., None, :]  # [..., k, 1, m]
        codes = self.codes.to(s.dtype)
        return (codes * s + (1 - codes) * (1 - s)).prod(-1)

    def forward(self, inputs: Inputs) -> Tensor:
        numbers = self.summary(inputs)  # [B, k * (m + 1)]
        z = numbers[:, : self.k * self.bits].unflatten(1, (self.k, self.bits))
        alpha = torch.softmax(numbers[:, self.k * self.bits:], dim=-1)  # [B, k]
        selected = self.selectors(z)  # [B, k, n]
        self.regulariser = None
        if self.training and self.entropy > 0:
            # r log r with log r floored at the dtype's tiniest number: 0 at the exact zeros a settled
            # selector reaches, and a finite gradient there (xlogy's, log r + 1, is -inf at 0)
            log = torch.log(selected.clamp_min(torch.finfo(selected.dtype).tiny))
            self.regulariser = -self.entropy * (selected * log).sum((1, 2)).mean()
        return (alpha[..., None] * selected).sum(1)  # [B, n]
