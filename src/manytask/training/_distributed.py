"""Data parallelism over ``torch.distributed`` ranks (launched by ``torchrun``).

manytask does not wrap the model in ``DistributedDataParallel``: the backward engine runs
several backward passes a step (per-task Jacobians, split heads, Gramians), which DDP's
gradient hooks cannot follow. Instead every rank holds the same model and optimizer, reads
its contiguous share of each global batch (the loader draws the same global batch on every
rank), and the engine reduces exactly what the balancer needs with ``torch.distributed``
collectives:

- per-task loss sums and label counts (``[2, T]``), so every loss is the mean over the labelled
  entries of the **global** batch, whatever share of them each rank holds;
- the model's gradients (one flat buffer, plus a has-gradient flag per tensor so that a head
  no rank trained keeps ``grad = None``);
- for gradient methods: the ``T x T`` Gramian at the representation (the global batch's is the
  sum of the ranks'), or the per-task gradients of the shared parameters ``[T, P]`` at the
  exact level (the global Gramian ``J Jᵀ`` has cross-rank terms ``J_r J_sᵀ``, so the ranks'
  Gramians cannot simply be summed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["Ranks", "init_from_env"]


@dataclass
class Ranks:
    """This process's place among ``world`` data-parallel ranks."""

    rank: int
    world: int
    reduced_bytes: int = field(default=0, compare=False)  # all-reduced so far, this rank's payload

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over the ranks, in place (returned for chaining)."""
        self.reduced_bytes += tensor.numel() * tensor.element_size()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast(self, tensor: Tensor) -> Tensor:
        """Rank 0's ``tensor`` on every rank, in place."""
        dist.broadcast(tensor, src=0)
        return tensor

    def share(self, rows: Tensor) -> Tensor:
        """This rank's contiguous share of a global batch's row indices (rank order = row order)."""
        return rows.tensor_split(self.world)[self.rank]

    def reduce_gradients(self, parameters: list[Tensor]) -> None:
        """Sum the ``.grad`` of ``parameters`` over the ranks (one flat all-reduce). A tensor with
        no gradient on any rank keeps ``grad = None``; one with a gradient on some rank gets the sum."""
        if not parameters:
            return
        flags = torch.tensor([p.grad is not None for p in parameters], dtype=parameters[0].dtype,
                             device=parameters[0].device)
        flat = torch.cat([flags, *((p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                   for p in parameters)])
        self.all_reduce(flat)
        count = len(parameters)
        summed = flat[count:].split([p.numel() for p in parameters])  # views of the flat buffer, no copies
        for p, flag, grad in zip(parameters, flat[:count].tolist(), summed):
            p.grad = grad.view_as(p) if flag else None

    def same_on_every_rank(self, tensors: list[Tensor]) -> None:
        """Overwrite ``tensors`` (parameters, buffers) with rank 0's values: one broadcast per
        dtype and device of one flat buffer."""
        groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
        for tensor in tensors:
            groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
        for group in groups.values():
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            values = flat.split([t.numel() for t in group])
            with torch.no_grad():
                torch._foreach_copy_(group, [v.view_as(t) for v, t in zip(values, group)])

    def same_random_state(self, device: torch.device) -> None:
        """Every rank goes on from rank 0's torch random state (the CPU generator's and, on CUDA,
        the device's): dropout on shares of different sizes draws different amounts, and what draws
        next (a balancer's random orders or masks) must be alike on every rank."""
        states = [torch.get_rng_state()]
        if device.type == "cuda":
            states.append(torch.cuda.get_rng_state(device))
        flat = torch.cat(states).to(device)  # nccl broadcasts device tensors only
        dist.broadcast(flat, src=0)
        flat = flat.cpu()
        torch.set_rng_state(flat[:len(states[0])])
        if device.type == "cuda":
            torch.cuda.set_rng_state(flat[len(states[0]):], device)


def init_from_env(device: torch.device) -> Ranks | None:
    """The process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1), started
    with ``gloo`` on CPU or ``nccl`` on CUDA; None in a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())
