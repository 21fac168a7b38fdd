"""GLS (geometric loss strategy) against the geometric mean's gradient computed independently."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchjd.scalarization import GeometricMean

from manytask.balancing import GLS, create_balancer
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


def exp_losses(theta: torch.Tensor, A: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``L_i = s_i exp(A_i . theta)``: positive, with ``grad L_i = L_i A_i``."""
    return scales * torch.exp(A @ theta)


def test_weights_are_the_partial_derivatives_of_the_geometric_mean() -> None:
    losses = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64, requires_grad=True)
    reference = torch.prod(losses) ** (1 / 3)  # the plain product (no logs): an independent route
    (expected,) = torch.autograd.grad(reference, losses)
    total, weights = GLS(TASKS).to(torch.float64).total(losses, ALL, step=0)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(total, reference)  # sum_i w_i L_i = GM exactly
    # and by hand: w_i = GM / (T L_i)
    gm = (0.5 * 2.0 * 7.0) ** (1 / 3)
    torch.testing.assert_close(weights, torch.tensor([gm / (3 * 0.5), gm / (3 * 2.0), gm / (3 * 7.0)],
                                                     dtype=torch.float64))


def test_update_is_the_gradient_of_the_geometric_mean_on_ill_conditioned_losses() -> None:
    """With L_i = s_i exp(A_i theta): grad GM = GM/T sum_i A_i, whatever the scales s_i."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 5, generator=g, dtype=torch.float64)
    scales = torch.tensor([1e-3, 1.0, 1e3], dtype=torch.float64)
    theta = nn.Parameter(torch.randn(5, generator=g, dtype=torch.float64))
    losses = exp_losses(theta, A, scales)
    total, _ = GLS(TASKS).total(losses, ALL, step=0)
    total.backward()
    gm = torch.exp(torch.log(losses.detach()).mean())
    torch.testing.assert_close(theta.grad, gm / 3 * A.sum(0))


def test_scaling_one_loss_scales_the_update_by_c_to_the_one_over_t() -> None:
    g = torch.Generator().manual_seed(1)
    A = torch.randn(3, 4, generator=g, dtype=torch.float64)
    updates = []
    for c in (1.0, 1e3):
        theta = nn.Parameter(torch.ones(4, dtype=torch.float64))
        losses = exp_losses(theta, A, torch.tensor([1.0, c, 1.0], dtype=torch.float64))
        GLS(TASKS).total(losses, ALL, step=0)[0].backward()
        updates.append(theta.grad)
    torch.testing.assert_close(updates[1], updates[0] * 1e3 ** (1 / 3))


def test_matches_torchjd_geometric_mean_when_every_task_is_present() -> None:
    losses = torch.tensor([0.3, 1.7, 40.0], requires_grad=True)
    (expected,) = torch.autograd.grad(GeometricMean()(losses), losses)
    _, weights = GLS(TASKS).total(losses, ALL, step=0)
    torch.testing.assert_close(weights, expected)


def test_absent_task_is_left_out_of_the_product() -> None:
    losses = torch.tensor([4.0, 0.0, 9.0], dtype=torch.float64)  # b absent: its 0 is no label, not a loss
    present = torch.tensor([True, False, True])
    total, weights = GLS(TASKS).to(torch.float64).total(losses, present, step=0)
    assert total.item() == pytest.approx(6.0)  # sqrt(4 * 9), T' = 2
    torch.testing.assert_close(weights, torch.tensor([6.0 / 8, 0.0, 6.0 / 18], dtype=torch.float64))


def test_extreme_losses_stay_finite_in_the_log_domain() -> None:
    """The product of 1e-30 three times underflows in float32; the log-domain mean does not."""
    losses = torch.tensor([1e-30, 1e-30, 1e30])
    _, weights = GLS(TASKS).total(losses, ALL, step=0)
    assert torch.prod(losses) == 0  # the naive route fails
    expected = torch.tensor([1e-10 / (3e-30), 1e-10 / (3e-30), 1e-10 / 3e30], dtype=torch.float64)
    torch.testing.assert_close(weights.double(), expected, rtol=1e-4, atol=0)  # float32 logs


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_non_positive_loss_raises_naming_the_task(bad: float) -> None:
    with pytest.raises(ValueError, match="task 'b' has loss"):
        GLS(TASKS).total(torch.tensor([1.0, bad, 2.0]), ALL, step=0)


def test_a_non_positive_absent_loss_is_ignored_and_a_nan_is_left_to_the_engine() -> None:
    _, weights = GLS(TASKS).total(torch.tensor([1.0, -5.0, 4.0]), torch.tensor([True, False, True]), step=0)
    assert torch.isfinite(weights).all()
    _, weights = GLS(TASKS).total(torch.tensor([-1.0, math.nan, 4.0]), ALL, step=0)  # no ValueError
    assert not torch.isfinite(weights).all()


def test_registry_builds_it() -> None:
    assert isinstance(create_balancer("gls", TASKS), GLS)
