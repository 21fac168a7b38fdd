"""The training loader: mixes several sources with a task sampler, resumably."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from ._batch import Batch, concat_batches
from ._samplers import Proportional, TaskSampler
from ._source import EmptySourceError, Source

__all__ = ["MultiSourceLoader"]

log = logging.getLogger(__name__)


class MultiSourceLoader:
    """Draws batches from one or more sources; the sampler picks the source of each batch.

    Each source is read in a fresh random order every time it is exhausted (its own epochs).
    **An epoch of the loader** is ``steps_per_epoch = ceil(sum of source sizes / batch_size)``
    steps: as many batches as it takes, on average, to draw as many samples as all sources
    hold together. With one source this is exactly one pass over it.

    The state (step, each source's order and position, the random generator) round-trips
    through :meth:`state_dict`, so a resumed run draws the same batches as an uninterrupted one.

    Args:
        sources: Named training sources.
        batch_size: Samples per batch (the last batch of a source's pass may be smaller).
        sampler: Chooses the source of each batch (default: proportional to size).
        seed: Seed of the loader's own random generator.
        num_epochs: Total epochs of the run, used by the annealed sampler.
        unlabelled: Sources of unlabelled rows (for the tasks that read views) drawn beside every
            batch: each batch gets ``unlabelled_batch_size`` of their rows appended (the source
            chosen in proportion to size), as in semi-supervised training with a labelled and an
            unlabelled batch a step. They do not count in ``steps_per_epoch``.
        unlabelled_batch_size: Rows appended from ``unlabelled`` to each batch.
        shard: ``(rank, world)``: every rank draws the same global batches (same seed) and gets
            its contiguous share of each (``batch_size`` is the global batch size); a pass never
            ends on fewer rows than ranks (those few rows wait for the next pass), so no rank gets
            an empty share. The state is the same on every rank and for any number of ranks.
    """

    def __init__(
        self,
        sources: Mapping[str, Source],
        batch_size: int,
        sampler: TaskSampler | None = None,
        seed: int = 0,
        num_epochs: int = 1,
        unlabelled: Mapping[str, Source] | None = None,
        unlabelled_batch_size: int = 0,
        shard: tuple[int, int] | None = None,
    ) -> None:
        if not sources:
            raise EmptySourceError("The loader needs at least one training source.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Got {batch_size}.")
        unlabelled = dict(unlabelled or {})
        if unlabelled and unlabelled_batch_size < 1:
            raise ValueError(f"unlabelled_batch_size must be >= 1 with unlabelled sources. "
                             f"Got {unlabelled_batch_size}.")
        for name, source in {**sources, **unlabelled}.items():
            if len(source) == 0:
                raise EmptySourceError(f"Training source {name!r} is empty.")
        clash = sorted(set(sources) & set(unlabelled))
        if clash:
            raise ValueError(f"Sources {clash} are given both as labelled and as unlabelled; name each once.")
        rank, world = shard if shard is not None else (0, 1)
        if not 0 <= rank < world:
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world. Got {shard}.")
        if min(batch_size, unlabelled_batch_size or batch_size) < world:
            raise ValueError(f"A batch of {min(batch_size, unlabelled_batch_size or batch_size)} rows cannot be "
                             f"shared by {world} ranks; make the batch size at least the number of ranks.")
        self.rank, self.world = rank, world
        tails = {name: len(s) % size for names, size in ((sources, batch_size), (unlabelled, unlabelled_batch_size))
                 for name, s in names.items() if 0 < len(s) % size < world}
        if tails and rank == 0:
            log.warning("manytask: source(s) %s end each pass with fewer rows than the %d ranks (%s); a pass ends "
                        "before them on %d ranks and not in one process, so this run and its resumes on another "
                        "number of ranks draw other batches from then on. Sizes that leave no such tail keep them "
                        "equal.", sorted(tails), world, ", ".join(f"{n}: {r}" for n, r in tails.items()), world)
        self.unlabelled = unlabelled
        self.unlabelled_batch_size = unlabelled_batch_size
        self._unlabelled_sizes = torch.tensor([len(s) for s in unlabelled.values()], dtype=torch.float64)
        self.sources = dict(sources)
        self.names = list(self.sources)
        self.batch_size = batch_size
        self.sampler = sampler or Proportional()
        self.num_epochs = max(1, num_epochs)
        self.sizes = torch.tensor([len(s) for s in self.sources.values()], dtype=torch.float64)
        self.steps_per_epoch = max(1, math.ceil(int(self.sizes.sum()) / batch_size))
        self.generator = torch.Generator().manual_seed(seed)
        self.step = 0
        self._orders: dict[str, Tensor] = {}
        self._positions: dict[str, int] = {}

    @property
    def epoch(self) -> int:
        """Current epoch of the loader, from 0."""
        return self.step // self.steps_per_epoch

    def next(self) -> tuple[str, Batch]:
        """The next batch and the name of the source it came from."""
        index = 0 if len(self.names) == 1 else self.sampler.choose(
            self.sizes, self.step, self.epoch, self.num_epochs, self.generator
        )
        name = self.names[index]
        batch = self._draw(name, self.sources[name], self.batch_size)
        if self.unlabelled:
            names = list(self.unlabelled)
            other = names[0] if len(names) == 1 else names[int(torch.multinomial(
                self._unlabelled_sizes, 1, generator=self.generator))]
            batch = concat_batches(batch, self._draw(other, self.unlabelled[other], self.unlabelled_batch_size))
        self.step += 1
        return name, batch

    def _draw(self, name: str, source: Source, size: int) -> Batch:
        """The next ``size`` rows (fewer at the end of a pass) of ``source``'s random order."""
        order, position = self._orders.get(name), self._positions.get(name, 0)
        if order is None or len(order) - position < min(self.world, len(source)):
            order = torch.randperm(len(source), generator=self.generator)
            position = 0
        indices = order[position : position + size]
        self._orders[name], self._positions[name] = order, position + len(indices)
        if self.world > 1:
            indices = indices.tensor_split(self.world)[self.rank]
        return source.batch(indices)

    def state_dict(self) -> dict[str, object]:
        """Step, per-source orders and positions, and generator state."""
        return {
            "step": self.step,
            "generator": self.generator.get_state(),
            "orders": dict(self._orders),
            "positions": dict(self._positions),
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore a state from :meth:`state_dict`."""
        orders = dict(state["orders"])  # type: ignore[call-overload]
        every = {**self.sources, **self.unlabelled}
        unknown = sorted(set(orders) - set(every))
        if unknown:
            raise ValueError(f"Loader state refers to sources {unknown}, which this run does not have.")
        for name, order in orders.items():
            if len(order) != len(every[name]):
                raise ValueError(
                    f"Loader state for source {name!r} has {len(order)} samples but the source "
                    f"now has {len(every[name])}; the data changed since the checkpoint."
                )
        self.step = int(state["step"])  # type: ignore[call-overload]
        self.generator.set_state(state["generator"])  # type: ignore[arg-type]
        self._orders = {k: v.clone() for k, v in orders.items()}
        self._positions = {k: int(v) for k, v in dict(state["positions"]).items()}  # type: ignore[call-overload]
