"""``benchmarks/bilstm_layer.py`` reads the CoNLL-2000 sentence lengths and times both layers."""

from __future__ import annotations

import pytest
import torch

from .benchmark_scripts import load_script

script = load_script("bilstm_layer")


def test_sentence_lengths_are_the_training_sentences() -> None:
    lengths = script.sentence_lengths()
    assert lengths.min() >= 1 and lengths.max() == 78
    assert 23 < lengths.float().mean() < 24.5  # CoNLL-2000: 211,727 tokens in 8,936 sentences; 90 % train here


def test_prints_the_ratio(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["bilstm_layer.py", "--steps", "1", "--repeats", "1"])
    threads = torch.get_num_threads()
    try:
        script.main()
    finally:
        torch.set_num_threads(threads)
    line = capsys.readouterr().out.strip()
    assert line.startswith("| manytask BiLSTM layer / packed bidirectional") and float(line.split("|")[-2]) > 0
