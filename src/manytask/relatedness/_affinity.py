"""Gradient diagnostics and lookahead affinity, measured while training (a callback)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _NormBase

from ..models import MultiTaskModel
from ..training import Callback, batched_vjps
from ._matrix import TaskMatrix
from ._models import correlation_matrix

if TYPE_CHECKING:
    from ..training import Trainer, TrainResult

__all__ = ["TaskAffinity"]

log = logging.getLogger(__name__)

_SUMS = ("cos_sum", "pairs", "conflicts", "ratio_sum", "affinity_sum", "affinity_count",
         "norm_sum", "norm_count", "recent_conflicts", "recent_pairs")


class TaskAffinity(Callback):
    """Which tasks help which, measured every ``every`` steps on that step's batch.

    Before the update:

    - each present task's gradient ``g_i`` of its mean loss with respect to the shared parameters
      (one batched vector-Jacobian product through the step's own graph, whatever route the
      balancer takes; for an adversarial task, the gradient its reversal layer lets through);
      their pairwise cosines, whether they conflict (cosine < 0, Yu et al. 2020's conflicting
      gradients), and their norm ratios. A pair is measured on a step where both tasks are present
      and both gradients are non-zero (a zero one has no direction to compare);
    - with ``lookahead``, the lookahead inter-task affinity of Fifty et al. 2021 (Eq. 3):
      ``Z[i, j] = 1 - L_j(θ_s - η g_i) / L_j(θ_s)``, the relative drop of task ``j``'s loss on the
      batch after a plain gradient step on task ``i`` alone (Eq. 2), each shared parameter moved
      at its own optimizer group's learning rate η; the losses are taken in eval mode (no dropout,
      batch-norm statistics untouched), and the parameters are restored exactly afterwards.

    Averaged over the measured steps where both tasks are present, they are written at the end
    as ``relatedness/gradient_cosine``, ``gradient_conflict``, ``gradient_norm_ratio`` and
    ``tag_affinity`` (``.csv`` and ``.json``); ``metrics.csv`` gets, per evaluation, the share of
    conflicting pairs (``grad/conflict``) and each task's mean gradient norm
    (``grad_norm/<task>``) since the previous one. Costs one batched backward (and ``T + 1``
    forwards with ``lookahead``) per measured step; training itself is unchanged.
    """

    def __init__(self, every: int = 10, lookahead: bool = True, level: str = "exact") -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1 (steps between measurements); got {every}.")
        if level not in ("exact", "representation"):
            raise ValueError(f"level must be 'exact' or 'representation'; got {level!r}.")
        self.every = every
        self.lookahead = lookahead
        self.level = level
        self.names: list[str] = []
        self.sums: dict[str, Tensor] = {}
        self._pending: tuple[Tensor, Tensor] | None = None  # this step's task gradients, for the lookahead

    def _reset(self, count: int) -> None:
        shapes = {"norm_sum": (count,), "norm_count": (count,), "recent_conflicts": (1,), "recent_pairs": (1,)}
        self.sums = {k: torch.zeros(shapes.get(k, (count, count)), dtype=torch.float64) for k in _SUMS}

    def on_train_start(self, trainer: Trainer) -> None:
        names = list(trainer.tasks)
        if names != self.names or not self.sums:  # a resume keeps what load_state_dict restored
            self.names = names
            self._reset(len(names))
        self.check_model(trainer.model)

    def check_model(self, model: MultiTaskModel) -> None:
        """Raise ``ValueError`` if this probe cannot measure ``model`` (``relate`` asks before it
        deletes anything)."""
        if not any(p.requires_grad for p in model.shared_parameters()):
            raise ValueError("Task affinity needs shared parameters to measure gradients on; this model shares "
                             "none (independent columns). Use a model that shares.")
        if self.level == "representation" and not model.has_features:
            raise ValueError(f"relatedness.level 'representation' needs one shared representation; "
                             f"{type(model).__name__} has none. Use level: exact.")

    def on_before_backward(self, trainer: Trainer, step: int, sums: Tensor, counts: Tensor) -> None:
        if step % self.every:
            return
        present = (counts > 0).nonzero().flatten()
        if len(present) == 0:
            return
        shared = [p for p in trainer.model.shared_parameters() if p.requires_grad]
        losses = sums[present] / counts[present]
        flat = _flat(trainer.engine.task_gradients(losses, shared))  # [k, P]
        if self.level == "exact":
            measured = flat
        else:
            at_features = trainer.engine.task_feature_gradients(losses)  # the step's z, where heads read it detached
            measured = _flat(at_features) if at_features else _representation_gradients(trainer, present)
        norms = measured.norm(dim=1).cpu()
        index = present.cpu()
        # a pair is measured where both tasks are present and both gradients are non-zero (a zero
        # one, e.g. an adversary's reversal at strength 0, has no direction to compare)
        both = (norms[:, None] > 0) & (norms[None, :] > 0) & ~torch.eye(len(index), dtype=torch.bool)
        cos = (measured @ measured.T).cpu() / torch.where(both, norms[:, None] * norms[None, :], 1.0)
        block = (index[:, None], index[None, :])
        s = self.sums
        s["cos_sum"][block] += torch.where(both, cos, 0.0)
        s["pairs"][block] += both.double()
        conflict = (cos < 0) & both
        s["conflicts"][block] += conflict.double()
        s["ratio_sum"][block] += torch.where(both, norms[:, None] / torch.where(both, norms[None, :], 1.0), 0.0)
        s["norm_sum"][index] += norms
        s["norm_count"][index] += 1
        s["recent_conflicts"][0] += float(conflict.sum()) / 2
        s["recent_pairs"][0] += float(both.sum()) / 2
        if self.lookahead:
            self._pending = (flat, present)

    @torch.no_grad()
    def on_after_backward(self, trainer: Trainer, step: int) -> None:
        """The lookahead steps, once the step's graph is spent (the shared parameters are moved
        in place, then restored exactly, before the optimizer reads them)."""
        if self._pending is None:
            return
        flat, present = self._pending
        self._pending = None
        shared = [p for p in trainer.model.shared_parameters() if p.requires_grad]
        rate = {id(p): group["lr"] for group in trainer.optimizer.param_groups for p in group["params"]}
        lrs = [rate.get(id(p), 0.0) for p in shared]  # each at its own group's rate (a parameter no group holds stays)
        before = trainer.losses_now()[present].double()
        kept = [p.detach().clone() for p in shared]
        sizes = [p.numel() for p in shared]
        try:
            for row, i in enumerate(present.tolist()):
                for p, original, g, lr in zip(shared, kept, flat[row].split(sizes), lrs):
                    p.copy_(original - lr * g.view_as(p).to(p.dtype))
                after = trainer.losses_now()[present].double()
                fine = (before > 0) & torch.isfinite(after)
                blown = torch.isfinite(before) & ~torch.isfinite(after)
                if bool(blown.any()):  # not an affinity of 0, nor of -inf in a mean: said, and left out
                    hit = [self.names[j] for j in present[blown.cpu()].tolist()]
                    log.warning("manytask: at step %d the lookahead step on %r sent the loss of %s to inf or NaN "
                                "(a step too large for them); that measurement is left out of tag_affinity.",
                                step, self.names[i], hit)
                z = torch.where(fine, 1 - after / before.clamp(min=1e-30), 0.0).cpu()
                self.sums["affinity_sum"][i, present.cpu()] += z
                self.sums["affinity_count"][i, present.cpu()] += fine.cpu().double()
        finally:
            for p, original in zip(shared, kept):
                p.copy_(original)

    def columns(self, trainer: Trainer) -> list[str]:
        return ["grad/conflict", *(f"grad_norm/{t}" for t in trainer.tasks)]

    def row(self, trainer: Trainer) -> dict[str, float]:
        s = self.sums
        if not s:
            return {}
        out = {f"grad_norm/{t}": float(s["norm_sum"][k] / s["norm_count"][k]) for k, t in enumerate(self.names)
               if s["norm_count"][k] > 0}
        if s["recent_pairs"][0] > 0:
            out["grad/conflict"] = float(s["recent_conflicts"][0] / s["recent_pairs"][0])
        for key in ("norm_sum", "norm_count", "recent_conflicts", "recent_pairs"):
            s[key].zero_()  # since the previous evaluation
        return out

    def matrices(self) -> list[TaskMatrix]:
        """What was measured, averaged over the steps that measured each pair (NaN: never)."""
        s, names = self.sums, tuple(self.names)

        def mean(total: Tensor, count: Tensor) -> np.ndarray:
            return torch.where(count > 0, total / count.clamp(min=1), torch.nan).numpy()

        out = [
            TaskMatrix("gradient_cosine", "Gradient cosine", "Mean cosine of the two tasks' gradients on the shared "
                       "parameters (positive: they pull the same way).", names, mean(s["cos_sum"], s["pairs"])),
            TaskMatrix("gradient_conflict", "Gradient conflict rate", "Share of measured steps where the two tasks' "
                       "gradients conflict (cosine < 0).", names, mean(s["conflicts"], s["pairs"]), signed=False),
            TaskMatrix("gradient_norm_ratio", "Gradient norm ratio", "Mean of |g_row| / |g_column| (how much larger "
                       "the row task's gradient is).", names, mean(s["ratio_sum"], s["pairs"]), signed=False),
        ]
        if self.lookahead:
            out.append(TaskMatrix("tag_affinity", "Lookahead affinity (TAG)", "Fifty et al. 2021, Eq. 3: relative drop "
                                  "of the column task's loss after a step on the row task alone (positive: helps).",
                                  names, mean(s["affinity_sum"], s["affinity_count"]), effect=True))
        return out

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if trainer.run_dir is None or not trainer.is_main_process:
            return
        if len(self.names) > 1 and self.sums and not bool(self.sums["pairs"].any()):
            log.warning("manytask: no measured step had two tasks in its batch, so no pair of tasks was related "
                        "(one source per task, or a sampler or schedule that trains one task a step?); the "
                        "lookahead affinity needs batches that mix tasks: train from one mixed source.")
        matrices = self.matrices()
        learned = getattr(trainer.model, "task_correlation", None)
        if callable(learned):  # a deep relationship network's task covariance (Long et al. 2017)
            matrices.append(correlation_matrix(learned().detach().double().cpu().numpy(), self.names,
                                               "relationship_correlation", "Learned task correlation (DRN)",
                                               "Long et al. 2017: the task covariance the relationship network's "
                                               "matrix-normal prior learned, as a correlation."))
        for matrix in matrices:
            matrix.save(Path(trainer.run_dir))

    def state_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), **{k: v.clone() for k, v in self.sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.names = list(state["names"])
        self.sums = {k: state[k].clone().double() for k in _SUMS}


def _flat(grads: Sequence[Tensor]) -> Tensor:
    """``[k, P]``: per-task gradients ``[k, *shape]`` of several tensors, flattened side by side (float64)."""
    return torch.cat([g.reshape(len(g), -1) for g in grads], dim=1).double()


def _representation_gradients(trainer: Trainer, present: Tensor) -> Tensor:
    """``[k, N * D]``: each present task's gradient of its mean loss with respect to the shared
    representation ``z`` of this step's batch (one more forward of the shared part, as the
    representation-level balancers see it; Sener & Koltun 2018's MGDA-UB). That forward leaves
    training as it was: it draws from forked random streams (dropout) and batch norm uses the
    batch's statistics without updating its running ones (an update in place would also break
    the step's own backward)."""
    leaves = []
    norms = [m for m in trainer.model.modules() if isinstance(m, _NormBase) and m.track_running_stats]
    devices = [present.device] if present.device.type == "cuda" else []

    def through_z(inputs: Any, group: list[str]) -> dict[str, Tensor]:  # as Trainer._recompute, through z
        z = trainer.model.features(inputs).detach().requires_grad_()
        leaves.append(z)
        return trainer.model.forward_heads(z, group)

    with torch.enable_grad(), torch.random.fork_rng(devices=devices), _running_stats_frozen(norms):
        total, count = trainer.loss_sums(trainer.step_groups, through_z)
        losses = total[present] / count[present].clamp(min=1)
        return _flat(batched_vjps([losses], [torch.eye(len(losses), device=losses.device)], leaves))


@contextlib.contextmanager
def _running_stats_frozen(norms: Sequence[_NormBase]) -> Iterator[None]:
    """Batch norm layers normalise by the batch's statistics and leave their running ones alone."""
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
