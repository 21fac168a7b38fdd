"""CoNLL-2000: WSJ sentences with two per-token tasks, part-of-speech tags and chunk tags."""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from ..._utils import split_indices
from ...metrics._chunk_f1 import ChunkTagging
from ...tasks import SequenceLabelling
from .._dataset import DATASETS, MultiTaskData
from .._source import TensorSource
from ._files import DataFile, DataFormatError, dataset_dir, locate

__all__ = ["FILES", "PAD", "UNK", "conll2000", "read_conll"]

FOLDER = "conll2000"
FILES = (
    DataFile(
        "conll2000.zip",
        sha256="01e65164f268366e7caa0db92332a1955d081908c87016e2c7640c3c5279b7cd",
        url=(
            "https://raw.githubusercontent.com/nltk/nltk_data/"
            "5db857e6f7df11eabb5e5665836db9ec8df07e28/packages/corpora/conll2000.zip"
        ),
    ),
)
#: Sentences and tokens of the published files (SOURCE.md), checked when ``verify`` is on.
SIZES = {"train": (8936, 211727), "test": (2012, 47377)}
PAD, UNK = "<pad>", "<unk>"

Sentence = list[tuple[str, str, str]]


def read_conll(text: str, where: str) -> list[Sentence]:
    """Sentences of ``WORD POS CHUNK`` lines separated by blank lines; errors name the line."""
    sentences: list[Sentence] = []
    current: Sentence = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            if current:
                sentences.append(current)
                current = []
            continue
        fields = line.split(" ")
        if len(fields) != 3 or not all(fields):
            raise DataFormatError(
                f"{where}, line {number}: expected 'WORD POS CHUNK' (3 fields separated by single "
                f"spaces), got {line!r}."
            )
        word, pos, chunk = fields
        if chunk != "O" and (chunk[:2] not in ("B-", "I-") or len(chunk) < 3):
            raise DataFormatError(
                f"{where}, line {number}: chunk tag {chunk!r} is not 'O', 'B-TYPE' or 'I-TYPE'."
            )
        current.append((word, pos, chunk))
    if current:
        sentences.append(current)
    if not sentences:
        raise DataFormatError(f"{where} holds no sentence.")
    return sentences


def _read_zip(path: Path) -> dict[str, list[Sentence]]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataFormatError(
            f"{path} is not a valid zip file; delete it and fetch it again."
        ) from None
    with archive:
        names = set(archive.namelist())
        splits = {}
        for split in ("train", "test"):
            member = f"conll2000/{split}.txt"
            if member not in names:
                raise DataFormatError(
                    f"{path} has no member {member!r} (it has {sorted(names)}); expected the NLTK "
                    "conll2000.zip with conll2000/train.txt and conll2000/test.txt."
                )
            text = archive.read(member).decode("ascii", errors="strict")
            splits[split] = read_conll(text, f"{path}:{member}")
    return splits


def _chunk_tags(sentences: Sequence[Sentence]) -> tuple[str, ...]:
    """``O`` plus ``B-X`` and ``I-X`` for every chunk type seen (the test file has ``I-LST``,
    which the training file lacks, so both forms of every type are kept)."""
    types = sorted({tag[2:] for s in sentences for _, _, tag in s if tag != "O"})
    return ("O", *[f"{p}-{t}" for t in types for p in ("B", "I")])


def _encode(
    sentences: Sequence[Sentence],
    words: dict[str, int],
    pos_index: dict[str, int],
    chunk_index: dict[str, int],
    length: int,
    lowercase: bool,
    name: str,
    spelling: tuple[dict[str, int], int] | None = None,
    successors: Sequence[Sentence] | None = None,
) -> TensorSource:
    n = len(sentences)
    pos = torch.zeros(n, length, dtype=torch.long)
    chunk = torch.zeros(n, length, dtype=torch.long)
    mask = torch.zeros(n, length, dtype=torch.bool)
    for i, sentence in enumerate(sentences):
        k = len(sentence)
        pos[i, :k] = torch.tensor([pos_index[p] for _, p, _ in sentence])
        chunk[i, :k] = torch.tensor([chunk_index[c] for _, _, c in sentence])
        mask[i, :k] = True
    inputs: dict[str, Tensor] = {}
    for prefix, rows in (("", sentences), ("next_", successors)):
        if rows is None:
            continue
        inputs[prefix + "tokens"] = _word_ids(rows, words, length, lowercase)
        if spelling is not None:
            inputs[prefix + "chars"] = _spell(rows, spelling, length)
    return TensorSource(
        inputs if len(inputs) > 1 else inputs["tokens"], {"pos": pos, "chunk": chunk},
        {"pos": mask, "chunk": mask.clone()}, name,
    )


