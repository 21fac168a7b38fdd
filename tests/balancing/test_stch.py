"""STCH against the gradient of mu log sum exp(lambda (L - z) / mu), limits and torchjd's STCH."""

from __future__ import annotations

import math

import pytest
import torch
from torchjd.scalarization import STCH as TorchJDSTCH

from manytask.balancing import STCH, create_balancer
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


def naive_stch(losses: torch.Tensor, lam: torch.Tensor, z: torch.Tensor, mu: float) -> torch.Tensor:
    """The paper's formula as written (no max shift): fine for moderate values in float64."""
    return mu * torch.log(torch.exp(lam * (losses - z) / mu).sum())


@pytest.mark.parametrize("mu", [0.1, 1.0, 10.0])
def test_weights_are_the_gradient_of_the_formula(mu: float) -> None:
    lam, z = [0.2, 0.5, 0.3], [0.1, -0.2, 0.0]
    losses = torch.tensor([1.0, 0.4, 2.5], dtype=torch.float64, requires_grad=True)
    reference = naive_stch(losses, torch.tensor(lam, dtype=torch.float64), torch.tensor(z, dtype=torch.float64), mu)
    (expected,) = torch.autograd.grad(reference, losses)
    _, weights = STCH(TASKS, mu=mu, preference=lam, ideal=z).total(losses, ALL, step=0)
    torch.testing.assert_close(weights, expected)


def test_two_tasks_closed_form_is_a_sigmoid() -> None:
    """T = 2: w_1 = lambda_1 sigmoid((lambda_1 (L_1 - z_1) - lambda_2 (L_2 - z_2)) / mu)."""
    tasks = TASKS[:2]
    mu, lam, z, L = 0.3, (0.7, 0.3), (0.5, 0.0), (2.0, 3.0)
    _, weights = STCH(tasks, mu=mu, preference=list(lam), ideal=list(z)).total(
        torch.tensor(L, dtype=torch.float64), torch.tensor([True, True]), step=0)
    gap = (lam[0] * (L[0] - z[0]) - lam[1] * (L[1] - z[1])) / mu
    p = 1 / (1 + math.exp(-gap))
    torch.testing.assert_close(weights, torch.tensor([lam[0] * p, lam[1] * (1 - p)], dtype=torch.float64))


def test_limits_of_mu() -> None:
    losses = torch.tensor([1.0, 5.0, 2.0], dtype=torch.float64)
    # mu -> 0: the Tchebycheff max, all weight (lambda_k) on the worst weighted loss
    _, small = STCH(TASKS, mu=1e-4).total(losses, ALL, step=0)
    torch.testing.assert_close(small, torch.tensor([0.0, 1 / 3, 0.0], dtype=torch.float64))
    # mu -> infinity: the softmax is uniform, w_i = lambda_i / T
    _, large = STCH(TASKS, mu=1e8).total(losses, ALL, step=0)
    torch.testing.assert_close(large, torch.full((3,), 1 / 9, dtype=torch.float64))


def test_huge_losses_and_small_mu_stay_finite() -> None:
    losses = torch.tensor([1e6, 3e6, 2e6])  # exp(1e6 / 0.01) overflows any float
    _, weights = STCH(TASKS, mu=0.01).total(losses, ALL, step=0)
    torch.testing.assert_close(weights, torch.tensor([0.0, 1 / 3, 0.0]))


def test_matches_torchjd_stch_when_every_task_is_present() -> None:
    lam, z = torch.tensor([0.1, 0.6, 0.3]), torch.tensor([0.0, 0.5, -0.5])
    base = torch.tensor([3.0, 1.0, 2.0])
    l1 = base.clone().requires_grad_()
    (expected,) = torch.autograd.grad(TorchJDSTCH(0.5, weights=lam, reference=z)(l1), l1)
    _, weights = STCH(TASKS, mu=0.5, preference=lam.tolist(), ideal=z.tolist()).total(base, ALL, step=0)
    torch.testing.assert_close(weights, expected)


def test_absent_task_drops_out_of_the_sum_without_renormalising() -> None:
    losses = torch.tensor([1.0, 100.0, 2.0], dtype=torch.float64)
    present = torch.tensor([True, False, True])
    _, weights = STCH(TASKS, mu=1.0).total(losses, present, step=0)
    reference = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(naive_stch(reference, torch.full((2,), 1 / 3, dtype=torch.float64),
                                                 torch.zeros(2, dtype=torch.float64), 1.0), reference)
    torch.testing.assert_close(weights, torch.tensor([expected[0], 0.0, expected[1]], dtype=torch.float64))


def test_options_by_task_name_and_errors() -> None:
    balancer = create_balancer("stch", TASKS, mu=0.5, preference={"a": 0.5, "b": 0.25, "c": 0.25},
                               ideal={"a": 0.0, "b": 1.0, "c": 0.0})
    assert balancer.preference.tolist() == [0.5, 0.25, 0.25]  # type: ignore[operator]
    assert balancer.ideal.tolist() == [0.0, 1.0, 0.0]  # type: ignore[operator]
    assert "preference" not in balancer.state_dict()  # configuration, not state
    with pytest.raises(ValueError, match="'mu' parameter of STCH"):
        STCH(TASKS, mu=0.0)
    with pytest.raises(ValueError, match="'preference' parameter of STCH must have a value > 0"):
        STCH(TASKS, preference=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="'preference' .* >= 0 .* task 'b'"):
        STCH(TASKS, preference=[0.5, -0.1, 0.6])
    with pytest.raises(ValueError, match="'ideal' parameter of STCH names unknown tasks \\['d'\\]"):
        STCH(TASKS, ideal={"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0})
    with pytest.raises(ValueError, match="'ideal' parameter of STCH must have one value per task"):
        STCH(TASKS, ideal=[0.0, 1.0])
