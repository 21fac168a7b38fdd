"""Tensor-factorised networks (DMTRL): the truncated HOSVD against tensors of known multilinear
rank, full ranks as the independent networks they were decomposed from, and task rank 1 tying
every task's weights to one matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from manytask.config import parse_config
from manytask.models import MLP, Independent, TensorFactorised, create_encoder, tensor_train, tucker
from manytask.runs import build_experiment
from manytask.tasks import Classification, Regression

TASKS = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2)]


def orthonormal(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(rows, cols, generator=generator, dtype=torch.float64))[0]


def test_hosvd_recovers_a_tensor_of_known_multilinear_rank() -> None:
    g = torch.Generator().manual_seed(0)
    core = torch.randn(3, 2, 2, generator=g, dtype=torch.float64)
    factors = orthonormal(6, 3, g), orthonormal(5, 2, g), orthonormal(4, 2, g)
    tensor = torch.einsum("ijk,ai,bj,tk->abt", core, *factors)
    s, u1, u2, u3 = tucker(tensor, (3, 2, 2))
    torch.testing.assert_close(torch.einsum("ijk,ai,bj,tk->abt", s, u1, u2, u3), tensor)
    for u in (u1, u2, u3):
        torch.testing.assert_close(u.T @ u, torch.eye(u.shape[1], dtype=torch.float64))
    s_low, *low = tucker(tensor, (1, 1, 1))  # a lower rank loses some of it
    assert not torch.allclose(torch.einsum("ijk,ai,bj,tk->abt", s_low, *low), tensor)


def test_tensor_train_svd_recovers_a_tensor_of_known_tt_ranks() -> None:
    g = torch.Generator().manual_seed(1)
    cores = (torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(2, 5, 3, generator=g, dtype=torch.float64),
             torch.randn(3, 4, generator=g, dtype=torch.float64))
    tensor = torch.einsum("ai,ibj,jt->abt", *cores)
    g1, g2, g3 = tensor_train(tensor, (2, 3))
    assert g1.shape == (6, 2) and g2.shape == (2, 5, 3) and g3.shape == (3, 4)
    torch.testing.assert_close(torch.einsum("ai,ibj,jt->abt", g1, g2, g3), tensor)
    full = torch.randn(6, 5, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(torch.einsum("ai,ibj,jt->abt", *tensor_train(full, (99, 99))), full)


@pytest.mark.parametrize("form", ["tucker", "tt"])
@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_full_ranks_start_as_the_independent_networks(encoder: str, form: str) -> None:
    def trunk() -> torch.nn.Module:
        return MLP(5, (7, 4)) if encoder == "mlp" else create_encoder("cnn", out_features=8, channels=[2, 3])

    torch.manual_seed(0)
    factorised = TensorFactorised(trunk(), TASKS, form=form)
    torch.manual_seed(0)
    independent = Independent(trunk(), TASKS)
    x = torch.randn(4, 5) if encoder == "mlp" else torch.randn(4, 1, 28, 28)
    ours, theirs = factorised(x), independent(x)
    for task in TASKS:
        torch.testing.assert_close(ours[task.name], theirs[task.name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("form, ranks", [("tucker", (7, 5, 1)), ("tt", (7, 1))])
def test_task_rank_one_ties_every_task_to_one_matrix_per_weight(form: str, ranks: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = TensorFactorised(MLP(5, (7, 4)), TASKS, ranks=ranks, form=form)
    weights = [model.weights(t.name)["stages.0.1.weight"].detach() for t in TASKS]
    stacked = torch.stack([w.flatten() for w in weights])  # [T, |W|]
    singular = torch.linalg.svdvals(stacked)
    assert singular[1:].max() < 1e-5 * singular[0]
    counts = model.parameter_count()
    assert counts["factors"] < counts["independent"]


@pytest.mark.parametrize("form, ranks", [("tucker", (2, 2, 1)), ("tt", (2, 1))])
def test_task_rank_one_checkpoints_and_resumes_exactly(form: str, ranks: tuple[int, ...], tmp_path: Path) -> None:
    """A rank-1 task factor's rows are one-element tensors at stride T: the checkpoint's checksum
    used to refuse them (``.view(uint8)`` of a "contiguous" tensor at stride 3), so no run saved."""
    from manytask.balancing import create_balancer
    from manytask.data import MultiSourceLoader, TensorSource
    from manytask.training import Checkpointing, Trainer, build_optimizer

    def trainer(steps: int, folder: Path) -> Trainer:
        torch.manual_seed(0)
        x = torch.randn(32, 5)
        data = TensorSource(x, {"a": x[:, 0].clone(), "b": (x[:, 1] > 0).long(), "c": x[:, 2:4].clone()})
        model = TensorFactorised(MLP(5, (7, 4)), TASKS, ranks=ranks, form=form)
        bal = create_balancer("ew", TASKS)
        return Trainer(model, TASKS, bal, build_optimizer(model, bal, "adam", 1e-2),
                       MultiSourceLoader({"t": data}, 8, seed=0), steps=steps, progress=False,
                       checkpoints=Checkpointing(folder, every=1))

    straight = trainer(4, tmp_path / "straight")
    straight.fit()
    trainer(2, tmp_path / "resumed").fit()
    resumed = trainer(4, tmp_path / "resumed")
    resumed.fit(resume="latest")
    for (key, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), key


def test_bad_ranks_and_backbones_are_named() -> None:
    with pytest.raises(ValueError, match="cannot keep per-task buffers"):
        TensorFactorised(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4)), TASKS, feature_dim=4)
    with pytest.raises(ValueError, match="tucker ranks must be 3 positive ints"):
        TensorFactorised(MLP(5, (4,)), TASKS, ranks=(2, 2))
    with pytest.raises(ValueError, match="tt ranks must be 2 positive ints"):
        TensorFactorised(MLP(5, (4,)), TASKS, ranks=(2, 2, 2), form="tt")
    with pytest.raises(ValueError, match="form must be 'tucker' or 'tt'"):
        TensorFactorised(MLP(5, (4,)), TASKS, form="cp")


def test_from_a_config() -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": "dmtrl", "encoder": {"name": "mlp", "hidden": [8, 6]}, "ranks": [4, 4, 2]},
        "training": {"steps": 3, "progress": False},
    })
    experiment = build_experiment(config)
    for _ in range(3):
        experiment.trainer._train_step()
    assert isinstance(experiment.model, TensorFactorised)
    assert all(torch.isfinite(p).all() for p in experiment.model.parameters())


def test_exact_balancing_takes_the_jacobian_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """The weights are built outside any module's forward, where autogram's hooks cannot see them."""
    import logging

    from manytask.balancing import create_balancer
    from manytask.training import BackwardEngine

    torch.manual_seed(0)
    regression = [Regression("a"), Regression("b"), Regression("c")]
    model = TensorFactorised(MLP(5, (6,)), regression, ranks=(4, 3, 2))
    with caplog.at_level(logging.INFO, logger="manytask"):
        engine = BackwardEngine(model, create_balancer("mgda", regression))
    assert engine.gramian_engine is None
    assert "used outside their modules' forward" in caplog.text
    engine.begin_step()
    out = engine.forward(torch.randn(8, 5), ["a", "b", "c"])
    weights = engine.backward(torch.stack([out[n].pow(2).sum() for n in "abc"]), torch.full((3,), 8.0), step=0)[1]
    assert torch.isfinite(weights).all() and weights.sum().item() == pytest.approx(1.0)
    assert all(p.grad is not None for p in model.shared_parameters())
