"""Joint Many-Task model (Hashimoto et al., 2017): tasks in a hierarchy of stages, each stage
reading the lower tasks' predictions as label embeddings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ..tasks._crf import crf_marginals
from ._backbone import FeatureInfo, padding_mask
from ._low_supervision import LowSupervision

__all__ = ["JointManyTask"]


def _real_rows(features: Tensor) -> Tensor:
    """``[B, L, 1]``: 1 on a sequence's real positions, 0 on its padding (all-zero feature rows)."""
    return (~padding_mask(features)).to(features.dtype)[..., None]


class _LabelEmbedding(nn.Module):
    """A task's predictions as a vector of the stage's width: ``Σ_j p(j) ℓ(j)`` for classes (the
    label embeddings ``ℓ`` weighted by the predicted probabilities), a linear map of the values for
    regression; broadcast over the tokens or positions of the stage when the task is per sample."""

    def __init__(self, task: Task, info: FeatureInfo) -> None:
        super().__init__()
        if task.level == "pixel":
            raise ValueError(f"JointManyTask cannot embed the predictions of pixel-level task {task.name!r}; "
                             "attach it at the last stage.")
        self.task = task
        self.layout = info.layout
        self.labels = nn.Linear(task.out_features, info.dim, bias=False)

    def forward(self, output: Tensor, features: Tensor) -> Tensor:
        if getattr(self.task, "crf", False):  # a CRF's posterior marginals, not its (hard) Viterbi path
            values = crf_marginals(output.float()).exp().to(output.dtype)
        else:
            values = output if self.task.kind == "regression" else self.task.predictions(output)
        embedded = self.labels(values)  # [B, D] or, per token, [B, L, D]
        if self.layout == "map":
            return embedded[:, :, None, None].expand_as(features)
        if self.layout == "sequence":
            return (embedded[:, None, :] if embedded.ndim == 2 else embedded) * _real_rows(features)  # padding: 0
        return embedded


