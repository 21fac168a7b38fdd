"""Cross-stitch networks: Eq. 1 against a hand computation, identity units as independent columns,
the units' own learning rate, the exact Gramian against per-task autograd, and training with
T = 3 under Adam with a task absent for several steps."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import Tensor

from manytask.balancing import GramianBalancer, create_balancer
from manytask.config import parse_config
from manytask.models import MLP, CrossStitch, CrossStitchUnit, Independent, create_encoder
from manytask.runs import build_experiment
from manytask.tasks import Classification, Regression, Task
from manytask.training import BackwardEngine, build_optimizer

from .helpers import assert_old_layout_loads, assert_rows_are_each_tasks_own

TASKS: list[Task] = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2)]


def test_forward_is_eq_1_after_every_stage() -> None:
    torch.manual_seed(0)
    model = CrossStitch(MLP(5, (7, 4)), TASKS).double()
    with torch.no_grad():
        for unit in model.units:
            unit.alpha.copy_(torch.randn(3, 3))
        for row in model.rows.values():
            row.copy_(torch.randn(3))
    x = torch.randn(6, 5, dtype=torch.float64)
    columns = [model.columns[t.name] for t in TASKS]
    acts = [x] * 3
    for stage in range(2):
        outs = [column.stages[stage](a) for column, a in zip(columns, acts)]
        alpha = model.units[0].alpha if stage == 0 else torch.stack([model.rows[t.name] for t in TASKS])
        acts = [sum(alpha[t, s] * outs[s] for s in range(3)) for t in range(3)]  # x~_t = sum_s a_ts x_s
    out = model(x)
    for t, task in enumerate(TASKS):
        torch.testing.assert_close(out[task.name], model.heads[task.name](acts[t]), rtol=1e-12, atol=1e-12)


def test_identity_units_are_independent_columns() -> None:
    torch.manual_seed(0)
    stitched = CrossStitch(MLP(5, (7, 4)), TASKS, init=(1.0, 0.0))
    torch.manual_seed(0)
    independent = Independent(MLP(5, (7, 4)), TASKS)
    x = torch.randn(6, 5)
    ours, theirs = stitched(x), independent(x)
    for task in TASKS:
        torch.testing.assert_close(ours[task.name], theirs[task.name], rtol=0, atol=0)
    sum(o.sum() for o in ours.values()).backward()
    sum(o.sum() for o in theirs.values()).backward()
    for task in TASKS:
        for p, q in zip(stitched.columns[task.name].parameters(), independent.encoders[task.name].parameters()):
            torch.testing.assert_close(p.grad, q.grad)


def test_unit_gradient_by_finite_differences() -> None:
    unit = CrossStitchUnit(3, 0.7, 0.3).double()
    stacked = torch.randn(3, 4, 2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(unit, (stacked,))
    torch.testing.assert_close(unit.alpha.sum(1), torch.ones(3, dtype=torch.float64))  # rows convex at init


def test_units_train_at_their_own_learning_rate() -> None:
    model = CrossStitch(MLP(5, (4,)), TASKS, alpha_lr_scale=100.0)
    optimizer = build_optimizer(model, None, "sgd", lr=0.01, momentum=0.0)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["model:cross-stitch units"]["lr"] == pytest.approx(1.0)
    alphas = {id(p) for p in (*model.units.parameters(), *model.rows.values())}
    assert len(alphas) == 3  # one stage: no unit between stages, a row per task after it
    assert {id(p) for p in groups["model:cross-stitch units"]["params"]} == alphas
    assert all(id(p) not in alphas for p in groups["default"]["params"])
    before = model.rows["b"].detach().clone()
    sum(o.sum() for o in model(torch.randn(4, 5)).values()).backward()
    grad = model.rows["b"].grad.clone()
    optimizer.step()
    torch.testing.assert_close(model.rows["b"].detach(), before - 1.0 * grad)


def test_the_last_units_rows_are_the_tasks_own() -> None:
    """Row t of the last unit feeds head t alone: it is task t's parameter (a gradient method
    gives it the task's own gradient, as the head), not a shared one."""
    model = CrossStitch(MLP(5, (7, 4)), TASKS)
    assert_rows_are_each_tasks_own(model, model.rows, torch.randn(6, 5))
    assert {id(p) for p in model.units.parameters()} <= {id(p) for p in model.shared_parameters()}


