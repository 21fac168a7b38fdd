"""The contains_words hint: a sentence's target is whether it holds one of the words; the
vocabulary comes from the dataset; a word it lacks is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from manytask.config import ConfigError, parse_config
from manytask.runs._build import build_experiment
from manytask.views import VIEWS, ContainsWords

VOCAB = ["<pad>", "<unk>", "the", "not", "good", "bad"]


def test_targets_by_hand() -> None:
    view = ContainsWords(words=["not", "bad"], vocab=VOCAB)
    tokens = torch.tensor([[2, 4, 0, 0], [2, 3, 4, 0], [5, 0, 0, 0], [0, 0, 0, 0]])
    out = view(tokens, generator=torch.Generator())
    assert out.target.tolist() == [0.0, 1.0, 1.0, 0.0] and out.mask.all() and out.inputs is tokens
    assert ContainsWords(ids=[2])(tokens, generator=torch.Generator()).target.tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"\['Good'\] are not in the dataset's vocabulary"):
        ContainsWords(words=["Good"], vocab=VOCAB)
    with pytest.raises(ValueError, match="needs the dataset's vocabulary"):
        ContainsWords(words=["good"])
    assert "contains_words" in VIEWS.names()


def test_the_padding_id_or_an_id_past_the_vocabulary_is_refused() -> None:
    """ids: [0] labelled every sentence but the longest 1 (padding is in all of them), padding-only
    rows included; an id past the vocabulary gave a constant 0. Both trained silently."""
    with pytest.raises(ValueError, match=r"ids \[0\] are the padding id \(0\)"):
        ContainsWords(ids=[0], vocab=VOCAB)
    with pytest.raises(ValueError, match=r"ids \[6\] are .* not token ids of the vocabulary \(0..5\)"):
        ContainsWords(ids=[6], vocab=VOCAB)
    with pytest.raises(ValueError, match=r"ids \[3\] are the padding id \(3\)"):
        ContainsWords(ids=[3], pad_index=3)


def test_through_a_config_the_vocabulary_comes_from_the_dataset(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not (root / "conll2000").is_dir():
        pytest.skip("../shared/data/conll2000 is not here")
    config = {"data": {"name": "conll2000", "root": str(root), "batch_size": 16},
              "model": {"encoder": {"name": "bilstm", "embedding_dim": 8, "hidden": 8}},
              "tasks": {"negated": {"view": "contains_words", "kind": "binary", "role": "auxiliary"}},
              "views": {"contains_words": {"words": ["not", "n't"]}},
              "training": {"steps": 2, "eval_every": 2, "progress": False}}
    trainer = build_experiment(parse_config(config), run_dir=tmp_path).trainer
    view = trainer.views["contains_words"]
    assert isinstance(view, ContainsWords) and len(view.ids) == 2
    trainer.fit()
    config["views"] = {"contains_words": {"words": ["nott"]}}
    with pytest.raises(ConfigError, match="nott"):
        build_experiment(parse_config(config), run_dir=tmp_path / "bad")
