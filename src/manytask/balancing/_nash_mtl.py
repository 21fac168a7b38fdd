"""Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, 2022)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._aggregation import _LEVELS
from ._base import GramianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._fair_solver import check_solver_options, fair_weights

__all__ = ["NashMTL"]


@register_balancer("nash-mtl", "Nash-MTL: the Nash bargaining solution G α = 1/α of the task gradients.",
                   BalancerInfo("Navon et al. 2022, ICML (Nash-MTL) Sec. 3, Alg. 1", "gramian", _LEVELS,
                                stateful=True, scale="invariant"))
class NashMTL(GramianBalancer):
    r"""Nash-MTL of `Navon et al. (2022), "Multi-Task Learning as a Bargaining Game"
    <https://arxiv.org/abs/2202.01017>`_ (ICML), Sec. 3 and Algorithm 1.

    The update :math:`\Delta\theta = \sum_i \alpha_i g_i` is the Nash bargaining solution:
    :math:`\alpha > 0` solves

    .. math::
        G \alpha = 1/\alpha \quad (\text{elementwise}), \qquad G = J J^\top,

    i.e. :math:`g_i^\top \Delta\theta = 1/\alpha_i` for every task — no task's loss increases to
    first order, and :math:`\|\Delta\theta\|^2 = \alpha^\top G \alpha = T`. It is the minimiser of
    the strictly convex :math:`\tfrac12 \alpha^\top G \alpha - \sum_i \log \alpha_i`, solved here by
    damped Newton in float64 (:func:`~manytask.balancing.fair_weights` with
    :math:`\alpha_{\text{fair}} = 1`, shared with FairGrad) instead of the paper's sequence of
    convex programs (cvxpy/ECOS): the same solution, to the stated ``tol``, up to the regulariser
    below. Scaling one task's gradient
    by :math:`c` divides its weight by :math:`c` and leaves the update unchanged, and (since
    :math:`\|\Delta\theta\| = \sqrt T`) the clipping below does not change that.

    Practical details of the paper's Algorithm 1 and code: the weights are recomputed every
    ``update_weights_every`` calls (counted by this balancer; reused in between), and the update
    is clipped to norm ``max_norm`` (the official code clips the shared parameters' gradient to
    1.0; here the weights are scaled so that :math:`\|\sum_i \alpha_i g_i\| \le` ``max_norm``,
    with the norm read off the Gramian — at ``level="representation"`` that is the norm of the
    update of the shared features). Every Gramian, not only a singular one, is regularised by
    :math:`\epsilon\,\mathrm{diag}(G)`, relative to each task's own squared gradient norm so the
    scale invariance holds exactly: the update moves from the exact solution by about
    :math:`10^{-4}` (relative) at condition number :math:`10^4`-:math:`10^6`; at :math:`10^8` by
    0.1 % for half of random Gramians but by up to 90 % for a tenth of them, and a quarter of those
    updates then conflict slightly with a task (cosine about :math:`-10^{-3}`; the exact solution
    never conflicts), so lower ``eps`` (or set 0) for ill-conditioned problems; see
    ``fair_weights`` for what it does with opposite gradients and zero gradients (weight 0), and
    for the errors raised when Newton does not converge.

    The paper takes :math:`G` over all shared parameters (``level="exact"``);
    ``level="representation"`` uses the Gramian of the gradients w.r.t. the shared features.

    State and absent tasks: the last solution :math:`\alpha` (dense over all tasks) is the warm
    start of the next solve and the weights reused between solves; only the present tasks'
    entries are read and written (a task with a zero gradient keeps its entry). Weights are reused
    only for the set of present tasks they were solved for: a call whose present tasks differ
    from the last solve's solves again (the bargaining solution, and each weight's scale, depend
    on the whole set), so with partial labels that change the set every step every call solves.
    The call counter counts every call.

    .. warning:: Stateful: ``reset()`` sets the weights back to 1 and the counter to 0.

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.
        max_norm: Maximum norm of the update (0: no clipping). The paper's experiments: 1.0.
        update_weights_every: Solve every this many calls; reuse the weights in between.
        eps: Relative Tikhonov term :math:`\epsilon` (see above).
        tol: Relative tolerance on each equation :math:`(G\alpha)_i = 1/\alpha_i`.
        max_iter: Maximum number of Newton steps per solve.

    Examples:
        >>> from manytask.tasks import Regression
        >>> nash = NashMTL([Regression("a"), Regression("b")], max_norm=0.0)
        >>> gramian = torch.tensor([[4.0, 0.0], [0.0, 1.0]])  # orthogonal, norms 2 and 1
        >>> nash.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.5000, 1.0000])
    """

    weights: Tensor
    calls: Tensor
    solved_for: Tensor
    stateful: ClassVar[bool] = True

    def __init__(self, tasks: Sequence[Task], level: Level = "exact", max_norm: float = 1.0,
                 update_weights_every: int = 1, eps: float = 1e-6, tol: float = 1e-9, max_iter: int = 100) -> None:
        super().__init__(tasks, level)
        check_solver_options("NashMTL", eps, tol, max_iter, max_norm)
        if not (isinstance(update_weights_every, int) and update_weights_every >= 1):
            raise ValueError("The 'update_weights_every' parameter of NashMTL must be an integer >= 1. "
                             f"Got {update_weights_every!r} instead.")
        self.max_norm = max_norm
        self.update_weights_every = update_weights_every
        self.eps, self.tol, self.max_iter = eps, tol, max_iter
        self.register_buffer("weights", torch.ones(len(tasks)))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("solved_for", torch.zeros(len(tasks), dtype=torch.bool))  # present at the last solve

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        index = present.nonzero().flatten().to(self.weights.device)
        self._check(gramian, "gramian", (index.numel(), index.numel()))
        present = present.to(self.solved_for)
        if int(self.calls) % self.update_weights_every == 0 or not torch.equal(present, self.solved_for):
            self.solved_for.copy_(present)
            alpha = fair_weights(gramian, 1.0, init=self.weights[index], eps=self.eps, tol=self.tol,
                                 max_iter=self.max_iter, owner="NashMTL", step=step)
            solved = alpha.to(self.weights) > 0  # a zero gradient's weight (0) is not stored
            self.weights[index[solved]] = alpha.to(self.weights)[solved]
        else:
            alpha = self.weights[index].to(gramian)
        self.calls += 1
        if self.max_norm > 0:
            norm = (alpha.double() @ gramian.double() @ alpha.double()).clamp(min=0).sqrt()
            alpha = alpha * (self.max_norm / norm).clamp(max=1.0).to(alpha)
        return alpha

    def reset(self) -> None:
        self.weights.fill_(1.0)
        self.calls.zero_()
        self.solved_for.zero_()

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:  # type: ignore[override]
        """Checkpoints written before ``solved_for`` existed resume with a solve at the next call."""
        state_dict.setdefault(f"{prefix}solved_for", torch.zeros_like(self.solved_for))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return (f"level={self.level!r}, max_norm={self.max_norm}, update_weights_every={self.update_weights_every}, "
                f"eps={self.eps}, tol={self.tol}, max_iter={self.max_iter}")
