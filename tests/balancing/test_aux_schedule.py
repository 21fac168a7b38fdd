"""Main tasks at 1, auxiliary tasks on a schedule of the step, with real auxiliary tasks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manytask.balancing import AuxSchedule, create_balancer
from manytask.models import HardSharing
from manytask.tasks import Classification, Regression
from manytask.training import BackwardEngine

TASKS = [Regression("main"), Regression("aux1", role="auxiliary"), Classification("aux2", num_classes=3,
                                                                                  role="auxiliary")]
ALL = torch.tensor([True, True, True])


@pytest.mark.parametrize("schedule, expected", [
    # a(t) at t = 0, S/4, S/2, S, 2S for start 2, end 0.5, S = 8: by hand
    ("constant", [2.0, 2.0, 2.0, 0.5, 0.5]),
    ("linear", [2.0, 1.625, 1.25, 0.5, 0.5]),
    ("cosine", [2.0, 0.5 + 1.5 * (1 + math.cos(math.pi / 4)) / 2, 1.25, 0.5, 0.5]),
    ("exponential", [2.0, 2.0 * 0.25 ** 0.25, 1.0, 0.5, 0.5]),  # geometric: sqrt(2 * 0.5) at S/2
])
def test_schedules_by_hand(schedule: str, expected: list[float]) -> None:
    balancer = AuxSchedule(TASKS, steps=8, schedule=schedule, start=2.0, end=0.5)  # type: ignore[arg-type]
    for t, a in zip((0, 2, 4, 8, 16), expected):
        weights = balancer.weights(torch.ones(3, dtype=torch.float64), ALL, step=t)
        torch.testing.assert_close(weights, torch.tensor([1.0, a, a], dtype=torch.float64), rtol=1e-12, atol=0)


def test_defaults_fade_auxiliary_tasks_out_linearly_and_roles_decide() -> None:
    tasks = [Regression("m"), Regression("adv", role="adversarial"), Regression("x", role="auxiliary")]
    balancer = create_balancer("aux-schedule", tasks, steps=4)
    got = [balancer.weights(torch.ones(3), ALL, step=t).tolist() for t in (0, 1, 4, 100)]  # type: ignore[operator]
    assert got == [[1, 1, 1.0], [1, 1, 0.75], [1, 1, 0.0], [1, 1, 0.0]]


def test_update_through_the_engine_is_main_plus_a_times_auxiliary() -> None:
    torch.manual_seed(0)
    tasks = [Regression("main"), Regression("aux", role="auxiliary")]
    model = HardSharing(nn.Linear(3, 4), tasks, feature_dim=4)
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    balancer = AuxSchedule(tasks, steps=10, schedule="linear")
    engine = BackwardEngine(model, balancer)
    engine.begin_step()
    out = engine.forward(x, ["main", "aux"])
    sums = torch.stack([((out[n].squeeze(1) - y[:, i]) ** 2).sum() for i, n in enumerate(["main", "aux"])])
    _, weights = engine.backward(sums, torch.full((2,), 6.0), step=3)
    assert weights.tolist() == pytest.approx([1.0, 0.7])
    out = model(x, ["main", "aux"])
    losses = [((out[n].squeeze(1) - y[:, i]) ** 2).mean() for i, n in enumerate(["main", "aux"])]
    grads = [torch.autograd.grad(L, model.encoder.weight, retain_graph=True)[0] for L in losses]
    torch.testing.assert_close(model.encoder.weight.grad, grads[0] + 0.7 * grads[1])


def test_absent_task_gets_zero_and_it_is_stateless() -> None:
    balancer = AuxSchedule(TASKS, steps=10)
    _, weights = balancer.total(torch.ones(3), torch.tensor([True, False, True]), step=5)
    assert weights.tolist() == [1.0, 0.0, 0.5]
    assert balancer.state_dict() == {}
    assert balancer.weights(torch.ones(3), ALL, step=2).tolist() == pytest.approx([1.0, 0.8, 0.8])  # any order


@pytest.mark.parametrize("options, message", [
    ({"steps": 0}, "'steps' parameter of AuxSchedule must be an integer > 0"),
    ({"steps": 2.5}, "'steps'"),
    ({"steps": True}, "'steps'"),
    ({"steps": 5, "schedule": "step"}, "'schedule' parameter"),
    ({"steps": 5, "start": -1.0}, "'start' parameter .* >= 0"),
    ({"steps": 5, "end": math.nan}, "'end' parameter"),
    ({"steps": 5, "schedule": "exponential"}, "geometrically, so 'end' must be > 0"),
])
def test_bad_options_raise_naming_them(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuxSchedule(TASKS, **options)  # type: ignore[arg-type]
