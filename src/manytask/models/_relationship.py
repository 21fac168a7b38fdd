"""Deep Relationship Networks (Long, Cao, Wang & Yu, 2017): shared lower stages, task-specific
upper stages under a matrix-normal prior whose task covariance is learned in closed form."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import Backbone, as_backbone, last_weights, output_info, task_columns
from ._base import MultiTaskModel
from ._heads import make_head

__all__ = ["RelationshipNetwork", "task_covariance"]


def task_covariance(weights: Tensor, eps: float = 1e-6) -> Tensor:
    r"""The task covariance that minimises :math:`\operatorname{tr}(W^\top \Omega^{-1} W)` over
    :math:`\Omega \succ 0,\ \operatorname{tr}\Omega = 1`:
    :math:`\Omega = (W W^\top)^{1/2} / \operatorname{tr}\big((W W^\top)^{1/2}\big)` (the Ω-step of
    Zhang & Yeung's 2010 alternating method; Long et al. 2017 update their tensor-normal modes by
    the flip-flop maximum-likelihood estimate instead), for ``weights`` ``[T, P]``
    (one row per task). ``eps`` is added to the eigenvalues of :math:`W W^\top` so that the result
    stays invertible.
    """
    gram = weights.double() @ weights.double().T
    values, vectors = torch.linalg.eigh(gram)
    root = (vectors * values.clamp(min=0).add(eps).sqrt()) @ vectors.T
    return (root / root.trace()).to(weights.dtype)


class RelationshipNetwork(MultiTaskModel):
    r"""Deep relationship networks: task-specific upper stages under a learned task covariance.

    Long, Cao, Wang & Yu (2017), "Learning Multiple Tasks with Multilinear Relationship Networks"
    (NeurIPS; "Deep Relationship Networks" in its first version): the lower stages of the
    backbone are shared, the last ``task_stages`` are copied per task, and the copies' weights
    carry a matrix-normal prior with a learned task covariance :math:`\Omega` (``T × T``, one per weight tensor):

    .. math::
        \text{penalty} = \lambda \sum_{\ell} \operatorname{tr}\big(W_\ell^\top \Omega_\ell^{-1} W_\ell\big),

    :math:`W_\ell` the ``T × |W|`` matrix of that weight over the tasks. As in the paper the model
    alternates: each training-mode :meth:`penalty` first sets every :math:`\Omega_\ell` to its
    closed-form minimiser (:func:`task_covariance`) from the current weights, then returns the
    penalty for the gradient step. The paper's prior is tensor-normal (feature, class and task
    covariances, updated by flip-flop); this is its task mode alone (the others identity), which
    is the matrix-normal prior of multi-task relationship learning (Zhang & Yeung 2010), with its
    trace-normalised covariance step. The paper also puts the classifier layer under the prior;
    here the heads are outside it (tasks' heads differ in shape, e.g. their number of classes), so
    ``task_stages`` sets which layers are related.
    :meth:`task_correlation` reads the learned relationships.

    Args:
        encoder: The backbone (at least ``task_stages`` stages; a plain module is one stage).
        tasks: The tasks.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        task_stages: How many last stages are task-specific (the paper: the fully connected layers).
        strength: :math:`\lambda`.

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = RelationshipNetwork(MLP(4, (8, 6)), [Regression("a"), Regression("b")])
        >>> tuple(model(torch.randn(5, 4))["a"].shape)
        (5, 1)
        >>> tuple(model.task_correlation().shape)
        (2, 2)
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 task_stages: int = 1, strength: float = 1e-3) -> None:
        super().__init__()
        self._heads_at_the_top(tasks, encoder)
        backbone = as_backbone(encoder, output_info(encoder, feature_dim))
        if not 1 <= task_stages <= len(backbone.stages):
            raise ValueError(f"RelationshipNetwork task_stages must be between 1 and the backbone's "
                             f"{len(backbone.stages)} stage(s). Got {task_stages}.")
        if strength < 0:
            raise ValueError(f"RelationshipNetwork strength must be >= 0. Got {strength}.")
        split = len(backbone.stages) - task_stages
        infos = backbone.feature_info
        self.task_names = tuple(t.name for t in tasks)
        self.shared = Backbone(list(backbone.stages[:split]), infos[:split]) if split else None
        upper = Backbone(list(backbone.stages[split:]), infos[split:])
        self.columns = task_columns(upper, self.task_names)
        self.heads = nn.ModuleDict({t.name: make_head(t, infos[-1]) for t in tasks})
        self.strength = float(strength)
        # (parameter name in a column, its covariance buffer): every weight matrix of the upper stages
        self._prior = [(n, "omega_" + n.replace(".", "_")) for n, p in upper.named_parameters() if p.ndim >= 2]
        for _, buffer in self._prior:
            self.register_buffer(buffer, torch.eye(len(tasks)) / len(tasks))

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        features = self.shared(inputs) if self.shared is not None else inputs
        return {t: self.heads[t](self.columns[t](features)) for t in tasks}

    def penalty(self) -> Tensor | None:
        if not self.strength or not self._prior:
            return None
        columns = [dict(column.named_parameters()) for column in self.columns.values()]
        total: Tensor | None = None
        for name, buffer in self._prior:
            weights = torch.stack([column[name] for column in columns]).flatten(1)  # [T, |W|]
            if self.training:  # the closed-form step of the alternation, before the gradient step
                with torch.no_grad():
                    getattr(self, buffer).copy_(task_covariance(weights.detach()))
            omega = getattr(self, buffer).to(weights.dtype)
            term = (torch.linalg.solve(omega, weights) * weights).sum()  # tr(W^T Omega^-1 W)
            total = term if total is None else total + term
        return None if total is None else self.strength * total

    def task_correlation(self) -> Tensor:
        """``[T, T]``: the learned task covariances averaged over the prior's weights, as
        correlations (1 on the diagonal; near 0 for unrelated tasks, near ±1 for related ones)."""
        covariance = torch.stack([getattr(self, buffer) for _, buffer in self._prior]).mean(0)
        scale = covariance.diagonal().sqrt()
        return covariance / (scale[:, None] * scale[None, :])

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices of the last shared stage's last layer (:func:`last_weights`)."""
        if self.shared is None:
            raise ValueError("RelationshipNetwork with task_stages equal to the backbone's stages shares no layer; "
                             "lower task_stages, or use a loss weighting other than GradNorm.")
        return last_weights(self.shared)

    def diagnostics(self) -> dict[str, float]:
        """The learned task correlations, ``corr/<task>/<task>`` for each pair (up to 64 pairs),
        logged at every evaluation."""
        names = self.task_names
        pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
        if not self._prior or len(pairs) > 64:
            return {}
        correlation = self.task_correlation()
        return {f"corr/{names[i]}/{names[j]}": float(correlation[i, j]) for i, j in pairs}

    def shared_modules(self) -> list[nn.Module]:
        return [self.shared] if self.shared is not None else []

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.shared.parameters() if self.shared is not None else iter(())

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        name = self._check_tasks([name])[0]
        yield from self.columns[name].parameters()
        yield from self.heads[name].parameters()
