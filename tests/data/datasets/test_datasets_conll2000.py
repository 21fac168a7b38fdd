"""conll2000: a tiny zip in the NLTK layout, plus the real corpus when it is present."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from manytask.data import create_dataset
from manytask.data.datasets._conll2000 import conll2000, read_conll
from manytask.data.datasets._files import DataFormatError, MissingDataError
from manytask.metrics._chunk_f1 import ChunkF1, ChunkTagging, chunk_f1

TRAIN = """Confidence NN B-NP
in IN B-PP
the DT B-NP
pound NN I-NP
is VBZ B-VP
widely RB I-VP
expected VBN I-VP
. . O

Chancellor NNP O
of IN B-PP
the DT B-NP
Exchequer NNP I-NP
Nigel NNP B-NP
Lawson NNP I-NP

the DT B-NP
pound NN I-NP
rose VBD B-VP

He PRP B-NP
rose VBD B-VP
. . O
"""
TEST = """Rockwell NNP B-NP
said VBD B-VP
the DT B-NP
pound NN I-NP
. . O

1 LS B-LST
Lawson NNP B-NP
"""


def _write_zip(folder: Path, train: str = TRAIN, test: str = TEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "conll2000.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("conll2000/", "")
        z.writestr("conll2000/README", "tiny")
        z.writestr("conll2000/train.txt", train)
        z.writestr("conll2000/test.txt", test)
    return path


def test_tiny_corpus(tmp_path: Path) -> None:
    _write_zip(tmp_path / "conll2000")
    data = conll2000(root=str(tmp_path), val_fraction=0.25, min_count=1, verify=False)
    train, val, test = data.train["conll2000"], data.val, data.test
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (3, 1, 2)
    chunk = data.task("chunk")
    assert isinstance(chunk, ChunkTagging)
    assert chunk.metrics == ("chunk_f1", "accuracy") and chunk.role == "main"
    assert data.task("pos").role == "auxiliary"
    # Every chunk type gets B- and I- (I-LST never occurs but is a class).
    assert chunk.tags == ("O", "B-LST", "I-LST", "B-NP", "I-NP", "B-PP", "I-PP", "B-VP", "I-VP")
    info = data.input_info
    assert info["pad_index"] == 0 and info["vocab"][:2] == ("<pad>", "<unk>")
    assert info["max_length"] == 8 and test.inputs.shape == (2, 8)
    # Masks: True exactly on real tokens; padding is 0.
    assert test.masks["chunk"].sum(1).tolist() == [5, 2]
    assert bool((test.inputs[~test.masks["chunk"]] == 0).all())
    # Words first seen in the test file are <unk>; known words keep their id.
    vocab = info["vocab"]
    train_words = {vocab[i] for i in train.inputs.unique().tolist()}
    for row, words in zip(
        test.inputs.tolist(), [["Rockwell", "said", "the", "pound", "."], ["1", "Lawson"]]
    ):
        for token, word in zip(row, words):
            assert vocab[token] == (word if word in train_words else "<unk>")
    # Targets decode back to the file's tags.
    tags = [chunk.tags[i] for i in test.targets["chunk"][0, :5].tolist()]
    assert tags == ["B-NP", "B-VP", "B-NP", "I-NP", "O"]
    pos_tags = info["pos_tags"]
    assert [pos_tags[i] for i in test.targets["pos"][1, :2].tolist()] == ["LS", "NNP"]
    for task in data.tasks:
        task.check(test.targets[task.name], test.masks[task.name])


def test_characters_spell_every_word(tmp_path: Path) -> None:
    """With ``characters``, inputs carry each word's first characters (ids from the training
    part, 1 for a character it never saw, 0 on padding), beside the word ids."""
    _write_zip(tmp_path / "conll2000")
    data = conll2000(root=str(tmp_path), val_fraction=0.0, min_count=1, verify=False, characters=4)
    alphabet = data.input_info["alphabet"]
    assert data.input_info["char_vocab_size"] == len(alphabet) and alphabet[:2] == ("<pad>", "<unk>")
    inputs = data.test.batch(torch.arange(2)).inputs
    assert isinstance(inputs, dict) and set(inputs) == {"tokens", "chars"}
    spelt = ["".join(alphabet[i] if i > 1 else "?" for i in row if i) for row in inputs["chars"][0].tolist()]
    assert spelt[:5] == ["?oc?", "said", "the", "poun", "."]  # "Rockwell": no R or k in the training text
    assert inputs["chars"][0, 5:].eq(0).all() and inputs["chars"].shape[-1] == 4
    with pytest.raises(ValueError, match="'characters' parameter of conll2000 must be >= 0"):
        conll2000(root=str(tmp_path), verify=False, characters=-1)


def test_vocabulary_by_frequency(tmp_path: Path) -> None:
    """With vocab_order: frequency the most common training words get the smallest ids."""
    _write_zip(tmp_path / "conll2000")
    data = conll2000(root=str(tmp_path), val_fraction=0.0, min_count=1, verify=False, vocab_order="frequency")
    vocab = data.input_info["vocab"]
    assert vocab[:2] == ("<pad>", "<unk>") and vocab[2:5] == ("the", ".", "pound")  # 3, 2, 2 times (ties: alphabetical)
    with pytest.raises(ValueError, match="'vocab_order' parameter of conll2000"):
        conll2000(root=str(tmp_path), verify=False, vocab_order="random")  # type: ignore[arg-type]


def test_metric_on_dataset_targets(tmp_path: Path) -> None:
    """ChunkF1 fed the way the trainer feeds it (labelled tokens, row-major) equals conlleval."""
    _write_zip(tmp_path / "conll2000")
    data = conll2000(root=str(tmp_path), val_fraction=0.0, min_count=1, verify=False)
    source = data.train["conll2000"]
    chunk = data.task("chunk")
    assert isinstance(chunk, ChunkTagging)
    target, mask = source.targets["chunk"], source.masks["chunk"]
    # A prediction: gold with one token changed (sentence 0, token 3: I-NP -> O).
    pred = target.clone()
    pred[0, 3] = chunk.tags.index("O")
    metric = ChunkF1(chunk.tags)
    metric.update(torch.nn.functional.one_hot(pred[mask], chunk.num_classes).float(), target[mask])
    gold_tags = [[chunk.tags[i] for i in row[m].tolist()] for row, m in zip(target, mask)]
    pred_tags = [[chunk.tags[i] for i in row[m].tolist()] for row, m in zip(pred, mask)]
    assert float(metric.compute()) == pytest.approx(chunk_f1(gold_tags, pred_tags)[2])
    assert float(metric.compute()) < 1.0


def test_registered_with_options(tmp_path: Path) -> None:
    _write_zip(tmp_path / "conll2000")
    data = create_dataset(
        "conll2000", root=str(tmp_path), verify=False, pos_role="main", lowercase=True, min_count=1
    )
    assert data.task("pos").role == "main"
    assert "chancellor" in data.input_info["vocab"]


def test_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as info:
        conll2000(root=str(tmp_path))
    message = str(info.value)
    assert "conll2000.zip" in message and str(tmp_path / "conll2000") in message
    assert "download=True" in message and "https://" in message


def test_checksum_is_verified_by_default(tmp_path: Path) -> None:
    _write_zip(tmp_path / "conll2000")
    with pytest.raises(ValueError, match="SHA-256"):
        conll2000(root=str(tmp_path))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("the DT B-NP\npound NN\n", "line 2: expected 'WORD POS CHUNK'"),
        ("the DT B-NP\npound NN X-NP\n", "line 2: chunk tag 'X-NP'"),
        ("\n\n", "holds no sentence"),
    ],
)
def test_format_errors(text: str, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        read_conll(text, "train.txt")


def test_bad_zip_layout(tmp_path: Path) -> None:
    folder = tmp_path / "conll2000"
    folder.mkdir()
    with zipfile.ZipFile(folder / "conll2000.zip", "w") as z:
        z.writestr("train.txt", TRAIN)
    with pytest.raises(DataFormatError, match="no member 'conll2000/train.txt'"):
        conll2000(root=str(tmp_path), verify=False)



def test_real_corpus(real_data: Callable[[str], Path]) -> None:
    root = real_data("conll2000")
    data = conll2000(root=str(root))  # verify=True checks SHA-256 and SOURCE.md's counts
    train, val, test = data.train["conll2000"], data.val, data.test
    assert val is not None and test is not None
    assert len(train) + len(val) == 8936 and len(test) == 2012
    assert int(train.masks["chunk"].sum() + val.masks["chunk"].sum()) == 211727
    assert int(test.masks["chunk"].sum()) == 47377
    chunk = data.task("chunk")
    assert isinstance(chunk, ChunkTagging)
    assert len(chunk.tags) == 23 and data.task("pos").out_features == 44
    # Gold sentences never start with I- (what ChunkF1's flattened reading relies on).
    first = test.targets["chunk"][:, 0].tolist() + train.targets["chunk"][:, 0].tolist()
    assert not any(chunk.tags[i].startswith("I-") for i in first)


def test_no_validation_sentence_reaches_training_as_a_successor(tmp_path: Path) -> None:
    """With next_sentence, a training sentence's successor is the next *training* sentence of the
    file: the held-out validation sentence in between is skipped (it was fed to training as
    ``next_tokens``, 89 % of the validation set on the real corpus)."""
    _write_zip(tmp_path / "conll2000")
    sentences = read_conll(TRAIN, "train.txt")
    for seed in range(6):
        data = conll2000(root=str(tmp_path), next_sentence=True, val_fraction=0.25, seed=seed, min_count=1,
                         verify=False)
        assert data.val is not None
        train = data.train["conll2000"].batch(torch.arange(len(data.train["conll2000"]))).inputs
        val = data.val.batch(torch.arange(len(data.val))).inputs
        held_out = {tuple(row.tolist()) for row in val["tokens"]}
        assert not held_out & {tuple(row.tolist()) for row in train["next_tokens"]}, seed
        order = [next(i for i, s in enumerate(sentences) if _ids(s, data) == tuple(row.tolist()))
                 for row in train["tokens"]]
        for row, i in zip(train["next_tokens"], order):  # the next training sentence after it, or nothing
            later = [j for j in order if j > i]
            expected = _ids(sentences[min(later)], data) if later else (0,) * len(row)
            assert tuple(row.tolist()) == expected, (seed, i)


def _ids(sentence: list[tuple[str, str, str]], data: object) -> tuple[int, ...]:
    vocab = data.input_info["vocab"]  # type: ignore[attr-defined]
    ids = [vocab.index(w) if w in vocab else 1 for w, _, _ in sentence]
    return tuple(ids + [0] * (data.input_info["max_length"] - len(ids)))  # type: ignore[attr-defined]
