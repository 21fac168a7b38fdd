r"""Linear-chain conditional random fields over token potentials ``[B, L, C, C]``.

Lafferty, McCallum & Pereira (2001), "Conditional Random Fields", Eq. 1; as an output layer on
a BiLSTM, Huang, Xu & Yu (2015) and Lample et al. (2016), Eq. 1-2. The score of tags
:math:`y_1 \dots y_n` is :math:`\sum_i \psi_i(y_{i-1}, y_i)` with
:math:`\psi_i(p, c) = E_{i,c} + T_{p,c}` (:math:`\psi_1(\cdot, c) = E_{1,c} + s_c`: the
emissions, the transitions and the start scores), and :math:`P(y) = e^{\text{score}(y)} / Z`.

Padding positions carry potentials of exactly zero: they multiply every path's weight by the same
factor :math:`C` per position, so the likelihood, the marginals and the Viterbi path of the real
tokens are exact without sentence lengths. A token without a label is summed over (the
likelihood of the labelled tokens, the others marginalised).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["crf_log_likelihood_terms", "crf_marginals", "crf_potentials", "log_partition", "viterbi"]

_NEVER = -1e4  # a tag a constraint rules out: exp() is 0 in float32, and logsumexp stays finite


def crf_potentials(emissions: Tensor, transitions: Tensor, start: Tensor, padding: Tensor) -> Tensor:
    """``[B, L, C, C]`` potentials ``psi[b, i, prev, cur]`` from emissions ``[B, L, C]``,
    transitions ``[C, C]`` (``prev, cur``) and start scores ``[C]``; zero where ``padding [B, L]``."""
    potentials = emissions[:, :, None, :] + transitions
    first = (emissions[:, :1] + start)[:, :, None, :].expand(-1, -1, emissions.shape[-1], -1)
    potentials = torch.cat([first, potentials[:, 1:]], dim=1)
    return potentials.masked_fill(padding[:, :, None, None], 0.0)


def _forward(potentials: Tensor) -> list[Tensor]:
    """Forward log-scores ``alpha_i [B, C]`` for every position (sequential, for the marginals)."""
    alpha = potentials[:, 0, 0]
    alphas = [alpha]
    for i in range(1, potentials.shape[1]):
        alpha = torch.logsumexp(alpha[:, :, None] + potentials[:, i], dim=1)
        alphas.append(alpha)
    return alphas


def log_partition(potentials: Tensor, allowed: Tensor | None = None) -> Tensor:
    """``log Z [B]``, summed over the paths whose tags ``allowed [B, L, C]`` permits (None: all).

    ``Z = 1ᵀ M_1 M_2 ⋯ M_L 1`` with ``M_i = exp ψ_i`` (the first one's rows are all the start
    vector): the product is taken as a balanced tree of batched matrix products, ``log2 L``
    rounds instead of ``L`` sequential steps, each matrix scaled by its largest entry (kept in log
    space) so nothing overflows."""
    if allowed is not None:  # rule tags out before the shift, so that it is the largest allowed entry
        potentials = potentials.masked_fill(~allowed[:, :, None, :], _NEVER)
    shift = potentials.detach().amax(dim=(-2, -1), keepdim=True)  # any constant gives the same log Z
    mats = (potentials - shift).exp()
    total = shift.flatten(1).sum(1)
    while mats.shape[1] > 1:
        carry = mats[:, -1:] if mats.shape[1] % 2 else None
        even = mats[:, : mats.shape[1] - (carry is not None)]
        product = even[:, 0::2] @ even[:, 1::2]
        scale = product.detach().amax(dim=(-2, -1), keepdim=True)
        total = total + scale.log().flatten(1).sum(1)
        mats = product / scale
        if carry is not None:
            mats = torch.cat([mats, carry], dim=1)
    return total + mats[:, 0, 0].sum(-1).log()


def crf_log_likelihood_terms(potentials: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Per sentence, minus the log-probability of the labelled tags (``mask``), the unlabelled
    ones summed over: ``log Z - log Z(labelled tags)`` ``[B]`` (0 for a sentence with no label).

    When every token is labelled or padding, ``log Z(labelled tags)`` is the gold path's score
    (plus ``log C`` per padding position); otherwise it is a second, constrained partition."""
    tags = potentials.shape[-1]
    target = target.clamp(0, tags - 1)
    padding = potentials.detach().flatten(2).eq(0).all(-1)
    if bool((mask | padding).all()):
        previous = torch.cat([torch.zeros_like(target[:, :1]), target[:, :-1]], dim=1)  # row 0: the start
        index = (previous * tags + target)[:, :, None]
        gold = potentials.flatten(2).gather(2, index).squeeze(2).sum(1)
        gold = gold + padding.sum(1).to(gold.dtype) * math.log(tags)
        return log_partition(potentials) - gold
    allowed = torch.nn.functional.one_hot(target, tags).bool() | ~mask[..., None]
    both = log_partition(torch.cat([potentials, potentials]), torch.cat([torch.ones_like(allowed), allowed]))
    free, labelled = both.chunk(2)
    return free - labelled


def crf_marginals(potentials: Tensor) -> Tensor:
    """Log posterior marginals ``log P(y_i = c) [B, L, C]`` (forward-backward)."""
    alphas = _forward(potentials)
    beta = torch.zeros_like(alphas[-1])
    betas = [beta]
    for i in range(potentials.shape[1] - 1, 0, -1):
        beta = torch.logsumexp(potentials[:, i] + beta[:, None, :], dim=2)
        betas.append(beta)
    scores = torch.stack(alphas, 1) + torch.stack(betas[::-1], 1)
    return scores - torch.logsumexp(alphas[-1], dim=-1)[:, None, None]


def viterbi(potentials: Tensor) -> Tensor:
    """The most likely tags ``[B, L]`` (tags on padding: whatever the path carries on)."""
    score = potentials[:, 0, 0]
    pointers = []
    for i in range(1, potentials.shape[1]):
        score, best = (score[:, :, None] + potentials[:, i]).max(dim=1)
        pointers.append(best)
    tag = score.argmax(-1)
    path = [tag]
    for best in reversed(pointers):
        tag = best.gather(1, tag[:, None]).squeeze(1)
        path.append(tag)
    return torch.stack(path[::-1], dim=1)
