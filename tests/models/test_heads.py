"""Heads built from a task's level and the layout of the features they read."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from manytask.models import ConvNet, FeatureInfo, GradientReversal, make_head
from manytask.tasks import BinaryClassification, Classification, Regression, SequenceLabelling, Task

B, L, D, SIDE = 2, 5, 6, 7
LAYOUTS = {"vector": FeatureInfo(D, "vector"), "sequence": FeatureInfo(D, "sequence"),
           "map": FeatureInfo(D, "map", reduction=4)}
FEATURES = {"vector": (B, D), "sequence": (B, L, D), "map": (B, D, SIDE, SIDE)}


def task_at(level: str, role: str = "main", head_hidden: int = 0) -> Task:
    if level == "sample":
        return Classification("t", num_classes=3, role=role, head_hidden=head_hidden)  # type: ignore[arg-type]
    if level == "token":
        return SequenceLabelling("t", num_classes=3, role=role, head_hidden=head_hidden)  # type: ignore[arg-type]
    return Regression("t", num_outputs=3, level="pixel", role=role, head_hidden=head_hidden)  # type: ignore[arg-type]


def layers_of(head: nn.Module) -> nn.Sequential:
    assert isinstance(head, nn.Sequential), head
    return head


#: The output shape of a head for each possible (level, layout) pair; the other pairs raise.
EXPECTED = {
    ("sample", "vector"): (B, 3),
    ("sample", "sequence"): (B, 3),
    ("sample", "map"): (B, 3),
    ("token", "sequence"): (B, L, 3),
    ("pixel", "map"): (B, 3, SIDE * 4, SIDE * 4),
}


@pytest.mark.parametrize("level", ["sample", "token", "pixel"])
@pytest.mark.parametrize("layout", ["vector", "sequence", "map"])
@pytest.mark.parametrize("role", ["main", "adversarial"])
@pytest.mark.parametrize("head_hidden", [0, 4])
def test_every_level_and_layout(level: str, layout: str, role: str, head_hidden: int) -> None:
    task = task_at(level, role, head_hidden)
    if (level, layout) not in EXPECTED:
        need = {"token": "a sequence", "pixel": "a map"}[level]
        with pytest.raises(ValueError, match=f"'t' is {level}-level and needs features laid out as {need} .*, "
                                             f"but the backbone's features are a {layout}. Use a backbone"):
            make_head(task, LAYOUTS[layout])
        return
    head = make_head(task, LAYOUTS[layout])
    x = torch.randn(FEATURES[layout])
    assert head(x).shape == EXPECTED[level, layout]
    assert head.double()(x.double()).dtype == torch.float64
    modules = list(head) if isinstance(head, nn.Sequential) else [head]
    assert isinstance(modules[0], GradientReversal) == (role == "adversarial")
    layers = [m for m in modules if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(layers) == (2 if head_hidden else 1)
    assert all(isinstance(m, nn.Conv2d if level == "pixel" else nn.Linear) for m in layers)
    first = layers[0]
    assert (first.in_features if isinstance(first, nn.Linear) else first.in_channels) == D


@pytest.mark.parametrize("task", [BinaryClassification("b", num_labels=2, level="pixel"),
                                  Classification("c", num_classes=4, level="pixel")], ids=["binary", "classes"])
def test_pixel_heads_for_every_kind(task: Task) -> None:
    head = make_head(task, FeatureInfo(D, "map", reduction=2))
    assert head(torch.randn(B, D, 14, 14)).shape == (B, task.out_features, 28, 28)


@pytest.mark.parametrize("stage, reduction", [(0, 2), (1, 4)])
def test_pixel_heads_return_the_input_resolution(stage: int, reduction: int) -> None:
    """A pixel head on a CNN map of reduction 2 or 4 gives back the 28x28 input resolution."""
    encoder = ConvNet()
    info = encoder.feature_info[stage]
    assert info.reduction == reduction
    features = encoder.forward_stages(torch.randn(B, 1, 28, 28))[stage]
    assert features.shape[-1] == 28 // reduction
    head = make_head(Regression("depth", level="pixel"), info)
    assert head(features).shape == (B, 1, 28, 28)
    no_upsampling = make_head(Regression("depth", level="pixel"), FeatureInfo(info.dim, "map"))
    assert isinstance(no_upsampling, nn.Conv2d) and no_upsampling(features).shape[-1] == 28 // reduction


def test_pixel_head_is_a_1x1_convolution_then_bilinear_upsampling() -> None:
    head = layers_of(make_head(Regression("r", num_outputs=2, level="pixel"), FeatureInfo(3, "map", reduction=4)))
    conv = head[0]
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None
    assert conv.kernel_size == (1, 1)
    x = torch.randn(1, 3, 7, 7)
    per_pixel = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x) + conv.bias[:, None, None]
    expected = nn.functional.interpolate(per_pixel, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(head(x), expected)


def test_token_head_is_the_same_linear_at_every_token() -> None:
    head = make_head(SequenceLabelling("pos", num_classes=3), FeatureInfo(D, "sequence"))
    x = torch.randn(B, L, D)
    out = head(x)
    for i in range(L):
        torch.testing.assert_close(out[:, i], head(x[:, i]))


# ---- pooling --------------------------------------------------------------------------------
def test_sequence_pooling_is_the_mean_over_the_real_tokens() -> None:
    head = layers_of(make_head(Regression("r", num_outputs=2), FeatureInfo(3, "sequence")))
    linear = head[1]
    x = torch.tensor([
        [[1.0, 2.0, 3.0], [3.0, -4.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],  # 2 real tokens
        [[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [4.0, 3.0, -1.0], [0.0, 1.0, 0.0]],  # 4 real (zeros inside rows)
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],  # padding only
    ])
    by_hand = torch.tensor([[2.0, -1.0, 4.0], [1.5, 1.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(head(x), linear(by_hand))


def test_map_pooling_is_the_mean_over_positions() -> None:
    head = layers_of(make_head(Regression("r"), FeatureInfo(2, "map", reduction=4)))
    grid = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]], [[-1.0, 0.0], [0.0, 5.0]]]])  # [1, 2, 2, 2]
    torch.testing.assert_close(head(grid), head[1](torch.tensor([[3.0, 1.0]])))


def test_pooling_passes_gradients_to_the_real_tokens_only() -> None:
    head = layers_of(make_head(Regression("r"), FeatureInfo(3, "sequence")))
    linear = head[1]
    assert isinstance(linear, nn.Linear)
    x = torch.randn(1, 4, 3)
    x[0, 2:] = 0
    x.requires_grad_()
    (grad,) = torch.autograd.grad(head(x).sum(), x)
    torch.testing.assert_close(grad[0, 0], linear.weight[0] / 2)
    assert (grad[0, 2:] == 0).all()


# ---- gradient reversal ------------------------------------------------------------------------
@pytest.mark.parametrize("layout, level", [("vector", "sample"), ("sequence", "sample"), ("sequence", "token"),
                                           ("map", "sample"), ("map", "pixel")])
@pytest.mark.parametrize("scale", [1.0, 0.3, 2.5])
def test_gradient_reversal_gives_minus_lambda_times_the_gradient(layout: str, level: str, scale: float) -> None:
    if level == "pixel":
        task: Task = Regression("adv", level="pixel", role="adversarial", reversal=scale, head_hidden=4,
                                reversal_schedule="constant")
    elif level == "token":
        task = SequenceLabelling("adv", num_classes=3, role="adversarial", reversal=scale, head_hidden=4,
                                 reversal_schedule="constant")
    else:
        task = Classification("adv", num_classes=3, role="adversarial", reversal=scale, head_hidden=4,
                              reversal_schedule="constant")
    head = layers_of(make_head(task, LAYOUTS[layout]))
    reversal = head[0]
    assert isinstance(reversal, GradientReversal) and reversal.scale == scale
    plain_head = head[1:]  # the same layers without the reversal
    z = torch.randn(FEATURES[layout], requires_grad=True)
    weights = torch.randn(EXPECTED[level, layout])
    reversed_out, plain_out = head(z), plain_head(z)
    torch.testing.assert_close(reversed_out, plain_out, rtol=0, atol=0)  # identity forward
    params = list(head.parameters())
    reversed_grads = torch.autograd.grad((reversed_out * weights).sum(), [z, *params])
    plain_grads = torch.autograd.grad((plain_out * weights).sum(), [z, *params])
    torch.testing.assert_close(reversed_grads[0], -scale * plain_grads[0])  # the features: -λ times
    for got, want in zip(reversed_grads[1:], plain_grads[1:]):  # the head itself learns its task
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_gradient_reversal_repr() -> None:
    assert repr(GradientReversal(0.5)) == "GradientReversal(scale=0.5)"


def test_gradient_reversal_by_finite_differences_under_the_ganin_schedule() -> None:
    """The features' gradient through the reversal is -lambda_p times the finite-difference
    derivative of the head's output, with lambda_p = scale (2 / (1 + exp(-10 p)) - 1)."""
    torch.manual_seed(0)
    head = make_head(Classification("adv", num_classes=3, role="adversarial", reversal=0.7), LAYOUTS["vector"])
    reversal = layers_of(head)[0]
    assert isinstance(reversal, GradientReversal) and reversal.schedule == "ganin"
    z = torch.randn(FEATURES["vector"], dtype=torch.float64)
    head = head.double()
    weights = torch.randn(EXPECTED["sample", "vector"], dtype=torch.float64)
    for progress in (0.0, 0.1, 0.5, 1.0):
        reversal.progress = progress
        strength = 0.7 * (2 / (1 + math.exp(-10 * progress)) - 1)
        assert reversal.strength == pytest.approx(strength)
        leaf = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((head(leaf) * weights).sum(), leaf)
        eps = 1e-6
        numeric = torch.zeros_like(z)
        for index in range(z.numel()):
            step = torch.zeros_like(z).view(-1)
            step[index] = eps
            step = step.view_as(z)
            with torch.no_grad():
                up, down = (head(z + step) * weights).sum(), (head(z - step) * weights).sum()
            numeric.view(-1)[index] = (up - down) / (2 * eps)
        torch.testing.assert_close(grad, -strength * numeric, rtol=1e-6, atol=1e-8)
    assert repr(reversal) == "GradientReversal(scale=0.7, schedule=ganin)"
    with pytest.raises(ValueError, match="schedule must be 'constant' or 'ganin'"):
        GradientReversal(1.0, "linear")  # type: ignore[arg-type]


