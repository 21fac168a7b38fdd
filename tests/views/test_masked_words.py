"""The masked-words view: which words it hides, what it leaves, and a masked-word task trained
beside chunking from a config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from manytask.config import parse_config
from manytask.runs import build_experiment, train
from manytask.views import VIEWS, MaskedWords, create_view

TOKENS = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [20, 21, 22, 0, 0, 0, 0, 0, 0, 0], [30] + [0] * 9])


def _runs(row: list[bool]) -> list[int]:
    runs, length = [], 0
    for hidden in [*row, False]:
        if hidden:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


def test_hides_the_asked_share_of_real_words_only() -> None:
    view = MaskedWords(fraction=0.3, mask_index=1)
    out = view(TOKENS, generator=torch.Generator().manual_seed(0))
    assert out.mask.sum(1).tolist() == [3, 1, 1]  # round(0.3 * 10), round(0.3 * 3) = 1, at least one
    assert not out.mask[TOKENS == 0].any()
    assert torch.equal(out.target, TOKENS)
    assert torch.equal(out.inputs[out.mask], torch.ones(5, dtype=torch.long))
    assert torch.equal(out.inputs[~out.mask], TOKENS[~out.mask])


def test_spans_hide_consecutive_words() -> None:
    view = MaskedWords(fraction=0.4, span=2)
    for seed in range(20):
        out = view(TOKENS[:1], generator=torch.Generator().manual_seed(seed))
        hidden = out.mask[0].tolist()
        assert 2 <= sum(hidden) <= 4
        assert all(run % 2 == 0 for run in _runs(hidden)[:-1])  # whole spans; only the cap may cut the last
    whole = MaskedWords(fraction=1.0, span=10)(TOKENS, generator=torch.Generator().manual_seed(0))
    assert torch.equal(whole.mask, TOKENS != 0)  # a span as long as the sentence hides all of it


def test_a_hidden_words_spelling_is_blanked_and_targets_can_be_limited() -> None:
    chars = torch.randint(2, 9, (3, 10, 4)).masked_fill((TOKENS == 0)[..., None], 0)
    view = MaskedWords(fraction=0.5, predict=8)
    out = view({"tokens": TOKENS, "chars": chars}, generator=torch.Generator().manual_seed(1))
    assert isinstance(out.inputs, dict)
    hidden = out.inputs["tokens"].eq(1)
    assert torch.equal(out.inputs["chars"][hidden], torch.zeros_like(chars[hidden]))
    assert torch.equal(out.inputs["chars"][~hidden], chars[~hidden])
    assert torch.equal(out.mask, hidden & (TOKENS < 8))  # only ids below 8 are targets


def test_same_seed_same_words_and_the_generator_advances() -> None:
    view = MaskedWords()
    generator = torch.Generator().manual_seed(3)
    first = view(TOKENS, generator=generator).mask
    again = view(TOKENS, generator=torch.Generator().manual_seed(3)).mask
    assert torch.equal(first, again)
    assert not all(torch.equal(first, view(TOKENS, generator=generator).mask) for _ in range(5))


@pytest.mark.parametrize("options, match", [({"fraction": 0.0}, "fraction"), ({"span": 0}, "span >= 1"),
                                            ({"mask_index": 0}, "mask_index other than the pad_index")])
def test_bad_options_are_named(options: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MaskedWords(**options)  # type: ignore[arg-type]


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match=r"needs token ids \[B, L\]"):
        MaskedWords()(torch.rand(2, 5), generator=torch.Generator())
    assert isinstance(create_view("masked_words", fraction=0.2), MaskedWords) and "masked_words" in VIEWS


def test_a_masked_word_task_trains_beside_chunking(tmp_path: Path, real_data: Callable[[str], Path]) -> None:
    root = real_data("conll2000")
    config = parse_config({
        "data": {"name": "conll2000", "root": str(root), "batch_size": 16, "characters": 8},
        "tasks": {"words": {"view": "masked_words", "kind": "classification", "level": "token",
                            "num_classes": 500}},
        "views": {"masked_words": {"fraction": 0.15, "predict": 500}},
        "model": {"name": "hps", "encoder": {"name": "bilstm", "embedding_dim": 8, "hidden": 8, "char_dim": 4,
                                             "char_filters": 4}},
        "training": {"steps": 4, "eval_every": 4, "progress": False},
    })
    result = train(config, run_dir=tmp_path / "run")
    assert 0.0 <= result.test["words/accuracy"] <= 1.0 and result.test["chunk/chunk_f1"] >= 0.0
    with pytest.raises(Exception, match="needs num_classes"):
        bad = config.model_dump()
        del bad["tasks"]["words"]["num_classes"]
        train(parse_config(bad), run_dir=tmp_path / "bad")


@pytest.mark.parametrize("balancer", [{"name": "mgda", "level": "exact"}, {"name": "pcgrad", "level": "exact"},
                                      {"name": "cagrad", "level": "exact"}])
def test_a_batch_where_the_view_hides_no_target_leaves_its_task_absent(
        tmp_path: Path, real_data: Callable[[str], Path], balancer: dict[str, str]) -> None:
    """predict: 2 (only the two most frequent words are targets) in batches of 4 sentences: some
    batches hide none of them. The task is then absent from that step, as a dataset task with no
    label is; it was forwarded with a count of 0 and the Gramian methods crashed (a Gramian over 3
    tasks against weights for the 2 present)."""
    config = parse_config({
        "seed": 5,
        "data": {"name": "conll2000", "root": str(real_data("conll2000")), "batch_size": 4,
                 "vocab_order": "frequency"},
        "tasks": {"words": {"view": "masked_words", "kind": "classification", "level": "token", "num_classes": 2,
                            "role": "auxiliary"}},
        "views": {"masked_words": {"fraction": 0.15, "predict": 2}},
        "model": {"name": "hps", "encoder": {"name": "bilstm", "embedding_dim": 8, "hidden": 8}},
        "balancer": balancer, "optimizer": {"name": "adam", "lr": 0.003},
        "training": {"steps": 12, "eval_every": 12, "progress": False},
    })
    trainer = build_experiment(config, run_dir=tmp_path / "run").trainer
    absent = 0
    for _ in range(12):
        trainer._train_step()
        trainer.step += 1
        absent += not bool(trainer.engine.present[list(trainer.tasks).index("words")])
    assert absent > 0  # the case was reached
