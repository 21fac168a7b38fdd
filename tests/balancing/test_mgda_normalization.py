"""MGDA's gradient normalisations (Sener & Koltun's code, ``gradient_normalizers``) against the
min-norm point of explicitly normalised gradient vectors, found by scipy's SLSQP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from manytask.balancing import MGDA
from manytask.tasks import Regression

TASKS = [Regression(n) for n in "abcd"]


def slsqp_weights(rows: np.ndarray) -> np.ndarray:
    """argmin over the simplex of ||Σ α_i r_i||², from the vectors themselves."""
    t = rows.shape[0]
    result = minimize(lambda a: float(np.sum((a @ rows) ** 2)), np.full(t, 1 / t), jac=lambda a: 2 * rows @ (a @ rows),
                      method="SLSQP", bounds=[(0, None)] * t,
                      constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1, "jac": lambda a: np.ones(t)}],
                      options={"ftol": 1e-15, "maxiter": 500})
    assert result.success
    return result.x


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_weights_are_those_of_the_normalised_gradients(normalization: str) -> None:
    rng = np.random.default_rng(0)
    jacobian = rng.normal(size=(3, 7)) * np.array([[0.1], [1.0], [10.0]])  # norms far apart
    jacobian[2] -= 1.5 * jacobian[1]  # some conflict
    losses = np.array([0.3, 2.0, 0.7])
    norms = np.linalg.norm(jacobian, axis=1)
    divisor = {"l2": norms, "loss": losses, "loss+": losses * norms}[normalization]
    expected = slsqp_weights(jacobian / divisor[:, None])
    present = torch.tensor([True, False, True, True])  # task "b" absent: rows are a, c, d
    full_losses = torch.tensor([0.3, 0.0, 2.0, 0.7], dtype=torch.float64)
    weights = MGDA(TASKS, normalization=normalization).gramian_weights(
        torch.tensor(jacobian @ jacobian.T), full_losses, present, step=0)
    np.testing.assert_allclose(weights.numpy(), expected, atol=1e-6)


def test_none_is_the_paper_and_bad_input_is_named() -> None:
    gramian = torch.tensor([[2.0, -1.0], [-1.0, 3.0]], dtype=torch.float64)
    losses, present = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([True, True, False, False])
    torch.testing.assert_close(MGDA(TASKS, normalization="none").gramian_weights(gramian, losses, present, step=0),
                               MGDA(TASKS).gramian_weights(gramian, losses, present, step=0))
    with pytest.raises(ValueError, match="'normalization' parameter of MGDA must be 'none', 'l2', 'loss' or 'loss\\+'"):
        MGDA(TASKS, normalization="max")
    with pytest.raises(ValueError, match=r"needs positive losses; at step 4 the loss of \['b'\] is not"):
        MGDA(TASKS, normalization="loss+").gramian_weights(
            gramian, torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64), present, step=4)
