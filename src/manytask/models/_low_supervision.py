"""Low supervision (Søgaard & Goldberg, 2016): each task's head reads the backbone stage it names."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import as_backbone, last_weights, output_info
from ._base import MultiTaskModel
from ._heads import make_head

__all__ = ["LowSupervision"]


class LowSupervision(MultiTaskModel):
    """Heads at different depths of one shared backbone.

    Søgaard & Goldberg (2016), "Deep multi-task learning with low level tasks supervised at lower
    layers": in a stacked BiLSTM tagger, POS tagging is predicted from the first layer and
    chunking from the top one, so the low-level task shapes only the lower layers and the
    higher task reads a representation that already encodes it. Here any task may name the stage
    its head reads, ``task.attach_at`` (counted from 1; default: the last stage), on any staged
    backbone; the head fits that stage's layout.

    A forward runs the stages only as far as the deepest task asked for. A stage is shared by the
    tasks attached at it or above; one that a single task reaches (above every other task's head)
    is that task's own, and stages above the deepest head are spare (no task reads them). With
    every head at the last stage the model is :class:`HardSharing`, shared representation
    included; otherwise there is no single shared representation, and representation-level
    balancing raises.

    Args:
        encoder: A :class:`Backbone` (a plain module is one stage).
        tasks: The tasks, each with its ``attach_at``.
        feature_dim: ``D`` of a plain encoder without ``out_features``.

    Examples:
        >>> import torch
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Classification
        >>> model = LowSupervision(MLP(4, (8, 6)), [Classification("low", num_classes=3, attach_at=1),
        ...                                         Classification("high", num_classes=2)])
        >>> model.depths
        {'low': 1, 'high': 2}
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'low': (5, 3), 'high': (5, 2)}
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("LowSupervision needs at least one task.")
        self.encoder = as_backbone(encoder, output_info(encoder, feature_dim))
        stages = len(self.encoder.stages)
        self.task_names = tuple(t.name for t in tasks)
        self.depths = {t.name: t.attach_at or stages for t in tasks}
        deep = {n: d for n, d in self.depths.items() if d > stages}
        if deep:
            raise ValueError(f"Tasks {deep} ask for heads at stages the encoder does not have (attach_at counts "
                             f"from 1; {type(encoder).__name__} has {stages} stage(s)).")
        infos = self.encoder.feature_info
        self.heads = nn.ModuleDict({t.name: make_head(t, infos[self.depths[t.name] - 1]) for t in tasks})
        self.has_features = all(d == stages for d in self.depths.values())

    def features(self, inputs: Inputs) -> Tensor:
        if not self.has_features:
            return super().features(inputs)
        return self.encoder(inputs)

    def forward_heads(self, features: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        if not self.has_features:
            return super().forward_heads(features, tasks)
        return {name: self.heads[name](features) for name in self._check_tasks(tasks)}

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        outputs: list[Tensor] = []
        x = inputs
        for stage in self.encoder.stages[:max(self.depths[t] for t in tasks)]:
            x = stage(x)
            outputs.append(x)  # type: ignore[arg-type]
        return {name: self.heads[name](outputs[self.depths[name] - 1]) for name in tasks}

    def readers(self, stage: int) -> list[str]:
        """The tasks whose outputs stage ``stage`` (counted from 1) reaches: those attached at it or above."""
        return [name for name in self.task_names if self.depths[name] >= stage]

    def shared_modules(self) -> list[nn.Module]:
        if self.has_features:
            return [self.encoder]
        return [stage for k, stage in enumerate(self.encoder.stages, start=1) if len(self.readers(k)) >= 2]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        for module in self.shared_modules():
            yield from module.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        """A task's head, and the stages above every other task's head if it alone reads them."""
        name = self._check_tasks([name])[0]
        yield from self._own_stages(name)
        yield from self.heads[name].parameters()

    def _own_stages(self, name: str) -> Iterator[nn.Parameter]:
        """The parameters of the stages task ``name`` alone reads (none when every head is at the top)."""
        if not self.has_features:
            for k, stage in enumerate(self.encoder.stages, start=1):
                if self.readers(k) == [name]:
                    yield from stage.parameters()

    def spare_parameters(self) -> Iterator[nn.Parameter]:
        """The stages above the deepest head (no task reads them)."""
        for k, stage in enumerate(self.encoder.stages, start=1):
            if not self.readers(k):
                yield from stage.parameters()

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices (not the biases) of the last shared stage's last layer (:func:`last_weights`)."""
        shared = self.shared_modules()
        if not shared:
            raise ValueError(f"{type(self).__name__} shares no stage (one task, or every task at its own depth "
                             "above the others'); use a loss weighting other than GradNorm.")
        return last_weights(shared[-1])