def _word_ids(sentences: Sequence[Sentence], words: dict[str, int], length: int, lowercase: bool) -> Tensor:
    """Word ids ``[N, length]``, ``0`` on padding, ``<unk>`` for words not in ``words``."""
    tokens = torch.zeros(len(sentences), length, dtype=torch.long)
    unk = words[UNK]
    for i, sentence in enumerate(sentences):
        if sentence:
            ids = [words.get(w.lower() if lowercase else w, unk) for w, _, _ in sentence]
            tokens[i, : len(ids)] = torch.tensor(ids)
    return tokens


def _spell(sentences: Sequence[Sentence], spelling: tuple[dict[str, int], int], length: int) -> Tensor:
    """Character ids ``[N, length, width]`` of every word (``0`` padding, ``1`` unknown)."""
    letters, width = spelling
    chars = torch.zeros(len(sentences), length, width, dtype=torch.long)
    for i, sentence in enumerate(sentences):
        for j, (word, _, _) in enumerate(sentence):
            ids = [letters.get(c, 1) for c in word[:width]]
            chars[i, j, : len(ids)] = torch.tensor(ids)
    return chars


@DATASETS.register("conll2000")
def conll2000(
    root: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    min_count: int = 2,
    lowercase: bool = False,
    pos_role: Literal["main", "auxiliary"] = "auxiliary",
    characters: int = 0,
    next_sentence: bool = False,
    vocab_order: Literal["alphabetical", "frequency"] = "alphabetical",
    download: bool = False,
    verify: bool = True,
) -> MultiTaskData:
    """CoNLL-2000 chunking (WSJ): per-token POS tags and chunk (BIO) tags.

    Inputs are word ids ``[N, L]`` padded with ``0`` (``<pad>``) to the longest sentence of
    the corpus; unknown words map to ``1`` (``<unk>``). Tasks: ``chunk`` (main;
    metrics ``chunk_f1`` as conlleval defines it, then ``accuracy``) and ``pos`` (auxiliary by
    default; ``accuracy``). Both are labelled on every real token (mask ``[N, L]``).

    Args:
        root: Folder holding ``conll2000/conll2000.zip`` (default ``$MANYTASK_DATA``, else
            ``./data``).
        val_fraction: Fraction of the training sentences held out for validation (seeded).
        seed: Seed of the validation split.
        min_count: Words seen fewer times in the training part become ``<unk>`` (with the
            default 2, ``<unk>`` is seen in training).
        lowercase: Lowercase words before looking them up.
        pos_role: Role of the POS task (``"auxiliary"`` as in Søgaard & Goldberg 2016, or
            ``"main"``).
        characters: Also spell every word with its first ``characters`` characters (as cased in
            the text): inputs become ``{"tokens": [N, L], "chars": [N, L, characters]}``, character
            ids from the training part (``0`` padding, ``1`` unknown), for an encoder with
            character features (``bilstm`` with ``char_dim``). 0: word ids only.
        next_sentence: Also give every sentence the one after it in its file (``"next_tokens"``,
            and ``"next_chars"`` with ``characters``; all padding after a file's last sentence),
            for the ``next_sentence`` view (Devlin et al. 2019). A training sentence gets the next
            training sentence: a held-out validation sentence in between is skipped, so that no
            validation sentence reaches training.
        vocab_order: Word ids after ``<pad>`` and ``<unk>``: ``"alphabetical"``, or
            ``"frequency"`` (most common first), so that a view's ``predict: K`` (masked or next
            words) covers the ``K`` most common words.
        download: Fetch the missing file (with checksum) instead of raising.
        verify: Check the file's SHA-256 and the published sentence and token counts.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(
            f"The 'val_fraction' parameter of conll2000 must be in [0, 1). Got {val_fraction}."
        )
    if min_count < 1:
        raise ValueError(f"The 'min_count' parameter of conll2000 must be >= 1. Got {min_count}.")
    if vocab_order not in ("alphabetical", "frequency"):
        raise ValueError(f"The 'vocab_order' parameter of conll2000 must be 'alphabetical' or 'frequency'. "
                         f"Got {vocab_order!r}.")
    if characters < 0:
        raise ValueError(f"The 'characters' parameter of conll2000 must be >= 0 (0: no spelling). Got {characters}.")
    path = locate(
        dataset_dir(root, FOLDER), FILES[0], "conll2000", download_missing=download, verify=verify
    )
    splits = _read_zip(path)
    if verify:
        for split, (n_sent, n_tok) in SIZES.items():
            got = (len(splits[split]), sum(map(len, splits[split])))
            if got != (n_sent, n_tok):
                raise DataFormatError(
                    f"{path}: {split}.txt has {got[0]} sentences and {got[1]} tokens, expected "
                    f"{n_sent} and {n_tok}. Pass verify=False to load a modified corpus."
                )
    train_idx, val_idx, _ = split_indices(len(splits["train"]), val_fraction, 0.0, seed)
    train = [splits["train"][i] for i in train_idx.tolist()]
    val = [splits["train"][i] for i in val_idx.tolist()]
    test = splits["test"]
    everything = splits["train"] + test
    # Tag sets from all files: a tag seen only in the test file still gets an output class.
    pos_tags = tuple(sorted({p for s in everything for _, p, _ in s}))
    chunk_tags = _chunk_tags(everything)
    counts = Counter(w.lower() if lowercase else w for s in train for w, _, _ in s)
    kept = sorted(w for w, c in counts.items() if c >= min_count)
    if vocab_order == "frequency":  # most frequent first (ties alphabetical): ids below K are the K most common
        kept = sorted(kept, key=lambda w: -counts[w])
    vocab = [PAD, UNK, *kept]
    words = {w: i for i, w in enumerate(vocab)}
    pos_index = {t: i for i, t in enumerate(pos_tags)}
    chunk_index = {t: i for i, t in enumerate(chunk_tags)}
    length = max(map(len, everything))
    alphabet = [PAD, UNK, *sorted({c for s in train for w, _, _ in s for c in w})]
    letters = {c: i for i, c in enumerate(alphabet)}
    spelling = (letters, characters) if characters else None

    def encode(sentences: Sequence[Sentence], name: str, successors: Sequence[Sentence] | None = None) -> TensorSource:
        return _encode(sentences, words, pos_index, chunk_index, length, lowercase, name, spelling,
                       successors if next_sentence else None)

    def after(file: list[Sentence], indices: Sequence[int], among: Sequence[int] | None = None) -> list[Sentence]:
        """Each sentence's successor in the file, or with ``among`` the next of those sentences
        (training: a held-out validation sentence in between is skipped, so none reaches training)."""
        if among is None:
            return [file[i + 1] if i + 1 < len(file) else [] for i in indices]
        ordered = sorted(among)
        nxt = dict(zip(ordered, ordered[1:]))
        return [file[nxt[i]] if i in nxt else [] for i in indices]

    tasks = (
        ChunkTagging("chunk", tags=chunk_tags, metrics=("chunk_f1", "accuracy")),
        SequenceLabelling("pos", role=pos_role, num_classes=len(pos_tags), metrics=("accuracy",)),
    )
    return MultiTaskData(
        tasks=tasks,
        train={"conll2000": encode(train, "conll2000/train",
                                   after(splits["train"], train_idx.tolist(), among=train_idx.tolist()))},
        val=encode(val, "conll2000/val", after(splits["train"], val_idx.tolist())) if val else None,
        test=encode(test, "conll2000/test", after(test, range(len(test)))),
        input_info={
            "vocab_size": len(vocab),
            "pad_index": 0,
            "unk_index": 1,
            "max_length": length,
            "vocab": tuple(vocab),
            "pos_tags": pos_tags,
            "chunk_tags": chunk_tags,
            **({"char_vocab_size": len(alphabet), "alphabet": tuple(alphabet)} if characters else {}),
        },
        description=(
            f"CoNLL-2000: {len(train)} train / {len(val)} val (seed {seed}) / {len(test)} test "
            f"sentences; tasks chunk ({len(chunk_tags)} tags) and pos ({len(pos_tags)} tags)"
        ),
    )
