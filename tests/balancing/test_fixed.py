"""Fixed user weights: the update is sum_i w_i grad L_i; options are validated by name."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manytask.balancing import BALANCERS, Fixed, create_balancer
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


@pytest.mark.parametrize("weights", [[1.0, 2.0, 0.5], {"c": 0.5, "a": 1.0, "b": 2.0}], ids=["list", "mapping"])
def test_update_is_the_weighted_sum_of_gradients(weights: object) -> None:
    theta = nn.Parameter(torch.tensor([1.0, -2.0]))
    losses = torch.stack([theta[0] ** 2, theta[1] ** 2, theta.sum()])  # grads (2, 0), (0, -4), (1, 1)
    total, w = Fixed(TASKS, weights=weights).total(losses, ALL, step=0)  # type: ignore[arg-type]
    total.backward()
    assert w.tolist() == [1.0, 2.0, 0.5]
    assert theta.grad.tolist() == [1.0 * 2 + 0.5 * 1, 2.0 * -4 + 0.5 * 1]


def test_absent_task_gets_zero() -> None:
    _, w = Fixed(TASKS, weights=[1.0, 2.0, 0.5]).total(torch.ones(3), torch.tensor([True, False, True]), step=0)
    assert w.tolist() == [1.0, 0.0, 0.5]


def test_weights_are_configuration_not_state() -> None:
    balancer = Fixed(TASKS, weights=[1.0, 2.0, 0.5])
    assert balancer.state_dict() == {}
    assert "'b': 2" in repr(balancer)


@pytest.mark.parametrize("weights, message", [
    ([1.0, 2.0], "one value per task \\(3"),
    ({"a": 1.0, "b": 1.0, "c": 1.0, "x": 1.0}, "names unknown tasks \\['x'\\]"),
    ({"a": 1.0, "c": 1.0}, "\\['b'\\] are missing"),
    ([1.0, -0.5, 1.0], ">= 0 .* -0.5 for task 'b'"),
    ([1.0, math.nan, 1.0], "finite .* task 'b'"),
    ({"a": 1.0, "b": 1.0, "c": math.inf}, "finite .* task 'c'"),
    ("abc", "list in task order or a mapping"),
])
def test_bad_weights_raise_naming_the_problem(weights: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"'weights' parameter of Fixed.*{message}"):
        Fixed(TASKS, weights=weights)  # type: ignore[arg-type]


def test_registry_validates_and_builds_from_a_config_mapping() -> None:
    options = BALANCERS.validate("fixed", {"weights": {"a": 1, "b": 2, "c": 0}}, provided=("tasks",))
    balancer = create_balancer("fixed", TASKS, **options)
    assert balancer.fixed.tolist() == [1.0, 2.0, 0.0]  # type: ignore[operator]
