"""PCGrad on the Gramian, batched over tasks, against the paper's loop on explicit gradients."""

from __future__ import annotations

import pytest
import torch
from torchjd.aggregation import PCGradWeighting

from manytask.balancing import PCGrad, pcgrad_weights
from manytask.tasks import Regression


def reference_update(jacobian: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """Yu et al. (2020), Alg. 1, one task at a time on the gradient vectors themselves."""
    projected = []
    for i in range(jacobian.shape[0]):
        g = jacobian[i].clone()
        for j in orders[i].tolist():
            if j == i:
                continue
            dot = g @ jacobian[j]
            if dot < 0:
                g = g - dot / (jacobian[j] @ jacobian[j]) * jacobian[j]
        projected.append(g)
    return torch.stack(projected).sum(0)


def jacobians() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for t, p in [(2, 5), (3, 4), (5, 12), (8, 3), (16, 40)]:  # (8, 3): rank-deficient
        scales = torch.logspace(-3, 3, t, dtype=torch.float64)[torch.randperm(t, generator=generator)]
        out.append(torch.randn(t, p, generator=generator, dtype=torch.float64) * scales[:, None])
    out.append(torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 1.0]], dtype=torch.float64))  # a zero gradient
    return out


@pytest.mark.parametrize("jacobian", jacobians(), ids=lambda j: f"T{j.shape[0]}xP{j.shape[1]}")
def test_weights_give_the_papers_update_for_any_orders(jacobian: torch.Tensor) -> None:
    t = jacobian.shape[0]
    for seed in range(3):
        orders = torch.rand(t, t, generator=torch.Generator().manual_seed(seed)).argsort(dim=1)
        weights = pcgrad_weights(jacobian @ jacobian.T, orders)
        torch.testing.assert_close(weights @ jacobian, reference_update(jacobian, orders), rtol=1e-9, atol=1e-12)


def test_two_tasks_by_hand_and_as_torchjd() -> None:
    # <g1, g2> = -1, |g1|² = 1, |g2|² = 4:
    # g1' = g1 + g2/4, g2' = g2 + g1 -> update 2 g1 + 1.25 g2 (the order cannot matter for T = 2)
    gramian = torch.tensor([[1.0, -1.0], [-1.0, 4.0]], dtype=torch.float64)
    pc = PCGrad([Regression("a"), Regression("b")])
    weights = pc.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
    torch.testing.assert_close(weights, torch.tensor([2.0, 1.25], dtype=torch.float64))
    torch.testing.assert_close(weights, PCGradWeighting()(gramian))


def test_no_conflict_is_the_plain_sum() -> None:
    jacobian = torch.eye(4, dtype=torch.float64) + 0.1
    orders = torch.arange(4).repeat(4, 1)
    torch.testing.assert_close(pcgrad_weights(jacobian @ jacobian.T, orders), torch.ones(4, dtype=torch.float64))


def test_orders_come_from_the_global_rng() -> None:
    jacobian = jacobians()[2]
    pc = PCGrad([Regression(f"t{i}") for i in range(5)])
    present = torch.ones(5, dtype=torch.bool)
    torch.manual_seed(3)
    first = pc.gramian_weights(jacobian @ jacobian.T, torch.ones(5), present, step=0)
    torch.manual_seed(3)
    again = pc.gramian_weights(jacobian @ jacobian.T, torch.ones(5), present, step=0)
    assert torch.equal(first, again)
