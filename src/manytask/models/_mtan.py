"""Multi-Task Attention Network (Liu, Johns & Davison, 2019): one shared backbone, and per task a
soft-attention mask over every stage's output."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import FeatureInfo, as_backbone, last_weights, output_info
from ._base import MultiTaskModel
from ._heads import _Pool, make_head

__all__ = ["MTAN"]


def _pointwise(layout: str, inputs: int, outputs: int) -> nn.Module:
    """A 1x1 convolution for maps, a linear map of the feature dimension otherwise."""
    return nn.Conv2d(inputs, outputs, 1) if layout == "map" else nn.Linear(inputs, outputs)


class _Carry(nn.Module):
    """The paper's ``f_j``: the previous stage's attended features brought to this stage's layout
    and size (3x3 convolution and resizing for maps, a linear map otherwise; pooled first where a
    sequence or map becomes a vector)."""

    def __init__(self, before: FeatureInfo, after: FeatureInfo) -> None:
        super().__init__()
        if before.layout != after.layout and after.layout != "vector":
            raise ValueError(f"MTAN cannot carry {before.layout} features into a {after.layout} stage.")
        self.pool = _Pool(before.layout) if before.layout != after.layout else None
        self.map = after.layout == "map"
        self.layer = nn.Conv2d(before.dim, after.dim, 3, padding=1) if self.map else nn.Linear(before.dim, after.dim)

    def forward(self, x: Tensor, like: Tensor) -> Tensor:
        if self.pool is not None:
            x = self.pool(x)
        x = self.layer(x)
        return F.adaptive_avg_pool2d(x, (like.shape[-2], like.shape[-1])) if self.map else x


class _Attention(nn.Module):
    """The paper's ``g_j``: two pointwise layers, ReLU then sigmoid, giving a mask in (0, 1) of the
    stage output's shape."""

    def __init__(self, info: FeatureInfo, inputs: int) -> None:
        super().__init__()
        self.layout = info.layout
        self.first = _pointwise(info.layout, inputs, info.dim)
        self.second = _pointwise(info.layout, info.dim, info.dim)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.second(torch.relu(self.first(x))))


class MTAN(MultiTaskModel):
    r"""Multi-Task Attention Network: each task reads the shared stages through its own masks.

    Liu, Johns & Davison (2019), "End-to-End Multi-Task Learning with Attention", Eq. 1: every
    stage output :math:`p_j` of a shared backbone is read by each task through its own
    soft-attention mask,

    .. math::
        \hat a^t_j = g^t_j\big([p_j ;\, f_j(\hat a^t_{j-1})]\big) \odot p_j ,

    where :math:`g^t_j` is two pointwise layers (ReLU, then sigmoid), :math:`[\,;]` concatenates
    features and :math:`f_j` (shared by the tasks) brings the previous stage's attended features
    to this stage's size; the first stage's mask reads :math:`p_1` alone. Task ``t``'s head reads
    :math:`\hat a^t_S` of the last stage. The paper builds it on SegNet (masks on the first
    convolution of each block, BatchNorm in the attention layers); here the masks apply to every
    stage's output of any backbone (no BatchNorm). With every mask at 1 the model is
    :class:`HardSharing`.

    The backbone and the :math:`f_j` are shared; the attention modules and the head of a task are
    its own. There is no single shared representation (each head reads its attended features), so
    representation-level balancing raises; exact mode works.

    Args:
        encoder: The shared backbone (a plain module is one stage).
        tasks: The tasks.
        feature_dim: ``D`` of a plain encoder without ``out_features``.

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = MTAN(MLP(4, (8, 6)), [Regression("a"), Regression("b")])
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'a': (5, 1), 'b': (5, 1)}
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> None:
        super().__init__()
        self._heads_at_the_top(tasks, encoder)
        if not tasks:
            raise ValueError("MTAN needs at least one task.")
        self.encoder = as_backbone(encoder, output_info(encoder, feature_dim))
        infos = self.encoder.feature_info
        self.task_names = tuple(t.name for t in tasks)
        self.carry = nn.ModuleList(_Carry(infos[j - 1], infos[j]) for j in range(1, len(infos)))
        self.attention = nn.ModuleDict({
            t: nn.ModuleList(_Attention(info, info.dim * (1 if j == 0 else 2)) for j, info in enumerate(infos))
            for t in self.task_names
        })
        self.heads = nn.ModuleDict({t.name: make_head(t, infos[-1]) for t in tasks})

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        shared = self.encoder.forward_stages(inputs)
        return {t: self.heads[t](self._attend(shared, t)[0]) for t in tasks}

    def masks(self, inputs: Inputs, task: str) -> list[Tensor]:
        """Task ``task``'s attention mask at every stage: what it takes from the shared features."""
        with torch.no_grad():
            return self._attend(self.encoder.forward_stages(inputs), self._check_tasks([task])[0])[1]

    def _attend(self, shared: list[Tensor], task: str) -> tuple[Tensor, list[Tensor]]:
        """Task ``task``'s attended features of the last stage, and its mask at every stage."""
        attention: nn.ModuleList = self.attention[task]  # type: ignore[assignment]
        masks: list[Tensor] = []
        attended = shared[0]
        for j, features in enumerate(shared):
            if j == 0:
                reads = features
            else:
                channel = 1 if self.encoder.feature_info[j].layout == "map" else -1
                reads = torch.cat([features, self.carry[j - 1](attended, features)], dim=channel)
            masks.append(attention[j](reads))
            attended = features * masks[-1]
        return attended, masks

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices of the shared backbone's last layer (:func:`last_weights`)."""
        return last_weights(self.encoder)

    def shared_modules(self) -> list[nn.Module]:
        return [self.encoder, self.carry]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.encoder.parameters()
        yield from self.carry.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        name = self._check_tasks([name])[0]
        yield from self.attention[name].parameters()
        yield from self.heads[name].parameters()
