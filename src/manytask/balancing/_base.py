"""The balancing contract: per-task losses of a step in, gradients in ``.grad`` out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import Inputs
from ..models import MultiTaskModel
from ..tasks import Task

__all__ = ["Balancer", "LossWeighting", "StepInfo", "forward_for"]


@dataclass(frozen=True)
class StepInfo:
    """What a balancer may need besides the losses.

    Args:
        step: Optimisation step, from 0.
        epoch: Loader epoch, from 0.
        model: The model being trained.
        features: The shared representation the heads read (when the model has one).
        task_features: For representation-level balancers only: per task, a leaf alias of
            ``features`` that this task's head read, so that one backward through the heads
            leaves dL_i/dz in ``task_features[i].grad``.
    """

    step: int
    epoch: int
    model: MultiTaskModel
    features: Tensor | None = None
    task_features: dict[str, Tensor] | None = None


class Balancer(nn.Module, ABC):
    """Turns the per-task losses of one step into gradients in ``.grad``.

    ``losses`` holds only the tasks labelled in the batch, in any order; a task absent from it
    gets no loss, no gradient and no change of state. State lives in buffers (or parameters,
    for learned weights) so it round-trips through ``state_dict``.

    Args:
        tasks: All tasks of the run; buffers are indexed in this order.
    """

    #: True when the method needs ``StepInfo.features`` (representation-level methods).
    needs_features: bool = False

    def __init__(self, tasks: Sequence[Task]) -> None:
        super().__init__()
        if not tasks:
            raise ValueError(f"{type(self).__name__} needs at least one task.")
        self.task_names = tuple(t.name for t in tasks)
        self._position = {name: i for i, name in enumerate(self.task_names)}
        self._indices: dict[tuple[str, ...], Tensor] = {}

    def index(self, names: Sequence[str]) -> Tensor:
        """Positions of ``names`` in the run's task order, ``[T']`` (cached per set of names)."""
        key = tuple(names)
        cached = self._indices.get(key)
        if cached is None:
            try:
                cached = torch.tensor([self._position[n] for n in key], dtype=torch.long)
            except KeyError as error:
                raise KeyError(f"{type(self).__name__} got a loss for unknown task {error.args[0]!r}; "
                               f"it was built for {list(self.task_names)}.") from None
            self._indices[key] = cached
        return cached

    @abstractmethod
    def backward(self, losses: Mapping[str, Tensor], info: StepInfo) -> Tensor:
        """Fill ``.grad`` of the model's parameters; return the weight given to each loss ``[T']``."""

    def reset(self) -> None:
        """Forget any state accumulated during training."""

    def __str__(self) -> str:
        return type(self).__name__


class LossWeighting(Balancer):
    """A balancer that backpropagates ``sum_i w_i L_i + regulariser`` in one backward pass."""

    def backward(self, losses: Mapping[str, Tensor], info: StepInfo) -> Tensor:
        names = list(losses)
        index = self.index(names)
        stacked = torch.stack([losses[n] for n in names])
        weights = self.weights(stacked, index, info)
        total = (weights * stacked).sum()
        regulariser = self.regulariser(index)
        if regulariser is not None:
            total = total + regulariser
        total.backward()
        return weights.detach()

    @abstractmethod
    def weights(self, losses: Tensor, index: Tensor, info: StepInfo) -> Tensor:
        """Weights ``[T']`` of the present tasks' ``losses`` ``[T']`` (``index`` gives their positions)."""

    def regulariser(self, index: Tensor) -> Tensor | None:
        """A term added to the weighted loss (e.g. UW's log-variances), or None."""
        return None


def forward_for(
    balancer: Balancer, model: MultiTaskModel, inputs: Inputs, tasks: Sequence[str]
) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Tensor] | None]:
    """Run ``model`` on ``inputs`` for ``tasks`` the way ``balancer`` needs it.

    Returns ``(outputs, features, task_features)`` for :class:`StepInfo`. The shared encoder runs
    once; for representation-level balancers each head reads its own leaf alias of the features.
    """
    if balancer.needs_features:
        if not model.has_features:
            raise ValueError(f"{balancer} needs the model's shared features, but {type(model).__name__} "
                             "has none; use level='exact'.")
        features = model.features(inputs)
        task_features = {t: features.detach().requires_grad_() for t in tasks}
        return {t: model.forward_heads(task_features[t], [t])[t] for t in tasks}, features, task_features
    if model.has_features:
        features = model.features(inputs)
        return model.forward_heads(features, tasks), features, None
    return model(inputs, tasks), None, None
