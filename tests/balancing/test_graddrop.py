"""GradDrop against torchjd's GradDrop aggregator (same random draws), hand-worked elements, the
keep probability P by Monte Carlo, leaks, absent tasks, and a draw that conflicts with a task."""

from __future__ import annotations

import pytest
import torch
from torchjd.aggregation import GradDrop as TorchJDGradDrop

from manytask.balancing import GradDrop, balancer_info, create_balancer
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.ones(3, dtype=torch.bool)


@pytest.mark.parametrize("leak", [0.0, [0.0, 0.5, 1.0]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_torchjd_graddrop_with_the_same_draws(leak: float | list[float], dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    jacobian = (torch.randn(3, 500, generator=generator) * torch.tensor([[1e-3], [1.0], [1e3]])).to(dtype)
    jacobian[:, :10] = 0  # elements where every gradient is 0
    theirs = TorchJDGradDrop(leak=None if leak == 0.0 else torch.tensor(leak, dtype=dtype))
    torch.manual_seed(1)
    expected = theirs(jacobian)
    torch.manual_seed(1)
    ours = GradDrop(TASKS, leak=leak).aggregate(jacobian, torch.ones(3), ALL, step=0)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_hand_worked_elements() -> None:
    """Columns: all positive (kept whatever U), all negative (kept), opposite (one sign kept), zero."""
    jacobian = torch.tensor([[1.0, -1.0, 2.0, 0.0], [3.0, -2.0, -1.0, 0.0]])
    present = torch.tensor([True, False, True])
    drop = GradDrop(TASKS)
    for seed in range(20):
        torch.manual_seed(seed)
        u = torch.rand(4)
        torch.manual_seed(seed)
        update = drop.aggregate(jacobian, torch.ones(3), present, step=0)
        third = 2.0 if 0.5 * (1 + 1 / 3) > u[2] else -1.0  # P = ½(1 + (2 - 1)/(2 + 1)) = 2/3
        assert update.tolist() == [4.0, -3.0, third, 0.0]


def test_positive_sign_is_kept_with_probability_p() -> None:
    """Column (3, -1): P = ½(1 + 2/4) = 3/4; over 40000 independent elements the positive part
    (3) is kept in 3/4 of them (4 standard deviations: 0.0087)."""
    jacobian = torch.tensor([[3.0], [-1.0]]).expand(2, 40_000).contiguous()
    torch.manual_seed(0)
    update = GradDrop(TASKS[:2]).aggregate(jacobian, torch.ones(2), torch.ones(2, dtype=torch.bool), step=0)
    assert set(update.unique().tolist()) == {3.0, -1.0}
    assert abs((update == 3.0).double().mean().item() - 0.75) < 0.0087


def test_leak_one_passes_a_task_through_and_mappings_follow_task_names() -> None:
    jacobian = torch.tensor([[1.0, -2.0, 3.0], [-1.0, 2.0, -3.0]])
    drop = GradDrop(TASKS, leak={"a": 1.0, "b": 0.0, "c": 0.0})
    torch.manual_seed(0)
    update = drop.aggregate(jacobian, torch.ones(3), torch.tensor([True, True, False]), step=0)
    rest = update - jacobian[0]  # a passes through; b's element is either kept or dropped
    assert bool(((rest == 0) | (rest == jacobian[1])).all())
    assert drop.leak.tolist() == [1.0, 0.0, 0.0] and "leak" not in drop.state_dict()


def test_a_draw_can_conflict_with_a_task_although_no_two_gradients_conflict() -> None:
    """Why GradDrop claims no ``nonconflicting``: pairwise inner products of these rows are >= 0,
    yet some draws give an update with g_2ᵀ d < 0 (found by enumerating sign choices)."""
    jacobian = torch.tensor([[-1.8453, 1.3341, -1.3486, -0.2439],
                             [-0.5634, 0.4359, 0.7346, 1.8333],
                             [1.8688, 0.5335, -2.7553, 2.1009]], dtype=torch.float64)
    assert ((jacobian @ jacobian.T) >= 0).all()
    drop = GradDrop(TASKS)
    conflicts = 0
    for seed in range(200):
        torch.manual_seed(seed)
        conflicts += int(((jacobian @ drop.aggregate(jacobian, torch.ones(3), ALL, step=0)) < 0).any())
    assert conflicts > 0
    assert not balancer_info("graddrop").nonconflicting


def test_levels_and_options() -> None:
    assert balancer_info("graddrop").levels == ("representation", "exact")
    assert create_balancer("graddrop", TASKS).level == "representation"
    with pytest.raises(ValueError, match="'level' parameter of GradDrop"):
        GradDrop(TASKS, level="last_shared")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'leak' parameter of GradDrop must be in \\[0, 1\\].*task 'b'"):
        GradDrop(TASKS, leak=[0.0, 1.5, 0.0])
    with pytest.raises(ValueError, match="'leak' parameter of GradDrop names unknown tasks"):
        GradDrop(TASKS, leak={"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0})


def test_same_seed_same_update_and_it_draws_from_the_global_rng() -> None:
    jacobian = torch.randn(3, 50, generator=torch.Generator().manual_seed(3))
    drop = GradDrop(TASKS)
    torch.manual_seed(5)
    first = drop.aggregate(jacobian, torch.ones(3), ALL, step=0)
    second = drop.aggregate(jacobian, torch.ones(3), ALL, step=1)
    torch.manual_seed(5)
    assert torch.equal(drop.aggregate(jacobian, torch.ones(3), ALL, step=0), first)
    assert not torch.equal(first, second) and balancer_info("graddrop").random