def test_the_trainer_moves_the_reversal_strength_along_its_schedule(tmp_path: Path) -> None:
    """Before each step t of T the adversarial head's progress is t / T; a constant schedule from
    the config is left alone."""
    from manytask.config import parse_config
    from manytask.runs._build import build_experiment
    from manytask.training import Callback

    def experiment(schedule: str):  # noqa: ANN202
        config = parse_config({"data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
                               "tasks": {"flag": {"role": "adversarial", "reversal": 0.5,
                                                  "reversal_schedule": schedule}},
                               "training": {"steps": 4, "eval_every": 4, "progress": False}})
        return build_experiment(config, run_dir=tmp_path / schedule)

    ganin = experiment("ganin")
    reversal = ganin.model.heads["flag"][0]
    seen = []

    class Watch(Callback):
        def on_before_backward(self, trainer: object, step: int, sums: object, counts: object) -> None:  # type: ignore[override]
            seen.append(reversal.progress)

    ganin.trainer.callbacks.append(Watch())
    ganin.trainer.fit()
    assert seen == [0.0, 0.25, 0.5, 0.75]
    constant = experiment("constant")
    constant.trainer.fit()
    assert constant.model.heads["flag"][0].progress == 1.0 and constant.model.heads["flag"][0].strength == 0.5


def test_a_grid_head_reads_each_quadrants_mean() -> None:
    """head_grid=2 on a [B, C, 4, 6] map: the linear layer reads the means of the four 2 x 3
    quadrants, channel by channel (computed here by hand)."""
    task = Classification("left", num_classes=3, head_grid=2)
    head = make_head(task, FeatureInfo(5, "map"))
    x = torch.randn(2, 5, 4, 6)
    quadrants = torch.stack([x[:, :, :2, :3].mean((2, 3)), x[:, :, :2, 3:].mean((2, 3)),
                             x[:, :, 2:, :3].mean((2, 3)), x[:, :, 2:, 3:].mean((2, 3))], dim=2)  # [B, C, 4]
    linear = head[-1]
    assert linear.in_features == 20
    assert torch.allclose(head(x), linear(quadrants.flatten(1)), atol=1e-6)
    with pytest.raises(ValueError, match="head_grid applies to a sample-level head on a map"):
        make_head(Classification("v", num_classes=2, head_grid=2), FeatureInfo(5, "vector"))
    with pytest.raises(ValueError, match="head_grid must be an integer >= 1"):
        Classification("w", num_classes=2, head_grid=0)