def test_a_checkpoint_with_the_last_unit_as_one_matrix_loads() -> None:
    torch.manual_seed(0)
    model = CrossStitch(MLP(5, (7, 4)), TASKS)
    with torch.no_grad():
        for row in model.rows.values():
            row.add_(torch.randn(3))
    before = torch.stack([model.rows[t.name].detach() for t in TASKS])  # the layout before: one matrix
    assert_old_layout_loads(model, CrossStitch(MLP(5, (7, 4)), TASKS), "rows.", "units.1.alpha", before,
                            torch.randn(4, 5))


class Recorder(GramianBalancer):
    stateful: ClassVar[bool] = False

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        self.seen = gramian.detach().clone()
        return torch.full((gramian.shape[0],), 1.0, dtype=gramian.dtype)


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_exact_gramian_equals_per_task_autograd(encoder: str) -> None:
    """The units and columns are shared: the engine's Gramian is J Jᵀ over all of them."""
    torch.manual_seed(0)
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    trunk = MLP(5, (6, 4)) if encoder == "mlp" else create_encoder("cnn", out_features=8, channels=[2, 3])
    model = CrossStitch(trunk, tasks, init=(0.6, 0.4)).double()
    x = torch.randn(4, 5) if encoder == "mlp" else torch.randn(4, 1, 28, 28)
    x, y = x.double(), torch.randn(4, 3, dtype=torch.float64)
    recorder = Recorder(tasks)
    engine = BackwardEngine(model, recorder)
    engine.begin_step()
    out = engine.forward(x, ["a", "b", "c"])
    engine.backward(torch.stack([(out[n].squeeze(1) - y[:, i]).pow(2).sum() for i, n in enumerate("abc")]),
                    torch.full((3,), 4.0), step=0)
    shared = list(model.shared_parameters())
    out = model(x)
    rows = []
    for i, n in enumerate("abc"):
        loss = (out[n].squeeze(1) - y[:, i]).pow(2).mean()
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared, retain_graph=True)]))
    jacobian = torch.stack(rows)
    torch.testing.assert_close(recorder.seen, jacobian @ jacobian.T, rtol=1e-9, atol=1e-12)


def test_representation_level_says_there_is_no_shared_representation() -> None:
    model = CrossStitch(MLP(5, (4,)), TASKS)
    with pytest.raises(ValueError, match="CrossStitch has none; use level='exact'"):
        BackwardEngine(model, create_balancer("mgda", TASKS, level="representation"))


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match=r"init must be \(alpha_same, alpha_other\)"):
        CrossStitch(MLP(5, (4,)), TASKS, init=(0.9,))
    with pytest.raises(ValueError, match="alpha_lr_scale must be > 0"):
        CrossStitch(MLP(5, (4,)), TASKS, alpha_lr_scale=0.0)


def test_from_a_config() -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": "cross_stitch", "encoder": {"name": "mlp", "hidden": [8]}, "init": [0.8, 0.2],
                  "alpha_lr_scale": 10.0},
        "optimizer": {"lr": 0.001},
        "training": {"steps": 2, "progress": False},
    })
    experiment = build_experiment(config)
    assert isinstance(experiment.model, CrossStitch)
    groups = {g["name"]: g["lr"] for g in experiment.trainer.optimizer.param_groups}
    assert groups["model:cross-stitch units"] == pytest.approx(0.01)
    assert experiment.model.mixing()[0, 0, 0].item() == pytest.approx(0.8)


def test_the_units_weights_are_logged_as_diagnostics() -> None:
    model = CrossStitch(MLP(5, (6, 4)), TASKS, init=(0.8, 0.2))
    logged = model.diagnostics()
    assert len(logged) == 2 * 3 * 3
    assert logged["stage2/b/b"] == pytest.approx(0.8) and logged["stage1/a/c"] == pytest.approx(0.1)
