"""Per-task tensors held as the columns of one block: a dict like any other, whose tasks the batched
losses read back off the block (one call) instead of stacking the columns, unless a column was
replaced."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from manytask.models import HardSharing
from manytask.tasks import Columns, Regression, loss_terms_of, replaced, stacked

NAMES = ("a", "b", "c", "d")


def columns(requires_grad: bool = False) -> tuple[Columns, torch.Tensor]:
    block = torch.arange(24.0).reshape(3, 4, 2).requires_grad_(requires_grad)  # [B, n, K]
    return Columns({"x": torch.zeros(3, 2)}, [(NAMES, block)], order=["x", *NAMES]), block


def test_it_reads_like_a_dict_of_the_columns() -> None:
    values, block = columns()
    assert isinstance(values, dict) and list(values) == ["x", "a", "b", "c", "d"] and len(values) == 5
    for j, name in enumerate(NAMES):
        assert torch.equal(values[name], block[:, j]) and values[name].data_ptr() == block[:, j].data_ptr()
    assert torch.equal(dict(values)["c"], block[:, 2])
    again = pickle.loads(pickle.dumps(values))
    assert list(again) == list(values) and torch.equal(stacked(again, ["d", "a"]), torch.stack([block[:, 3], block[:, 0]]))


@pytest.mark.parametrize("names", [list(NAMES), ["c", "a"], ["d", "c", "b"], ["b"]])
def test_stacked_is_torch_stack_of_the_columns(names: list[str]) -> None:
    values, block = columns()
    assert torch.equal(stacked(values, names), torch.stack([block[:, NAMES.index(n)] for n in names]))


def test_all_of_a_block_in_order_is_the_block_itself() -> None:
    values, block = columns()
    assert stacked(values, list(NAMES)).data_ptr() == block.data_ptr()  # a view: no copy


def test_a_replaced_column_or_a_task_outside_the_block_is_stacked_as_given() -> None:
    values, block = columns()
    values["b"] = torch.full((3, 2), -1.0)  # written like a dict: b is no longer the block's column
    assert torch.equal(stacked(values, ["a", "b"]), torch.stack([block[:, 0], torch.full((3, 2), -1.0)]))
    assert torch.equal(stacked(values, ["x", "a"]), torch.stack([torch.zeros(3, 2), block[:, 0]]))
    fresh, _ = columns()
    swapped = replaced(fresh, {"c": torch.ones(3, 2), "x": None})
    assert isinstance(swapped, Columns) and swapped["x"] is None and fresh["x"] is not None
    assert torch.equal(stacked(swapped, ["c", "d"]), torch.stack([torch.ones(3, 2), block[:, 3]]))  # type: ignore[arg-type]
    assert swapped.blocks is fresh.blocks  # the other columns are still read off the block
    assert torch.equal(stacked(swapped, ["a", "d"]), torch.stack([block[:, 0], block[:, 3]]))  # type: ignore[arg-type]
    assert replaced({"p": torch.zeros(1)}, {"q": None}) == {"p": torch.zeros(1), "q": None}


def test_the_gradient_reaches_the_block_as_through_the_stack() -> None:
    weights = torch.randn(2, 3, 2)
    values, block = columns(requires_grad=True)
    (stacked(values, ["d", "b"]) * weights).sum().backward()
    expected = torch.zeros(3, 4, 2)
    expected[:, 3], expected[:, 1] = weights[0], weights[1]
    assert torch.equal(block.grad, expected)  # type: ignore[arg-type]


def test_a_block_must_have_one_column_per_task() -> None:
    with pytest.raises(ValueError, match="A block of 3 tasks has 4 columns"):
        Columns({}, [(("a", "b", "c"), torch.zeros(2, 4))])


def test_many_identical_heads_hand_their_block_to_the_batched_losses() -> None:
    torch.manual_seed(0)
    tasks = [Regression(f"t{i}") for i in range(9)]
    model = HardSharing(torch.nn.Linear(3, 5), tasks, feature_dim=5).double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 9, dtype=torch.float64)
    outputs = model(x)
    assert isinstance(outputs, Columns)
    for t in tasks:
        assert torch.allclose(outputs[t.name], model.heads[t.name](model.encoder(x)), rtol=0, atol=1e-12)
    masks = torch.rand(6, 9) > 0.3
    targets = Columns({}, [(tuple(t.name for t in tasks), y)])
    mask_columns = Columns({}, [(tuple(t.name for t in tasks), masks)])
    sums, counts = loss_terms_of(tasks, outputs, targets, mask_columns)
    expected = [((outputs[t.name][:, 0] - y[:, i]) ** 2)[masks[:, i]].sum() for i, t in enumerate(tasks)]
    assert torch.allclose(sums, torch.stack(expected), rtol=0, atol=1e-12)
    assert counts == masks.sum(0).tolist()


def test_a_copy_keeps_the_blocks_and_the_replaced_columns() -> None:
    values, block = columns()
    values.update({"b": torch.full((3, 2), -1.0)})
    for again in (pickle.loads(pickle.dumps(values)), copy.deepcopy(values), copy.copy(values)):
        assert list(again) == list(values) and isinstance(again, Columns)
        assert torch.equal(again["b"], torch.full((3, 2), -1.0)) and torch.equal(again["c"], block[:, 2])
        assert torch.equal(stacked(again, ["a", "b"]), torch.stack([block[:, 0], torch.full((3, 2), -1.0)]))
        assert set(again.loose()) == {"x", "b"}
