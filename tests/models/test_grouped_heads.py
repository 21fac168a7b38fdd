"""Identical linear heads as one matmul (many tasks): the same outputs and gradients as one call
per head, the same training with partial labels, and no grouping where heads differ."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MLP, HardSharing, _hard_sharing
from manytask.tasks import BinaryClassification, Regression
from manytask.training import Trainer, build_optimizer

T = 10


def tasks() -> list[Regression]:
    return [Regression(f"s{i}") for i in range(T)]


def test_outputs_and_gradients_match_one_call_per_head() -> None:
    torch.manual_seed(0)
    model = HardSharing(MLP(5, (6,)), tasks()).double()
    assert model.grouped_heads
    x = torch.randn(7, 5, dtype=torch.float64)
    features = model.encoder(x)
    grouped = model.forward_heads(features)
    separate = {n: model.heads[n](features) for n in model.task_names}
    for name in model.task_names:
        torch.testing.assert_close(grouped[name], separate[name], rtol=1e-12, atol=1e-12)
    weights = torch.arange(1.0, T + 1, dtype=torch.float64)

    def gradients(outputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        total = sum(w * o.pow(2).sum() for w, o in zip(weights, outputs.values()))
        return list(torch.autograd.grad(total, list(model.parameters()), retain_graph=True))

    for a, b in zip(gradients(grouped), gradients(separate)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_few_tasks_or_different_heads_are_not_grouped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = HardSharing._grouped
    monkeypatch.setattr(HardSharing, "_grouped", lambda self, *a: calls.append(1) or real(self, *a))
    model = HardSharing(MLP(5, (6,)), tasks())
    model(torch.randn(3, 5))
    model(torch.randn(3, 5), [f"s{i}" for i in range(_hard_sharing.GROUP_AT - 1)])
    assert calls == [1]  # the call with every task; fewer than GROUP_AT go head by head
    mixed = tasks()[:-1] + [BinaryClassification("flag")]
    assert HardSharing(MLP(5, (6,)), mixed).grouped_heads  # the same sizes: still identical maps
    wider = tasks()[:-1] + [Regression("two", num_outputs=2)]
    assert not HardSharing(MLP(5, (6,)), wider).grouped_heads
    hidden = tasks()[:-1] + [Regression("deep", head_hidden=3)]
    assert not HardSharing(MLP(5, (6,)), hidden).grouped_heads
    model.heads["s0"] = nn.Sequential(nn.Linear(6, 1))  # replaced afterwards: seen at the next forward
    assert not model.grouped_heads
    assert model(torch.randn(3, 5))["s0"].shape == (3, 1)


@pytest.mark.parametrize("balancer", ["ew", "mgda-rep"])
def test_training_with_partial_labels_matches_one_call_per_head(balancer: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each sample is labelled for one task, as in School; grouped and separate heads train alike."""
    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        n = 160
        x = torch.randn(n, 5, dtype=torch.float64)
        owner = torch.arange(n) % T
        targets = {f"s{i}": x[:, i % 5] * (i + 1) for i in range(T)}
        masks = {f"s{i}": owner == i for i in range(T)}
        ts = tasks()
        model = HardSharing(MLP(5, (6,)), ts).double()
        options = {"level": "representation"} if balancer == "mgda-rep" else {}
        bal = create_balancer(balancer.split("-")[0], ts, **options)
        loader = MultiSourceLoader({"train": TensorSource(x, targets, masks)}, 32, seed=0)
        trainer = Trainer(model, ts, bal, build_optimizer(model, bal, "adam", 1e-2), loader, steps=6, progress=False)
        for _ in range(6):
            trainer._train_step()
        return [p.detach().clone() for p in model.parameters()]

    grouped = run()
    monkeypatch.setattr(_hard_sharing, "GROUP_AT", 10**9)
    separate = run()
    for a, b in zip(grouped, separate):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_unknown_tasks_are_named_in_the_order_asked() -> None:
    model = HardSharing(MLP(5, (6,)), tasks())
    with pytest.raises(KeyError, match=r"Unknown tasks \['zz', 'aa'\]; the model has \['s0', 's1'"):
        model(torch.randn(2, 5), ["s1", "zz", "s3", "aa"])
