"""The engine's losses are ``sums / counts`` and a task is present where its count is positive, also
when the caller hands the same counts tensor again (the trainer does while the layout repeats)."""

from __future__ import annotations

import torch
from torch import nn

from manytask.balancing import create_balancer
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine


def _step(engine: BackwardEngine, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    engine.begin_step()
    out = engine.forward(torch.ones(4, 2), ["a", "b", "c"])
    sums = torch.stack([out[n].sum() * 0 + float(i + 1) * 4 for i, n in enumerate("abc")])
    return engine.backward(sums, counts, step=0)


def test_counts_reused_or_changed_in_place_give_their_own_losses_and_presence() -> None:
    tasks = [Regression(n) for n in "abc"]
    engine = BackwardEngine(HardSharing(nn.Linear(2, 3), tasks, feature_dim=3), create_balancer("ew", tasks))
    counts = torch.tensor([4.0, 2.0, 1.0])
    for _ in range(2):  # the same tensor again: the same answer
        losses, weights = _step(engine, counts)
        assert losses.tolist() == [1.0, 4.0, 12.0] and weights.tolist() == [1.0, 1.0, 1.0]
    counts[1] = 0.0  # changed in place: task b is absent now (its sum is 0 then)
    engine.begin_step()
    out = engine.forward(torch.ones(4, 2), ["a", "c"])
    sums = torch.stack([out["a"].sum() * 0 + 4.0, torch.tensor(0.0), out["c"].sum() * 0 + 12.0])
    losses, weights = engine.backward(sums, counts, step=1)
    assert losses.tolist() == [1.0, 0.0, 12.0] and weights.tolist() == [1.0, 0.0, 1.0]
    assert engine.present.tolist() == [True, False, True]
