"""Many tasks' losses from one batched call (``loss_terms_of``): the sums, counts and gradients
that each task's own loss gives, computed here independently from ``torch.nn.functional`` on the
labelled rows only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from manytask import tasks as tasks_module
from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MLP, HardSharing
from manytask.tasks import LOSSES, STACK_AT, BinaryClassification, Classification, Regression, Task, loss_terms_of
from manytask.training import Callback, Trainer, build_optimizer

S, B = STACK_AT + 2, 12


def reference(task: Task, output: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, int]:
    """The loss sum and count of one task over its labelled rows, from torch.nn.functional."""
    rows = torch.ones(len(output), dtype=torch.bool) if mask is None else mask
    out, tgt = output[rows], target[rows]
    if isinstance(task, Classification):
        return F.cross_entropy(out, tgt, reduction="sum"), len(tgt)
    if tgt.ndim == 1:
        out = out.squeeze(-1)
    loss = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss, "bce": F.binary_cross_entropy_with_logits}
    return loss[str(task.loss)](out, tgt, reduction="sum"), tgt.numel()


KINDS: dict[str, tuple[Any, int, tuple[int, ...]]] = {  # task factory, outputs K, target shape per row
    "mse K=1 target [B]": (lambda n: Regression(n), 1, ()),
    "mse K=1 target [B, 1]": (lambda n: Regression(n), 1, (1,)),
    "l1 K=3": (lambda n: Regression(n, num_outputs=3, loss="l1"), 3, (3,)),
    "huber K=1": (lambda n: Regression(n, loss="huber"), 1, ()),
    "bce one label": (lambda n: BinaryClassification(n), 1, ()),
    "bce 3 labels": (lambda n: BinaryClassification(n, num_labels=3), 3, (3,)),
    "cross-entropy 5 classes": (lambda n: Classification(n, num_classes=5), 5, ()),
}


def batch_of(kind: str, masked: bool) -> tuple[list[Task], dict[str, Tensor], dict[str, Tensor], dict[str, Any]]:
    make, k, shape = KINDS[kind]
    tasks = [make(f"t{i}") for i in range(S)]
    outputs = {t.name: torch.randn(B, k, dtype=torch.float64, requires_grad=True) for t in tasks}
    targets: dict[str, Tensor] = {}
    masks: dict[str, Any] = {}
    for i, t in enumerate(tasks):
        if isinstance(t, Classification):
            target = torch.randint(0, 5, (B,))
        elif isinstance(t, BinaryClassification):
            target = torch.randint(0, 2, (B, *shape)).double()
        else:
            target = torch.randn(B, *shape, dtype=torch.float64)
        mask = torch.rand(B) < 0.5
        mask[i % B] = True  # every task is present
        if masked:  # what unlabelled rows often hold: NaN values, class -1
            target[~mask] = -1 if isinstance(t, Classification) else float("nan")
        targets[t.name], masks[t.name] = target, mask if masked else None
    return tasks, outputs, targets, masks


@pytest.mark.parametrize("masked", [False, True], ids=["all labelled", "partial labels"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_sums_counts_and_gradients_are_each_tasks_own(kind: str, masked: bool) -> None:
    tasks, outputs, targets, masks = batch_of(kind, masked)
    assert len({t.stack_key() for t in tasks}) == 1 and tasks[0].stack_key() is not None
    sums, counts = loss_terms_of(tasks, outputs, targets, masks)
    expected = [reference(t, outputs[t.name], targets[t.name], masks[t.name]) for t in tasks]
    torch.testing.assert_close(sums, torch.stack([s for s, _ in expected]), rtol=1e-12, atol=1e-12)
    assert counts == [c for _, c in expected]
    weights = torch.rand(S, dtype=torch.float64)
    mine = torch.autograd.grad((weights * sums).sum(), list(outputs.values()))
    theirs = torch.autograd.grad(sum(w * s for w, (s, _) in zip(weights, expected)), list(outputs.values()))
    for a, b in zip(mine, theirs):
        assert torch.isfinite(a).all()  # NaN targets of unlabelled rows reach no gradient
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_tasks_that_cannot_be_stacked_keep_their_place() -> None:
    """Stacked kinds interleaved with tasks computed one by one (a callable loss, a standardised
    regression, a kind with fewer than STACK_AT tasks): every sum in the tasks' order."""
    plain = [Regression(f"r{i}") for i in range(STACK_AT)]
    binary = [BinaryClassification(f"b{i}") for i in range(STACK_AT)]
    alone = [Regression("callable", loss=lambda o, t: (o - t).abs() ** 3),
             Regression("standardised", target_mean=(1.0,), target_std=(2.0,)),
             Classification("few", num_classes=3)]
    tasks: list[Task] = [x for pair in zip(plain, binary) for x in pair] + alone
    tasks.insert(3, tasks.pop())  # the unstacked ones among the stacked
    tasks.insert(0, tasks.pop())
    outputs = {t.name: torch.randn(B, 3 if t.name == "few" else 1, dtype=torch.float64) for t in tasks}
    targets = {t.name: torch.randint(0, 3 if t.name == "few" else 2, (B,)) for t in tasks}
    targets = {n: v if n == "few" else v.double() for n, v in targets.items()}
    masks = {t.name: (torch.rand(B) < 0.7) | (torch.arange(B) == 0) for t in tasks}
    sums, counts = loss_terms_of(tasks, outputs, targets, masks)
    for i, t in enumerate(tasks):
        total, count = t.loss_terms(outputs[t.name], targets[t.name], masks[t.name])
        torch.testing.assert_close(sums[i], total, rtol=1e-12, atol=1e-12)
        assert counts[i] == count


