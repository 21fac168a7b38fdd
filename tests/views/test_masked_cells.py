"""The masked-cells view, and a self-supervised task trained through it end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import Backbone, FeatureInfo, HardSharing
from manytask.tasks import Classification, Regression
from manytask.training import Checkpointing, Trainer, build_optimizer
from manytask.views import VIEWS, MaskedCells, create_view


def test_hides_exactly_the_chosen_cells() -> None:
    images = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).view(2, 1, 4, 6) + 1
    out = MaskedCells(cell=2, fraction=0.5)(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.target, images)
    assert out.mask.shape == (2, 4, 6)
    for b in range(2):
        cells = out.mask[b].view(2, 2, 3, 2).permute(0, 2, 1, 3).reshape(6, 4)
        assert cells.all(dim=1).sum() == 3 and (cells.all(dim=1) | ~cells.any(dim=1)).all()  # whole cells, 3 of 6
    assert torch.equal(out.inputs == 0, out.mask[:, None])  # hidden pixels are filled, others kept
    assert torch.equal(out.inputs[~out.mask[:, None].expand_as(images)], images[~out.mask[:, None].expand_as(images)])



def test_each_cell_gives_one_copy_per_cell_with_that_cell_hidden() -> None:
    images = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).view(2, 1, 4, 6) + 1
    out = MaskedCells(cell=2, each_cell=True)(images, generator=torch.Generator().manual_seed(0))
    assert out.inputs.shape == (12, 1, 4, 6) and out.target.shape == (12, 1, 4, 6)  # 2 images x 6 cells
    for image in range(2):
        for k in range(6):
            row = image * 6 + k
            expected = torch.zeros(4, 6, dtype=torch.bool)
            top, left = 2 * (k // 3), 2 * (k % 3)  # cell k of the 2 x 3 grid, row-major
            expected[top:top + 2, left:left + 2] = True
            assert torch.equal(out.mask[row], expected)
            assert torch.equal(out.target[row], images[image])
            assert torch.equal(out.inputs[row, 0], images[image, 0].masked_fill(expected, 0.0))


def test_same_seed_same_masks_and_the_generator_advances() -> None:
    images = torch.rand(4, 3, 8, 8)
    view = MaskedCells(cell=4, fraction=0.25)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(view(images, generator=g1).mask, view(images, generator=g2).mask)
    first = view(images, generator=g1).mask
    assert not all(torch.equal(first, view(images, generator=g1).mask) for _ in range(3))


@pytest.mark.parametrize("options, match", [
    ({"cell": 0}, "'cell' parameter"), ({"fraction": 0.0}, "'fraction' parameter"), ({"fraction": 1.5}, "'fraction' parameter"),
])
def test_bad_options_are_named(options: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MaskedCells(**options)  # type: ignore[arg-type]


def test_bad_inputs_are_named() -> None:
    view = MaskedCells(cell=3)
    with pytest.raises(ValueError, match="not a multiple of cell=3"):
        view(torch.zeros(1, 1, 4, 4), generator=torch.Generator())
    with pytest.raises(ValueError, match=r"image inputs \[B, C, H, W\]"):
        view(torch.zeros(2, 16), generator=torch.Generator())


def test_registered_and_listed() -> None:
    assert "masked_cells" in VIEWS
    assert isinstance(create_view("masked_cells", cell=2), MaskedCells)


def _image_run(run_dir: Path | None, steps: int, each_cell: bool = False) -> Trainer:
    """Digits-like 8x8 images, a class label on a few, an inpainting task on all."""
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8)
    labels = (images.mean(dim=(1, 2, 3)) > 0.5).long()
    mask = torch.zeros(64, dtype=torch.bool)
    mask[:16] = True
    tasks = [Classification("label", num_classes=2),
             Regression("inpaint", level="pixel", view="masked_cells", role="auxiliary")]
    backbone = Backbone([nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
                         nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())],
                        [FeatureInfo(8, "map", reduction=2), FeatureInfo(8, "map", reduction=2)])
    model = HardSharing(backbone, tasks)
    balancer = create_balancer("mgda", tasks)
    loader = MultiSourceLoader({"s": TensorSource(images, {"label": labels}, masks={"label": mask})}, 8, seed=0)
    return Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", lr=1e-2), loader, steps,
                   views={"masked_cells": MaskedCells(cell=2, fraction=0.25, each_cell=each_cell)},
                   checkpoints=Checkpointing(run_dir, every=3), progress=False, seed=7)


def test_a_view_task_trains_and_resumes_exactly(tmp_path: Path) -> None:
    """A pixel-level task reads a view's inputs and targets; the views' generator is part of the
    checkpoint, so a resumed run sees the same masks and ends bitwise equal."""
    straight = _image_run(tmp_path / "straight", 8)
    straight.fit()
    first = _image_run(tmp_path / "split", 8)
    first.steps = 3
    first.fit()
    resumed = _image_run(tmp_path / "split", 8)
    resumed.fit(resume="latest")
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(straight.view_generator.get_state(), resumed.view_generator.get_state())
    assert straight.model.heads["inpaint"](torch.zeros(1, 8, 4, 4)).shape == (1, 1, 8, 8)


def test_a_task_on_every_cell_trains_beside_the_batch(tmp_path: Path) -> None:
    """The view's 16 copies per image (128 rows) train beside the batch's 8 images, under MGDA."""
    trainer = _image_run(None, 3, each_cell=True)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    assert trainer.step == 3
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
