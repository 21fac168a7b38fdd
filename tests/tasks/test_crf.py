"""The linear-chain CRF against brute-force enumeration of every tag path, its gradient against
the marginals-minus-gold identity, and the CRF option of a sequence-labelling task through a run."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from manytask.config import parse_config
from manytask.models import BiLSTM, HardSharing, JointManyTask, make_head
from manytask.models._backbone import FeatureInfo
from manytask.runs import train
from manytask.tasks import SequenceLabelling
from manytask.tasks._crf import crf_log_likelihood_terms, crf_marginals, crf_potentials, log_partition, viterbi

C = 3


def _example(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Potentials of two sentences (lengths 4 and 2, padded to 5) and their pieces."""
    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(2, 5, C, generator=g, dtype=torch.float64)
    transitions = torch.randn(C, C, generator=g, dtype=torch.float64)
    start = torch.randn(C, generator=g, dtype=torch.float64)
    padding = torch.tensor([[False] * 4 + [True], [False] * 2 + [True] * 3])
    return crf_potentials(emissions, transitions, start, padding), emissions, transitions, start


def _score(path: tuple[int, ...], emissions: torch.Tensor, transitions: torch.Tensor, start: torch.Tensor) -> float:
    total = float(start[path[0]] + emissions[0, path[0]])
    for i in range(1, len(path)):
        total += float(transitions[path[i - 1], path[i]] + emissions[i, path[i]])
    return total


def _paths(n: int) -> list[tuple[int, ...]]:
    return list(itertools.product(range(C), repeat=n))


LENGTHS = [4, 2]


def test_log_partition_is_the_log_sum_over_every_path() -> None:
    potentials, emissions, transitions, start = _example()
    got = log_partition(potentials)
    for b, n in enumerate(LENGTHS):
        brute = math.log(sum(math.exp(_score(p, emissions[b], transitions, start)) for p in _paths(n)))
        padding = 5 - n  # every padding position multiplies every path by C
        assert float(got[b]) == pytest.approx(brute + padding * math.log(C), abs=1e-9)


def test_likelihood_of_partly_labelled_tags_sums_over_the_unlabelled_ones() -> None:
    potentials, emissions, transitions, start = _example(1)
    target = torch.tensor([[2, 0, 1, 1, 0], [1, 2, 0, 0, 0]])
    mask = torch.tensor([[True, False, True, True, False], [False, False, False, False, False]])
    got = crf_log_likelihood_terms(potentials, target, mask)
    n = LENGTHS[0]
    scores = {p: _score(p, emissions[0], transitions, start) for p in _paths(n)}
    z = math.log(sum(math.exp(s) for s in scores.values()))
    consistent = [s for p, s in scores.items() if p[0] == 2 and p[2] == 1 and p[3] == 1]
    assert float(got[0]) == pytest.approx(z - math.log(sum(math.exp(s) for s in consistent)), abs=1e-9)
    assert float(got[1]) == pytest.approx(0.0, abs=1e-9)  # nothing labelled: probability 1


def test_marginals_match_the_enumeration() -> None:
    potentials, emissions, transitions, start = _example(2)
    got = crf_marginals(potentials).exp()
    for b, n in enumerate(LENGTHS):
        weights = {p: math.exp(_score(p, emissions[b], transitions, start)) for p in _paths(n)}
        z = sum(weights.values())
        for i, c in itertools.product(range(n), range(C)):
            expected = sum(w for p, w in weights.items() if p[i] == c) / z
            assert float(got[b, i, c]) == pytest.approx(expected, abs=1e-9)


def test_viterbi_finds_the_best_path_of_the_real_tokens() -> None:
    for seed in range(5):
        potentials, emissions, transitions, start = _example(seed)
        got = viterbi(potentials)
        for b, n in enumerate(LENGTHS):
            best = max(_paths(n), key=lambda p: _score(p, emissions[b], transitions, start))  # noqa: B023
            assert tuple(got[b, :n].tolist()) == best


def test_the_gradient_is_marginals_minus_gold() -> None:
    """d(-log P(y)) / d emission[i, c] = P(y_i = c) - 1[y_i = c] for a fully labelled sentence."""
    potentials, emissions, transitions, start = _example(3)
    emissions = emissions.clone().requires_grad_(True)
    padding = torch.tensor([[False] * 4 + [True], [False] * 2 + [True] * 3])
    target = torch.tensor([[0, 2, 2, 1, 0], [1, 0, 0, 0, 0]])
    mask = ~padding
    nll = crf_log_likelihood_terms(crf_potentials(emissions, transitions, start, padding), target, mask).sum()
    (grad,) = torch.autograd.grad(nll, emissions)
    expected = crf_marginals(potentials).exp() - torch.nn.functional.one_hot(target, C)
    torch.testing.assert_close(grad[mask], expected[mask])
    assert torch.equal(grad[padding], torch.zeros_like(grad[padding]))


def test_a_crf_task_scores_viterbi_paths_and_marginals() -> None:
    task = SequenceLabelling("tags", num_classes=C, crf=True)
    head = make_head(task, FeatureInfo(4, "sequence"))
    features = torch.randn(2, 5, 4)
    features[0, 4:] = 0
    features[1, 2:] = 0
    output = head(features)
    assert output.shape == (2, 5, C, C)
    target = torch.tensor([[0, 1, 2, 1, 0], [2, 2, 0, 0, 0]])
    mask = features.ne(0).any(-1)
    total, count = task.loss_terms(output, target, mask)
    assert count == 6
    torch.testing.assert_close(total, crf_log_likelihood_terms(output.float(), target, mask).sum())
    assert torch.equal(task.predictions(output).argmax(-1), viterbi(output))
    selected, labelled = task.select(output, target, mask)
    torch.testing.assert_close(selected, crf_marginals(output)[mask])


