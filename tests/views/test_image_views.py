"""Rotation, decolourisation and lower resolution: what each view computes, checked against
independent computations, and a rotation task trained and resumed through the trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import Backbone, FeatureInfo, HardSharing
from manytask.tasks import Classification
from manytask.training import Checkpointing, Trainer, build_optimizer
from manytask.views import VIEWS, Decolourise, LowResolution, Reconstruct, Region, Rotation, create_view


def test_rotation_turns_each_image_by_its_target_quarter_turns() -> None:
    images = torch.rand(16, 2, 5, 5)
    out = Rotation()(images, generator=torch.Generator().manual_seed(0))
    assert out.target.shape == (16,) and out.mask.all() and set(out.target.tolist()) == {0, 1, 2, 3}
    for image, turned, k in zip(images.numpy(), out.inputs.numpy(), out.target.tolist()):
        np.testing.assert_array_equal(turned, np.rot90(image, k, axes=(1, 2)))  # numpy's counter-clockwise turn


def test_decolourise_shows_the_luma_on_every_channel() -> None:
    images = torch.rand(3, 3, 4, 4, dtype=torch.float64)
    out = Decolourise()(images, generator=torch.Generator())
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    for channel in range(3):
        torch.testing.assert_close(out.inputs[:, channel], luma)
    assert torch.equal(out.target, images) and out.mask.shape == (3, 4, 4) and out.mask.all()
    grey = torch.full((1, 3, 2, 2), 0.5)
    torch.testing.assert_close(Decolourise()(grey, generator=torch.Generator()).inputs, grey)  # grey stays grey


def test_low_resolution_averages_blocks_and_scales_back() -> None:
    images = torch.rand(2, 1, 6, 6)
    out = LowResolution(3, "nearest")(images, generator=torch.Generator())
    for i in range(2):
        for r in range(2):
            for c in range(2):
                block = images[i, 0, 3 * r:3 * r + 3, 3 * c:3 * c + 3]
                torch.testing.assert_close(out.inputs[i, 0, 3 * r:3 * r + 3, 3 * c:3 * c + 3],
                                           block.mean().expand(3, 3))
    assert torch.equal(out.target, images) and out.mask.all()
    flat = torch.full((1, 1, 4, 4), 2.0)
    torch.testing.assert_close(LowResolution(2)(flat, generator=torch.Generator()).inputs, flat)  # bicubic keeps a flat image


@pytest.mark.parametrize("view, inputs, match", [
    (Rotation(), torch.rand(2, 1, 4, 5), r"square image inputs \[B, C, S, S\]"),
    (Decolourise(), torch.rand(2, 1, 4, 4), r"RGB images \[B, 3, H, W\]"),
    (LowResolution(3), torch.rand(2, 1, 4, 4), "not a multiple of factor=3"),
    (LowResolution(2), {"tokens": torch.zeros(2, 3)}, "image inputs"),
])
def test_bad_inputs_are_named(view: object, inputs: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        view(inputs, generator=torch.Generator())  # type: ignore[operator]


def test_registered_with_their_options() -> None:
    assert {"rotation", "decolourise", "low_resolution"} <= set(VIEWS.names())
    assert create_view("low_resolution", factor=4).factor == 4  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="factor >= 2"):
        LowResolution(1)


def _rotation_run(run_dir: Path, steps: int) -> Trainer:
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8)
    labels = (images[:, :, :4].mean(dim=(1, 2, 3)) > 0.5).long()
    tasks = [Classification("label", num_classes=2), Classification("turns", num_classes=4, view="rotation",
                                                                    role="auxiliary")]
    backbone = Backbone([nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))],
                        [FeatureInfo(4, "map", reduction=2)])
    model = HardSharing(backbone, tasks)
    balancer = create_balancer("ew", tasks)
    mask = torch.zeros(64, dtype=torch.bool)
    mask[:8] = True  # few labels; the rotation task sees every image
    loader = MultiSourceLoader({"s": TensorSource(images, {"label": labels}, masks={"label": mask})}, 8, seed=0)
    return Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", lr=1e-2), loader, steps,
                   views={"rotation": Rotation()}, checkpoints=Checkpointing(run_dir, every=3), progress=False,
                   seed=3)


def test_a_rotation_task_trains_and_resumes_exactly(tmp_path: Path) -> None:
    straight = _rotation_run(tmp_path / "straight", 7)
    straight.fit()
    first = _rotation_run(tmp_path / "split", 7)
    first.steps = 3
    first.fit()
    resumed = _rotation_run(tmp_path / "split", 7)
    resumed.fit(resume="latest")
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert straight.model.heads["turns"](torch.zeros(2, 4, 4, 4)).shape == (2, 4)


def test_reconstruct_targets_the_clean_inputs_and_corrupts_what_goes_in() -> None:
    x = torch.rand(500, 4)
    plain = Reconstruct()(x, generator=torch.Generator())
    assert plain.inputs is x and torch.equal(plain.target, x) and plain.mask.shape == (500,) and plain.mask.all()
    noisy = Reconstruct(noise=0.5)(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy.target, x)
    residual = noisy.inputs - x
    assert abs(float(residual.std()) - 0.5) < 0.03 and abs(float(residual.mean())) < 0.03  # N(0, 0.5^2)
    again = Reconstruct(noise=0.5)(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.inputs, noisy.inputs)  # seeded
    images = Reconstruct()(torch.rand(2, 3, 4, 4), generator=torch.Generator())
    assert images.mask.shape == (2, 4, 4)
    with pytest.raises(ValueError, match=r"float inputs \[B, D\] or images"):
        Reconstruct()(torch.zeros(2, 5, dtype=torch.long), generator=torch.Generator())
    with pytest.raises(ValueError, match="'noise' parameter of Reconstruct must be >= 0"):
        Reconstruct(noise=-1.0)


def test_an_autoencoder_task_trains_beside_the_demo_tasks(tmp_path: Path) -> None:
    from manytask.config import parse_config
    from manytask.runs import train

    config = parse_config({"data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16, "labelled_fraction": 1.0,
                                    "keep_labels": {"fraction": 0.2}},
                           "tasks": {"autoencode": {"view": "reconstruct", "kind": "regression", "num_outputs": 20}},
                           "views": {"reconstruct": {"noise": 0.1}},
                           "training": {"steps": 4, "eval_every": 4, "progress": False}})
    result = train(config, run_dir=tmp_path / "run")
    assert result.test["autoencode/rmse"] >= 0.0


def test_region_scores_only_the_chosen_pixels() -> None:
    images = torch.rand(2, 3, 6, 5)
    out = Region(top=2, left=1, height=3, width=2)(images, generator=torch.Generator())
    assert out.inputs is images and torch.equal(out.target, images)
    expected = torch.zeros(6, 5, dtype=torch.bool)
    expected[2:5, 1:3] = True
    assert torch.equal(out.mask, expected.expand(2, 6, 5))
    with pytest.raises(ValueError, match="do not fit a 6x5 image"):
        Region(top=4, height=3)(images, generator=torch.Generator())
    with pytest.raises(ValueError, match="height, width >= 1"):
        Region(height=0)
