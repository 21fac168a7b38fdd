"""Task samplers: which data source the next batch is drawn from.

Each sampler gives a probability per source from the sources' sizes ``n`` (and, for the
annealed sampler, the epoch); round-robin cycles through the sources instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from .._registry import Registry

__all__ = [
    "SAMPLERS",
    "TaskSampler",
    "Uniform",
    "Proportional",
    "Temperature",
    "Annealed",
    "RoundRobin",
    "create_sampler",
]


class TaskSampler(ABC):
    """Chooses the source of each batch; stateless (randomness comes from the loader)."""

    def choose(self, sizes: Tensor, step: int, epoch: int, num_epochs: int, generator: torch.Generator) -> int:
        """Index of the source for ``step`` (``epoch`` counts from 0)."""
        p = self.probabilities(sizes, epoch, num_epochs)
        return int(torch.multinomial(p, 1, generator=generator))

    @abstractmethod
    def probabilities(self, sizes: Tensor, epoch: int, num_epochs: int) -> Tensor:
        """Probability of drawing from each source, ``[S]``, summing to 1."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Uniform(TaskSampler):
    """Every source equally often: :math:`p_i = 1/S`."""

    def probabilities(self, sizes: Tensor, epoch: int, num_epochs: int) -> Tensor:
        return torch.full_like(sizes, 1.0 / len(sizes), dtype=torch.float64)


class Temperature(TaskSampler):
    r"""Temperature sampling: p_i ∝ n_i^(1/τ) for source i of n_i rows.

    ``tau=1`` is proportional sampling; ``tau -> inf`` tends to uniform.
    """

    def __init__(self, tau: float = 2.0) -> None:
        if not tau > 0:
            raise ValueError(f"The 'tau' parameter of Temperature must be > 0. Got {tau!r} instead.")
        self.tau = tau

    def probabilities(self, sizes: Tensor, epoch: int, num_epochs: int) -> Tensor:
        return torch.softmax(sizes.double().log() / self.tau, dim=0)  # n^(1/tau) overflows for a small tau


class Proportional(Temperature):
    r"""Proportional to size: p_i = n_i / Σ_j n_j (each sample equally often)."""

    def __init__(self) -> None:
        super().__init__(tau=1.0)

    def __repr__(self) -> str:
        return "Proportional()"


class Annealed(TaskSampler):
    r"""Annealed sampling of Stickland & Murray (2019, "BERT and PALs", Sec. 4).

    .. math::
        p_i \propto n_i^{\alpha}, \qquad \alpha = 1 - 0.8\,\frac{e - 1}{E - 1}

    with :math:`e` the current epoch (from 1) and :math:`E` the number of epochs: proportional
    at first, closer to uniform at the end.
    """

    def probabilities(self, sizes: Tensor, epoch: int, num_epochs: int) -> Tensor:
        alpha = 1.0 - 0.8 * epoch / (num_epochs - 1) if num_epochs > 1 else 1.0
        weights = sizes.double() ** min(max(alpha, 0.2), 1.0)
        return weights / weights.sum()


class RoundRobin(TaskSampler):
    """Sources in turn: step ``k`` draws from source ``k mod S``."""

    def choose(self, sizes: Tensor, step: int, epoch: int, num_epochs: int, generator: torch.Generator) -> int:
        return step % len(sizes)

    def probabilities(self, sizes: Tensor, epoch: int, num_epochs: int) -> Tensor:
        return torch.full_like(sizes, 1.0 / len(sizes), dtype=torch.float64)


SAMPLERS: Registry[TaskSampler] = Registry("sampler")
SAMPLERS.register("uniform")(Uniform)
SAMPLERS.register("proportional")(Proportional)
SAMPLERS.register("temperature")(Temperature)
SAMPLERS.register("annealed")(Annealed)
SAMPLERS.register("round_robin")(RoundRobin)


def create_sampler(name: str, **options: object) -> TaskSampler:
    """Build a registered sampler by name."""
    return SAMPLERS.create(name, **options)