class JointManyTask(LowSupervision):
    r"""Joint Many-Task model (Hashimoto, Xiong, Tsuruoka & Socher, 2017, "A Joint Many-Task
    Model: Growing a Neural Network for Multiple NLP Tasks").

    Tasks sit at the stages they name (``task.attach_at``, as in :class:`LowSupervision`, which
    this extends), and
    each stage passes up not only its features but the predictions of the tasks attached to it:
    the next stage reads :math:`h + \sum_t E_t(\hat y_t)`, :math:`E_t` the task's label embedding
    (the paper's label embeddings: label vectors weighted by the predicted probabilities, for
    classification; a linear map of the values for regression); adding them at the stage's width
    keeps any backbone's stages as they are. The paper concatenates into each BiLSTM's input the
    lower layer's states, the label embeddings of every lower task and the word vectors (its
    shortcut connections). With ``shortcuts=True`` every stage from the third on also reads the
    first stage's output (the word representations, through a linear map without bias) and the
    label embeddings of every task two or more stages down (each its own map to the stage's
    width); without (the default) a stage reads only the stage below and the label embeddings of
    the tasks attached to it.

    **Successive regularisation** (the paper's :math:`\delta \|\theta - \theta'\|^2`): with
    ``successive > 0`` the stages below the highest task and the lower tasks' heads (the paper's
    :math:`W_{POS}, b_{POS}` beside the lower layers) are kept from drifting from :math:`\theta'`,
    their values at the end of the previous epoch (a snapshot buffer, refreshed by
    :meth:`on_epoch_end`; the paper trains task by task and snapshots after each), by a step
    decoupled from the optimizer (:meth:`on_after_optimizer_step`), as AdamW decouples weight
    decay.

    The stages two or more tasks reach, the label embeddings two or more tasks read and the lower
    tasks' heads are shared: the label embedding reads the head's prediction, so the higher
    tasks' losses reach it (so a task's own ``lr`` does not reach a lower task's head). The
    highest tasks' heads are their own, as are a stage or a label embedding that one task alone
    reads (the stages above every other task's head). With every task at the last stage there
    are no label embeddings and the model is :class:`HardSharing`, shared representation
    included; otherwise representation-level balancing raises.

    Args:
        encoder: The backbone.
        tasks: The tasks, each with its ``attach_at`` (default: the last stage).
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        successive: :math:`\delta` of the successive regularisation (0: none).
        shortcuts: The paper's shortcut connections (vector and sequence stages).

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Classification
        >>> model = JointManyTask(MLP(4, (8, 6)), [Classification("low", num_classes=3, attach_at=1),
        ...                                        Classification("high", num_classes=2)])
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'low': (5, 3), 'high': (5, 2)}
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 successive: float = 0.0, shortcuts: bool = False) -> None:
        if successive < 0:
            raise ValueError(f"JointManyTask successive must be >= 0. Got {successive}.")
        super().__init__(encoder, tasks, feature_dim)
        stages = len(self.encoder.stages)
        infos = self.encoder.feature_info
        self.embeddings = nn.ModuleDict({t.name: _LabelEmbedding(t, infos[self.depths[t.name] - 1])
                                         for t in tasks if self.depths[t.name] < stages})
        self.shortcuts = bool(shortcuts)
        top = max(self.depths.values())
        if shortcuts and any(info.layout == "map" for info in infos[:top]):
            raise ValueError("JointManyTask shortcuts add the first stage's output to later stages' inputs, which a "
                             "backbone of maps (a CNN) changes in size; use shortcuts=False.")
        # the shortcuts into stage k >= 3 (from 1; it reads stage k-1's output): the first stage's
        # output, and the label embeddings of the tasks attached at stages 1 .. k-2
        into = range(3, top + 1) if shortcuts else range(0)
        self.word_shortcuts = nn.ModuleDict({str(k): nn.Linear(infos[0].dim, infos[k - 2].dim, bias=False)
                                             for k in into})
        self.label_shortcuts = nn.ModuleDict({f"{t.name}@{k}": _LabelEmbedding(t, infos[k - 2]) for k in into
                                              for t in tasks if self.depths[t.name] <= k - 2})
        self.successive = float(successive)
        #: the tasks below the highest one: the label embeddings of their heads' predictions feed
        #: the stages above, so those heads are shared (the higher tasks' losses reach them)
        self._feeding = [name for name in self.embeddings if self.depths[name] < top]
        # the stages below the highest task, and only where a lower task feeds one above (with every
        # task at one depth there is no lower task to keep: the model is hard sharing)
        below = [p for stage in self.encoder.stages[:top - 1] for p in stage.parameters()] if self._feeding else []
        below += [p for name in self._feeding for p in self.heads[name].parameters()]
        self._below = below
        for i, p in enumerate(below):
            self.register_buffer(f"snapshot_{i}", p.detach().clone())

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        top = max(self.depths[t] for t in tasks)
        out: dict[str, Tensor] = {}
        x = inputs
        first: Tensor | None = None
        for depth, stage in enumerate(self.encoder.stages[:top], start=1):
            h = stage(x)
            first = h if first is None else first
            here = [n for n in self.task_names if self.depths[n] == depth and (n in tasks or depth < top)]
            for name in here:  # every head of this stage reads its output; a lower one feeds the stages above
                out[name] = self.heads[name](h)
            x = h
            for name in here:
                if depth < top and name in self.embeddings:
                    x = x + self.embeddings[name](out[name], h)
            if depth < top and str(depth + 1) in self.word_shortcuts:  # into stage depth + 1
                word = self.word_shortcuts[str(depth + 1)](first)
                x = x + (word * _real_rows(h) if h.ndim == 3 else word)  # padding rows stay zero
                for name in self.task_names:
                    if self.depths[name] < depth:
                        x = x + self.label_shortcuts[f"{name}@{depth + 1}"](out[name], h)
        return {name: out[name] for name in tasks}

    def on_after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        r"""Successive regularisation, decoupled from the optimizer: each lower-stage parameter
        moves :math:`\eta \cdot 2\delta (\theta - \theta')` towards its snapshot, :math:`\eta` its
        group's learning rate. Under plain SGD this is the gradient step of the paper's
        :math:`\delta \|\theta - \theta'\|^2`; under Adam the penalty's gradient would be rescaled per
        parameter, and on rarely updated rows (embeddings) it would dominate their steps."""
        if not self.successive or not self._below:
            return
        rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
        with torch.no_grad():
            for i, p in enumerate(self._below):
                rate = rates.get(id(p))
                if rate is not None:
                    p.sub_(getattr(self, f"snapshot_{i}").sub(p).mul_(-2.0 * self.successive * rate))

    def on_epoch_end(self, epoch: int) -> None:
        r"""Take the successive regularisation's snapshot :math:`\theta'` of the lower stages."""
        with torch.no_grad():
            for i, p in enumerate(self._below):
                getattr(self, f"snapshot_{i}").copy_(p)

    def shared_modules(self) -> list[nn.Module]:
        # the shared stages, the label embeddings two or more tasks read, and the lower tasks'
        # heads (the tasks above read their predictions): every module that holds a shared
        # parameter, for the Gramian engine to hook
        embedded = [module for module, readers in self._feeders() if len(readers) >= 2]
        return [*super().shared_modules(), *embedded, *(self.heads[name] for name in self._feeding)]

    def _feeders(self) -> list[tuple[nn.Module, list[str]]]:
        """Each module feeding a stage from below (a label embedding, a shortcut), with the tasks
        that read it: those attached at that stage or above."""
        fed = [(self.embeddings[n], self.readers(self.depths[n] + 1)) for n in self.embeddings]
        fed += [(module, self.readers(int(k))) for k, module in self.word_shortcuts.items()]
        fed += [(module, self.readers(int(key.rsplit("@", 1)[1]))) for key, module in self.label_shortcuts.items()]
        return fed

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        for module in self.shared_modules():
            yield from module.parameters()

    def spare_parameters(self) -> Iterator[nn.Parameter]:
        """The stages above the deepest head, and the label embeddings feeding them."""
        yield from super().spare_parameters()
        for module, readers in self._feeders():
            if not readers:
                yield from module.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        """A task's head unless a higher task reads its prediction (then it is shared), the stages
        it alone reads, and the label embeddings that only it reads."""
        name = self._check_tasks([name])[0]
        yield from self._own_stages(name)
        for module, readers in self._feeders():
            if readers == [name]:
                yield from module.parameters()
        if name not in self._feeding:
            yield from self.heads[name].parameters()
