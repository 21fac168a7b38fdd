"""The engine's one fused check of the update: it leaves the gradients as autograd computed them,
names a non-finite one among many parameter tensors, and reads sparse gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import NonFiniteLossError, Trainer, build_optimizer

TASKS = [Regression(f"t{i}") for i in range(12)]  # identical heads: one matmul, 24 head tensors


def school_like(trunk: nn.Module, optimizer: str = "adam") -> Trainer:
    torch.manual_seed(0)
    x = torch.randint(0, 10, (48, 3)) if isinstance(trunk, SparseTrunk) else torch.randn(48, 3)
    owner = torch.arange(48) % len(TASKS)
    source = TensorSource(x, {t.name: torch.randn(48) for t in TASKS}, {t.name: owner == i for i, t in enumerate(TASKS)})
    model = HardSharing(trunk, TASKS, feature_dim=5)
    balancer = create_balancer("ew", TASKS)
    return Trainer(model, TASKS, balancer, build_optimizer(model, balancer, optimizer, 1e-2),
                   MultiSourceLoader({"train": source}, 16, seed=0), steps=20, progress=False)


class SparseTrunk(nn.Module):
    """Mean of embedded tokens, whose table gets a sparse gradient."""

    out_features = 5

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 5, sparse=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens).mean(1)


def test_the_check_leaves_the_gradients_as_autograd_gives_them() -> None:
    trainer = school_like(nn.Sequential(nn.Linear(3, 5), nn.Tanh()))
    for _ in range(3):
        trainer._train_step()
    trainer.engine.begin_step()
    _, batch = trainer.loader.next()
    groups = trainer._groups(batch)
    sums, counts = trainer.loss_sums(groups, trainer.engine.forward)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    expected = torch.autograd.grad((sums / counts.clamp(min=1)).sum(), params, retain_graph=True, allow_unused=True)
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.engine.backward(sums, counts, step=trainer.step)
    for p, g in zip(params, expected):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)  # bitwise: a scale of 1 changes nothing


def test_a_nan_in_one_heads_gradient_among_many_is_named_and_not_applied() -> None:
    trainer = school_like(nn.Sequential(nn.Linear(3, 5), nn.Tanh()))
    trainer._train_step()
    head = trainer.model.heads["t7"]
    head.bias.register_hook(lambda grad: grad * float("nan"))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(NonFiniteLossError, match="gradient is not finite in 1 parameter tensor.*'heads.t7.bias'"):
        for _ in range(10):  # until a batch labels task t7
            trainer._train_step()
            before = [p.detach().clone() for p in trainer.model.parameters()]
    assert all(torch.equal(b, p) for b, p in zip(before, trainer.model.parameters()))


def test_a_sparse_gradient_is_checked() -> None:
    """The defect: the check took the norm of every gradient, which sparse tensors do not have, so
    an ``nn.Embedding(sparse=True)`` (with SGD, which takes sparse gradients) failed at step 1."""
    trainer = school_like(SparseTrunk(), optimizer="sgd")
    for _ in range(3):
        trainer._train_step()
    assert trainer.model.encoder.embedding.weight.grad.is_sparse
    trainer.model.encoder.embedding.weight.register_hook(lambda grad: grad * float("nan"))
    with pytest.raises(NonFiniteLossError, match="'encoder.embedding.weight'"):
        trainer._train_step()


def test_after_a_step_that_raised_the_next_finite_steps_pass_the_fast_check() -> None:
    """The check keeps its flag from step to step: a step that raised must leave it clear, or every
    later step would take the slow look for a culprit there is none of."""
    trainer = school_like(nn.Sequential(nn.Linear(3, 5), nn.Tanh()))
    trainer._train_step()
    handle = trainer.model.encoder[0].bias.register_hook(lambda grad: grad * float("nan"))
    with pytest.raises(NonFiniteLossError, match="'encoder.0.bias'"):
        trainer._train_step()
    handle.remove()
    looked = []
    explain = trainer.engine._explain_non_finite
    trainer.engine._explain_non_finite = lambda *args: looked.append(1) or explain(*args)  # type: ignore[method-assign]
    before = [p.detach().clone() for p in trainer.model.encoder.parameters()]
    for _ in range(3):
        trainer._train_step()
    assert not looked
    assert all(not torch.equal(b, p) for b, p in zip(before, trainer.model.encoder.parameters()))
