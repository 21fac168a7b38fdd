"""The no-sharing model trains each task exactly as if it were alone."""

from __future__ import annotations

import torch

from manytask.balancing import EW
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MLP, Independent
from manytask.tasks import Regression
from manytask.training import Trainer, build_optimizer


def test_independent_equals_training_alone() -> None:
    x = torch.randn(64, 5)
    targets = {"a": x.sum(1), "b": x[:, 0] * 3}
    both = Independent(MLP(5, (8,)), [Regression("a"), Regression("b")])
    alone = Independent(MLP(5, (8,)), [Regression("a")])
    alone.encoders["a"].load_state_dict(both.encoders["a"].state_dict())
    alone.heads["a"].load_state_dict(both.heads["a"].state_dict())
    assert list(both.shared_parameters()) == []
    for model, tasks in ((both, ["a", "b"]), (alone, ["a"])):
        task_list = [Regression(t) for t in tasks]
        source = TensorSource(x, {t: targets[t] for t in tasks})
        Trainer(model, task_list, EW(task_list), build_optimizer(model, None, "adam", 1e-2),
                MultiSourceLoader({"s": source}, 16, seed=3), steps=12, progress=False).fit()
    for p, q in zip(both.encoders["a"].parameters(), alone.encoders["a"].parameters()):
        torch.testing.assert_close(p, q)
    assert not torch.equal(both.encoders["a"].stages[0][1].weight, both.encoders["b"].stages[0][1].weight)