def test_bad_crf_options_are_named() -> None:
    with pytest.raises(ValueError, match="crf=True .* needs level 'token' and loss 'cross_entropy'"):
        SequenceLabelling("tags", num_classes=3, crf=True, loss="mse")
    task = SequenceLabelling("tags", num_classes=3, crf=True)
    with pytest.raises(ValueError, match=r"needs CRF potentials \[B, L, 3, 3\]"):
        task.loss_terms(torch.randn(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), None)


def test_jmt_feeds_a_lower_crf_tasks_marginals_up() -> None:
    torch.manual_seed(0)
    low = SequenceLabelling("pos", num_classes=4, crf=True, attach_at=2)
    model = JointManyTask(BiLSTM(30, 8, 6, layers=2), [low, SequenceLabelling("chunk", num_classes=3, crf=True)])
    out = model(torch.tensor([[3, 4, 5, 0]]))
    assert out["pos"].shape == (1, 4, 4, 4) and out["chunk"].shape == (1, 4, 3, 3)
    sum(o.sum() for o in out.values()).backward()


def test_crf_from_a_config_trains_and_scores_chunks(tmp_path: Path, real_data: Callable[[str], Path]) -> None:
    root = real_data("conll2000")
    config = parse_config({
        "data": {"name": "conll2000", "root": str(root), "batch_size": 16},
        "tasks": {"chunk": {"crf": True}},
        "model": {"name": "hps", "encoder": {"name": "bilstm", "embedding_dim": 8, "hidden": 8}},
        "training": {"steps": 3, "eval_every": 3, "progress": False},
    })
    result = train(config, run_dir=tmp_path / "run")
    assert 0.0 <= result.test["chunk/chunk_f1"] <= 1.0
    with pytest.raises(Exception, match="crf applies to sequence-labelling tasks"):
        train(parse_config({"data": {"name": "demo"}, "tasks": {"score": {"crf": True}}}), run_dir=tmp_path / "bad")


def test_a_crf_over_a_vocabulary_is_refused_before_allocating(tmp_path: Path,
                                                              real_data: Callable[[str], Path]) -> None:
    """crf on a masked-word task of 9,065 classes tried to allocate 9,065² potentials a token
    (205 GB for a batch); it is a config error naming the bound."""
    config = parse_config({
        "data": {"name": "conll2000", "root": str(real_data("conll2000"))},
        "tasks": {"words": {"view": "masked_words", "kind": "classification", "level": "token", "num_classes": 9065,
                            "crf": True}},
    })
    with pytest.raises(Exception, match=r"tasks.words': crf holds num_classes x num_classes potentials per token; "
                                        r"9065 classes would need 82,174,225 a token"):
        train(config, run_dir=tmp_path / "run")


def test_hard_sharing_with_a_crf_head_backpropagates_into_the_transitions() -> None:
    task = SequenceLabelling("tags", num_classes=C, crf=True)
    model = HardSharing(BiLSTM(30, 8, 6), [task])
    x = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    total, _ = task.loss_terms(model(x)["tags"], torch.tensor([[0, 1, 2, 0], [2, 1, 0, 0]]), x != 0)
    total.backward()
    head = model.heads["tags"]
    assert head.transitions.grad is not None and head.transitions.grad.abs().sum() > 0


def test_a_fully_labelled_sentence_costs_its_gold_paths_score() -> None:
    """The shortcut for sentences labelled on every real token: log Z minus the gold score."""
    potentials, emissions, transitions, start = _example(4)
    target = torch.tensor([[1, 0, 2, 2, 0], [0, 1, 0, 0, 0]])
    mask = torch.tensor([[True] * 4 + [False], [True] * 2 + [False] * 3])
    got = crf_log_likelihood_terms(potentials, target, mask)
    for b, n in enumerate(LENGTHS):
        z = math.log(sum(math.exp(_score(p, emissions[b], transitions, start)) for p in _paths(n)))
        gold = _score(tuple(target[b, :n].tolist()), emissions[b], transitions, start)
        assert float(got[b]) == pytest.approx(z - gold, abs=1e-9)


def test_token_accuracy_reads_the_marginals_whether_or_not_chunk_f1_is_listed() -> None:
    """With chunk F1 listed too (CoNLL-2000's default), every metric of the task got the Viterbi
    path, so token accuracy changed with an unrelated metric (0.3099 alone, 0.3255 with it). The
    docstring: chunk F1 reads the Viterbi path, per-token metrics the posterior marginals."""
    from manytask.data import TensorSource
    from manytask.evaluation import evaluate
    from manytask.metrics import ChunkTagging
    from manytask.tasks._crf import crf_marginals, viterbi

    generator = torch.Generator().manual_seed(5)
    potentials = torch.randn(64, 6, 3, 3, generator=generator) * 2
    tags = torch.randint(0, 3, (64, 6), generator=generator)

    class Lookup(torch.nn.Module):
        def forward(self, rows: torch.Tensor, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
            return {"chunk": potentials[rows]}

    source = TensorSource(torch.arange(64), {"chunk": tags}, {"chunk": torch.ones(64, 6, dtype=torch.bool)})
    marginal = float((crf_marginals(potentials).argmax(-1) == tags).float().mean())
    assert marginal != float((viterbi(potentials) == tags).float().mean())  # the two differ here
    for metrics in (("accuracy",), ("chunk_f1", "accuracy")):
        task = ChunkTagging("chunk", tags=("O", "B-NP", "I-NP"), crf=True, metrics=metrics)
        assert evaluate(Lookup(), [task], source, batch_size=16)["chunk/accuracy"] == pytest.approx(marginal)
