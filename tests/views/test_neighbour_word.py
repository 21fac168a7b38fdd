"""Next- and previous-word targets, and heads that read one direction of a BiLSTM so that they
never see their target (Rei 2017)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from manytask.config import Config, ConfigError, parse_config
from manytask.models import BiLSTM, FeatureInfo, HardSharing, make_head
from manytask.runs import build_experiment, train
from manytask.tasks import SequenceLabelling
from manytask.views import VIEWS, NeighbourWord, PreviousWord

TOKENS = torch.tensor([[5, 6, 7, 8, 0], [9, 10, 0, 0, 0]])


def test_targets_are_the_neighbours_of_real_words() -> None:
    after = NeighbourWord()(TOKENS, generator=torch.Generator())
    assert after.target.tolist() == [[6, 7, 8, 0, 0], [10, 0, 0, 0, 0]]
    assert after.mask.tolist() == [[True, True, True, False, False], [True, False, False, False, False]]
    before = PreviousWord(predict=8)(TOKENS, generator=torch.Generator())
    assert before.target.tolist() == [[0, 5, 6, 7, 8], [0, 9, 10, 0, 0]]  # past the end: never labelled
    assert before.mask.tolist() == [[False, True, True, True, False], [False, False, False, False, False]]  # 9 >= 8
    assert after.inputs is TOKENS
    assert {"next_word", "previous_word"} <= set(VIEWS.names())
    with pytest.raises(ValueError, match="direction 'next' or 'previous'"):
        NeighbourWord("sideways")  # type: ignore[arg-type]


@pytest.mark.parametrize("reads, blind_to", [("forward", "later"), ("backward", "earlier")])
def test_a_one_direction_head_never_sees_its_target(reads: str, blind_to: str) -> None:
    """On a one-layer BiLSTM, the forward half's output at word i does not change when the words
    after i do (so it cannot read the next word), and the backward half's not when earlier words do."""
    torch.manual_seed(0)
    task = SequenceLabelling("lm", num_classes=30, reads=reads)
    model = HardSharing(BiLSTM(30, 8, 6), [task]).eval()
    tokens = torch.tensor([[3, 4, 5, 6, 7]])
    changed = tokens.clone()
    i = 2
    if blind_to == "later":
        changed[0, i + 1:] = torch.tensor([11, 12])
    else:
        changed[0, :i] = torch.tensor([11, 12])
    torch.testing.assert_close(model(tokens)["lm"][0, i], model(changed)["lm"][0, i], rtol=0, atol=0)
    everything = HardSharing(BiLSTM(30, 8, 6), [SequenceLabelling("lm", num_classes=30)]).eval()
    assert not torch.equal(everything(tokens)["lm"][0, i], everything(changed)["lm"][0, i])  # reading all: it sees them


def test_reading_half_needs_an_even_sequence_width() -> None:
    with pytest.raises(ValueError, match="needs a bidirectional sequence encoder"):
        make_head(SequenceLabelling("lm", num_classes=3, reads="forward"), FeatureInfo(5, "sequence"))


def test_language_modelling_beside_chunking_from_a_config(tmp_path: Path, real_data: Callable[[str], Path]) -> None:
    config = parse_config({
        "data": {"name": "conll2000", "root": str(real_data("conll2000")), "batch_size": 16},
        "tasks": {"next": {"view": "next_word", "kind": "classification", "level": "token", "num_classes": 300,
                           "reads": "forward", "role": "auxiliary"},
                  "previous": {"view": "previous_word", "kind": "classification", "level": "token", "num_classes": 300,
                               "reads": "backward", "role": "auxiliary"}},
        "views": {"next_word": {"predict": 300}, "previous_word": {"predict": 300}},
        "model": {"name": "hps", "encoder": {"name": "bilstm", "embedding_dim": 8, "hidden": 8}},
        "training": {"steps": 3, "eval_every": 3, "progress": False},
    })
    result = train(config, run_dir=tmp_path / "run")
    assert 0.0 <= result.test["next/accuracy"] <= 1.0 and 0.0 <= result.test["previous/accuracy"] <= 1.0


def _next_word_config(root: Path, model: dict[str, Any], task: dict[str, Any]) -> Config:
    return parse_config({
        "data": {"name": "conll2000", "root": str(root), "batch_size": 16},
        "tasks": {"next": {"view": "next_word", "kind": "classification", "level": "token", "num_classes": 50,
                           "role": "auxiliary", **task}},
        "views": {"next_word": {"predict": 50}},
        "model": model,
        "training": {"steps": 3, "eval_every": 3, "progress": False},
    })


@pytest.mark.parametrize("encoder, task, message", [
    ({"name": "bilstm", "embedding_dim": 8, "hidden": 8}, {},
     "reads: all includes the half that has read the next word; set reads: forward"),
    ({"name": "bilstm", "embedding_dim": 8, "hidden": 8, "layers": 2}, {"reads": "forward"},
     "above the first of 2 BiLSTM layers the forward half has read"),
    ({"name": "transformer", "dim": 8, "heads": 2, "layers": 1, "feedforward": 8}, {"reads": "forward"},
     "the transformer's attention gives every position features that have read the whole"),
])
def test_a_next_word_head_that_would_read_its_target_is_refused(
        tmp_path: Path, real_data: Callable[[str], Path], encoder: dict[str, Any], task: dict[str, str],
        message: str) -> None:
    """These heads see the next word in their inputs: trained, they copy it (test accuracy 0.97
    against 0.27 for the head that cannot see it, on CoNLL-2000); the run built silently."""
    root = real_data("conll2000")
    with pytest.raises(ConfigError, match=f"tasks.next': view 'next_word' makes the next word the target.*{message}"):
        build_experiment(_next_word_config(root, {"name": "hps", "encoder": encoder}, task), run_dir=tmp_path / "run")
    if "layers" in encoder and encoder["name"] == "bilstm":  # the documented form: the head on the first layer
        build_experiment(_next_word_config(root, {"name": "low_supervision", "encoder": encoder},
                                           {**task, "attach_at": 2}), run_dir=tmp_path / "ok")
