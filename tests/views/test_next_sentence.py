"""Next-sentence pairs against a packing written out by hand, and the conll2000 successors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from manytask.config import parse_config
from manytask.data.datasets import conll2000
from manytask.runs import train
from manytask.views import NextSentence


def _inputs(b: int = 16, length: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    lengths, nexts = torch.randint(1, length + 1, (b,), generator=g), torch.randint(0, length + 1, (b,), generator=g)
    tokens = torch.randint(2, 50, (b, length), generator=g) * (torch.arange(length) < lengths[:, None])
    following = torch.randint(2, 50, (b, length), generator=g) * (torch.arange(length) < nexts[:, None])
    chars = torch.randint(2, 9, (b, length, 3), generator=g) * (tokens != 0)[..., None]
    next_chars = torch.randint(2, 9, (b, length, 3), generator=g) * (following != 0)[..., None]
    return {"tokens": tokens, "next_tokens": following, "chars": chars, "next_chars": next_chars}


def test_pairs_are_packed_as_first_separator_second() -> None:
    inputs = _inputs()
    out = NextSentence(separator_index=1)(inputs, generator=torch.Generator().manual_seed(3))
    tokens, following = inputs["tokens"], inputs["next_tokens"]
    assert out.inputs["tokens"].shape == (16, 13) and out.mask.all()
    for b in range(16):
        first = [t for t in tokens[b].tolist() if t]
        packed = [t for t in out.inputs["tokens"][b].tolist()]
        second = packed[len(first) + 1:]
        second = second[: len([t for t in second if t])]
        assert packed[: len(first)] == first and packed[len(first)] == 1
        assert packed[len(first) + 1 + len(second):] == [0] * (13 - len(first) - 1 - len(second))
        candidates = {tuple(t for t in row.tolist() if t) for row in following}
        assert tuple(second) in candidates
        if out.target[b] == 1:
            assert second == [t for t in following[b].tolist() if t]  # the true successor
        spelt = out.inputs["chars"][b]
        assert torch.equal(spelt[: len(first)], inputs["chars"][b, : len(first)])
        assert spelt[len(first)].eq(0).all()  # the separator has no spelling
    assert 4 <= int(out.target.sum()) <= 12  # about half are true successors


def test_the_tail_of_a_pair_is_the_padding_id() -> None:
    """With pad_index 3 the positions after the second sentence hold 3, not 0 (an encoder with
    pad_index 3 read those 0s as a real word)."""
    tokens, following = torch.tensor([[5, 6, 3], [7, 3, 3]]), torch.tensor([[8, 3, 3], [9, 9, 3]])
    view = NextSentence(separator_index=1, pad_index=3)
    for seed in range(4):
        out = view({"tokens": tokens, "next_tokens": following}, generator=torch.Generator().manual_seed(seed))
        for row, length in zip(out.inputs["tokens"].tolist(), (2, 1)):
            second = row[length + 1:]
            real = len([t for t in second if t != 3])
            assert row[length] == 1 and second[real:] == [3] * (len(second) - real) and 0 not in row


def test_a_negative_takes_another_rows_successor() -> None:
    inputs = {"tokens": torch.tensor([[5, 0], [6, 0], [7, 0]]), "next_tokens": torch.tensor([[10, 0], [11, 0], [12, 0]])}
    for seed in range(20):
        out = NextSentence()(inputs, generator=torch.Generator().manual_seed(seed))
        for b in range(3):
            second = out.inputs["tokens"][b, 2].item()
            assert (second == 10 + b) == bool(out.target[b])


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="'tokens' and 'next_tokens'"):
        NextSentence()(torch.zeros(2, 3, dtype=torch.long), generator=torch.Generator())
    with pytest.raises(ValueError, match="no 'next_chars'"):
        inputs = _inputs()
        del inputs["next_chars"]
        NextSentence()(inputs, generator=torch.Generator())
    with pytest.raises(ValueError, match="separator_index other than the pad_index"):
        NextSentence(separator_index=0)


def test_conll2000_gives_each_sentence_its_successor(real_data: Callable[[str], Path], tmp_path: Path) -> None:
    root = real_data("conll2000")
    data = conll2000(root=str(root), next_sentence=True, characters=4)
    test = data.test
    assert test is not None
    batch = test.batch(torch.arange(len(test)))
    assert isinstance(batch.inputs, dict) and set(batch.inputs) == {"tokens", "chars", "next_tokens", "next_chars"}
    assert torch.equal(batch.inputs["next_tokens"][:-1], batch.inputs["tokens"][1:])  # the file's order
    assert batch.inputs["next_tokens"][-1].eq(0).all()  # nothing follows the last sentence
    config = parse_config({
        "data": {"name": "conll2000", "root": str(root), "batch_size": 16, "next_sentence": True},
        "tasks": {"follows": {"view": "next_sentence", "kind": "binary", "role": "auxiliary"}},
        "model": {"name": "hps", "encoder": {"name": "bilstm", "embedding_dim": 8, "hidden": 8}},
        "training": {"steps": 3, "eval_every": 3, "progress": False},
    })
    result = train(config, run_dir=tmp_path / "run")
    assert 0.0 <= result.test["follows/accuracy"] <= 1.0