@dataclass(frozen=True)
class Shifted(Regression):
    """A user's task that changes its target: its loss must not be stacked as a plain regression's."""

    def loss_target(self, target: Tensor) -> Tensor:
        return target + 1.0


def test_what_is_not_stacked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Regression("plain").stack_key() is not None
    assert Shifted("shifted").stack_key() is None
    assert Regression("standardised", target_mean=(0.0,), target_std=(1.0,)).stack_key() is None
    assert Regression("callable", loss=lambda o, t: (o - t) ** 2).stack_key() is None
    assert Classification("tokens", level="token").stack_key() is None
    monkeypatch.setitem(LOSSES, "mse", lambda o, t, reduction="none": F.mse_loss(o, t, reduction=reduction))
    assert Regression("replaced mse").stack_key() is None  # a user's own function under a built-in name


class PresentCounts(Callback):
    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_before_backward(self, trainer: Trainer, step: int, sums: Tensor, counts: Tensor) -> None:
        self.counts.append(int((counts > 0).sum()))


def school_like_run(balancer: str, *callbacks: Callback) -> Trainer:
    """Twelve regression tasks, each row labelled for one of them (School's layout), under Adam;
    batches of 32 rows, which leave a task out now and then."""
    torch.manual_seed(0)
    x = torch.randn(240, 6)
    owner = torch.arange(240) % 12
    tasks = [Regression(f"s{i}") for i in range(12)]
    targets = {t.name: torch.where(owner == i, x.sum(1) * (i + 1) / 12, torch.nan) for i, t in enumerate(tasks)}
    masks = {t.name: owner == i for i, t in enumerate(tasks)}
    data = TensorSource(x, targets, masks)
    model = HardSharing(MLP(6, (16,)), tasks)
    bal = create_balancer(balancer, tasks)
    return Trainer(model, tasks, bal, build_optimizer(model, bal, "adam", 1e-2),
                   MultiSourceLoader({"train": data}, 32, seed=0), steps=30, progress=False, callbacks=callbacks)


@pytest.mark.parametrize("balancer", ["ew", "uw", "famo", "mgda"])
def test_a_run_is_the_run_of_one_loss_per_task(balancer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the trainer (absent tasks on most steps; FAMO's losses after the step recomputed):
    the same parameters after 30 steps as one loss call per task, which the batched run never makes."""
    calls: list[str] = []
    original = Task.loss_terms

    def counted(self: Task, *args: Any) -> tuple[Tensor, int]:
        calls.append(self.name)
        return original(self, *args)

    monkeypatch.setattr(Task, "loss_terms", counted)
    present = PresentCounts()
    batched = school_like_run(balancer, present)
    batched.fit()
    assert min(present.counts) >= STACK_AT and sum(c < 12 for c in present.counts) >= 5, present.counts
    assert calls == []
    monkeypatch.setattr(tasks_module._batched, "STACK_AT", 10**9)
    one_by_one = school_like_run(balancer)
    one_by_one.fit()
    assert len(calls) > 30
    for a, b in zip(batched.model.state_dict().values(), one_by_one.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["mse K=1 target [B]", "bce 3 labels", "cross-entropy 5 classes"])
def test_under_bfloat16_autocast_as_each_tasks_own(kind: str) -> None:
    """bf16 outputs: the batched losses follow autocast's dtype policy as each task's loss does."""
    tasks, outputs, targets, masks = batch_of(kind, masked=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = {n: o.detach().bfloat16() for n, o in outputs.items()}
        sums, counts = loss_terms_of(tasks, low, targets, masks)
        expected = [t.loss_terms(low[t.name], targets[t.name], masks[t.name]) for t in tasks]
    assert sums.dtype == expected[0][0].dtype
    torch.testing.assert_close(sums, torch.stack([s for s, _ in expected]), rtol=2e-2, atol=1e-2)
    assert counts == [c for _, c in expected]
