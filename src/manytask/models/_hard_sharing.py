"""Hard parameter sharing: one shared encoder, one head per task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Columns, Task
from ._backbone import last_weights, output_info
from ._base import MultiTaskModel
from ._heads import make_head

__all__ = ["GROUP_AT", "HardSharing"]

#: Fewest tasks whose identical linear heads :class:`HardSharing` computes as one matmul.
GROUP_AT = 8


def _identical_linear(heads: list[nn.Module]) -> bool:
    """All plain ``nn.Linear`` with the same sizes, bias or not, dtype and device."""
    if not heads or any(type(h) is not nn.Linear for h in heads):
        return False
    first: nn.Linear = heads[0]  # type: ignore[assignment]
    key = (first.in_features, first.out_features, first.bias is None, first.weight.dtype, first.weight.device)
    return all((h.in_features, h.out_features, h.bias is None, h.weight.dtype, h.weight.device) == key
               for h in heads)  # type: ignore[union-attr]


def linear_parameters(heads: Sequence[nn.Module]) -> list[tuple[Tensor, Tensor | None]]:
    """Each ``nn.Linear``'s ``(weight, bias)``, read off its parameter dict: ``head.weight`` goes
    through ``Module.__getattr__``, about 0.5 µs an attribute (gathering 32 heads' parameters and
    stacking them took 170 µs a step, now 50)."""
    return [(h._parameters["weight"], h._parameters["bias"]) for h in heads]  # type: ignore[misc]


class HardSharing(MultiTaskModel):
    """Hard parameter sharing (Caruana, 1993, "Multitask Learning: A Knowledge-Based Source of
    Inductive Bias"): every task reads the same encoder output through its own head.

    Args:
        encoder: A :class:`Backbone` (its last stage's :class:`FeatureInfo` gives the layout), or
            any module mapping inputs to features (a one-stage backbone: ``[B, D]`` unless it has
            a ``layout`` attribute, ``"sequence"`` ``[B, L, D]`` or ``"map"`` ``[B, C, H, W]``).
        tasks: The tasks; each gets the head :func:`make_head` builds for its level and the
            encoder's layout.
        feature_dim: ``D``; read from the backbone's last stage or ``encoder.out_features`` when
            not given.

    Examples:
        >>> import torch
        >>> from manytask.tasks import Classification, Regression
        >>> model = HardSharing(torch.nn.Linear(4, 8), [Classification("a", num_classes=3),
        ...                                            Regression("b")])
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'a': (5, 3), 'b': (5, 1)}
    """

    has_features = True

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("HardSharing needs at least one task.")
        self._heads_at_the_top(tasks, encoder)
        self.encoder = encoder
        self.feature_info = output_info(encoder, feature_dim)
        self.feature_dim = self.feature_info.dim
        self.task_names = tuple(t.name for t in tasks)
        self.heads = nn.ModuleDict({t.name: make_head(t, self.feature_info) for t in tasks})
        self._grouping: tuple[tuple[int, ...], bool] = ((), False)  # (the heads' ids, identical linear maps?)

    def features(self, inputs: Inputs) -> Tensor:
        return self.encoder(inputs)

    def forward_heads(self, features: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        names = self._check_tasks(tasks)
        if len(names) >= GROUP_AT and features.ndim == 2 and self.grouped_heads:
            return self._grouped(features, names)
        return {name: self.heads[name](features) for name in names}

    @property
    def grouped_heads(self) -> bool:
        """Whether the heads are identical ``nn.Linear`` maps, which a forward asking for at least
        ``GROUP_AT`` of them computes as one matmul (many tasks: School's 139 heads)."""
        key = tuple(map(id, self.heads.values()))
        if key != self._grouping[0]:  # checked again whenever a head is replaced
            self._grouping = key, _identical_linear(list(self.heads.values()))
        return self._grouping[1]

    def heads_of(self, names: Sequence[str]) -> list[nn.Module]:
        """The heads of ``names``, read off the ``ModuleDict``'s dict (its ``[]`` is a Python call
        per head)."""
        modules = self.heads._modules
        return [modules[n] for n in names]

    def _grouped(self, features: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
        """Identical linear heads as one matmul: the heads' weights stacked ``[T' * K, D]``, the
        output ``[B, T', K]`` handed out as its columns (:class:`~manytask.tasks.Columns`, which the
        batched losses read back as one block); the same numbers as one call per head, up to the
        order of floating-point additions."""
        pairs = linear_parameters(self.heads_of(names))
        weight = torch.cat([w for w, _ in pairs])
        bias = torch.cat([b for _, b in pairs]) if pairs[0][1] is not None else None  # type: ignore[misc]
        out = F.linear(features, weight, bias).unflatten(1, (len(names), -1))
        return Columns({}, [(names, out)])

    def shared_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        return self.heads[self._check_tasks([name])[0]].parameters()

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices (not the biases) of the encoder's last layer (:func:`last_weights`)."""
        return last_weights(self.encoder)
