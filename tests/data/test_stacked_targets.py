"""Many same-shaped, partly labelled tasks stored as one block: the same batches as one tensor
per task, one reduction for which tasks are present, and the same training."""

from __future__ import annotations

import pytest
import torch

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource, _source
from manytask.data._batch import Batch
from manytask.models import MLP, HardSharing
from manytask.tasks import Regression
from manytask.training import Trainer, build_optimizer

T, N = 10, 60


def school_like() -> TensorSource:
    """Each row belongs to one of T tasks (its mask), plus a fully labelled task and a wider one."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 4, generator=g)
    owner = torch.arange(N) % T
    targets = {f"s{i}": torch.randn(N, generator=g) for i in range(T)}
    masks = {f"s{i}": owner == i for i in range(T)}
    targets["all"] = torch.randn(N, generator=g)  # fully labelled: not stacked
    targets["wide"] = torch.randn(N, 2, generator=g)
    masks["wide"] = owner < 3
    return TensorSource(x, targets, masks)


def test_a_batch_is_the_same_as_one_tensor_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    stacked = school_like()
    assert [names for names, _, _ in stacked._blocks] == [tuple(f"s{i}" for i in range(T))]
    monkeypatch.setattr(_source, "STACK_AT", 10**9)
    plain = school_like()
    assert plain._blocks == []
    indices = torch.tensor([5, 17, 3, 42, 0, 29])
    a, b = stacked.batch(indices), plain.batch(indices)
    assert list(a.targets) == list(b.targets) and list(a.masks) == list(b.masks)
    for key in b.targets:
        assert torch.equal(a.targets[key], b.targets[key]) and torch.equal(a.masks[key], b.masks[key]), key
    assert a.present() == b.present() == {"s5", "s7", "s3", "s2", "s0", "s9", "all", "wide"}


def test_moving_a_batch_keeps_the_masks_columns_of_the_block() -> None:
    batch = school_like().batch(torch.arange(12)).to("meta")
    (names, block), = batch.mask_blocks
    assert block.device.type == "meta" and batch.masks["s3"].device.type == "meta"
    assert batch.masks["s3"].data_ptr() == block[:, 3].data_ptr()
    assert isinstance(batch, Batch)


def test_training_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        source = school_like()
        tasks = [Regression(f"s{i}") for i in range(T)] + [Regression("all"), Regression("wide", num_outputs=2)]
        model = HardSharing(MLP(4, (6,)), tasks)
        bal = create_balancer("ew", tasks)
        trainer = Trainer(model, tasks, bal, build_optimizer(model, bal, "adam", 1e-2),
                          MultiSourceLoader({"train": source}, 8, seed=0), steps=10, progress=False)
        for _ in range(10):
            trainer._train_step()
        return [p.detach().clone() for p in model.parameters()]

    stacked = run()
    monkeypatch.setattr(_source, "STACK_AT", 10**9)
    for a, b in zip(stacked, run()):
        assert torch.equal(a, b)


def test_a_task_with_a_per_entry_mask_is_left_alone() -> None:
    tokens = {f"t{i}": torch.zeros(N, 5, dtype=torch.long) for i in range(T)}
    masks = {f"t{i}": torch.rand(N, 5) > 0.5 for i in range(T)}  # per token: not a per-sample block
    source = TensorSource(torch.randn(N, 3), tokens, masks)
    assert source._blocks == []
