"""Task samplers (closed-form probabilities) and the mixing loader."""

from __future__ import annotations

import math

import pytest
import torch

from manytask.data import (
    Annealed,
    MultiSourceLoader,
    Proportional,
    RoundRobin,
    Temperature,
    TensorSource,
    Uniform,
    create_sampler,
)

SIZES = torch.tensor([100.0, 400.0, 900.0], dtype=torch.float64)


def test_probabilities_in_closed_form() -> None:
    torch.testing.assert_close(Uniform().probabilities(SIZES, 0, 1), torch.full((3,), 1 / 3, dtype=torch.float64))
    torch.testing.assert_close(Proportional().probabilities(SIZES, 0, 1), SIZES / 1400)
    sq = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)  # n^(1/2)
    torch.testing.assert_close(Temperature(2.0).probabilities(SIZES, 0, 1), sq / 60)


def test_annealed_goes_from_proportional_to_alpha_point_two() -> None:
    sampler = Annealed()
    torch.testing.assert_close(sampler.probabilities(SIZES, 0, 5), SIZES / 1400)
    last = SIZES**0.2 / (SIZES**0.2).sum()
    torch.testing.assert_close(sampler.probabilities(SIZES, 4, 5), last)
    mid = SIZES ** (1 - 0.8 * 2 / 4)
    torch.testing.assert_close(sampler.probabilities(SIZES, 2, 5), mid / mid.sum())


def test_round_robin_cycles() -> None:
    g = torch.Generator()
    assert [RoundRobin().choose(SIZES, s, 0, 1, g) for s in range(5)] == [0, 1, 2, 0, 1]


def test_a_small_temperature_picks_the_largest_source_instead_of_overflowing() -> None:
    """tau = 0.01: n^(1/tau) = 2000^100 overflows float64 (the probabilities were [nan, 0] and the
    first draw raised); the ratio of the two is (1000/2000)^100 = 2^-100 by hand."""
    p = Temperature(0.01).probabilities(torch.tensor([2000.0, 1000.0], dtype=torch.float64), 0, 1)
    torch.testing.assert_close(p, torch.tensor([1.0, 2.0**-100], dtype=torch.float64), rtol=1e-12, atol=0)
    def rows(n: int) -> TensorSource:
        return TensorSource(torch.zeros(n, 1), {"t": torch.zeros(n)})

    loader = MultiSourceLoader({"a": rows(2000), "b": rows(1000)}, 8, Temperature(0.01), seed=0)
    assert [loader.next()[0] for _ in range(5)] == ["a"] * 5


def test_a_resume_with_a_changed_unlabelled_source_says_the_data_changed() -> None:
    """The message read the labelled sources only: a KeyError instead of it."""
    def rows(n: int) -> TensorSource:
        return TensorSource(torch.zeros(n, 1), {"t": torch.zeros(n)})

    saved = MultiSourceLoader({"a": rows(20)}, 4, unlabelled={"u": rows(10)}, unlabelled_batch_size=2, seed=0)
    saved.next()
    changed = MultiSourceLoader({"a": rows(20)}, 4, unlabelled={"u": rows(12)}, unlabelled_batch_size=2, seed=0)
    with pytest.raises(ValueError, match="source 'u' has 10 samples but the source now has 12; the data changed"):
        changed.load_state_dict(saved.state_dict())


def test_temperature_rejects_bad_tau() -> None:
    with pytest.raises(ValueError, match="'tau' parameter of Temperature must be > 0"):
        Temperature(0.0)


def test_unknown_sampler_lists_close_names() -> None:
    with pytest.raises(KeyError, match="Did you mean 'uniform'"):
        create_sampler("unifrom")


def sources() -> dict[str, TensorSource]:
    return {
        "a": TensorSource(torch.arange(10.0).unsqueeze(1), {"a": torch.zeros(10)}),
        "b": TensorSource(torch.arange(100.0, 130.0).unsqueeze(1), {"b": torch.zeros(30)}),
    }


def test_epoch_definition_and_full_passes() -> None:
    loader = MultiSourceLoader({"a": sources()["a"]}, batch_size=4, seed=1)
    assert loader.steps_per_epoch == math.ceil(10 / 4)
    seen = torch.cat([loader.next()[1].inputs.squeeze(1) for _ in range(loader.steps_per_epoch)])
    assert sorted(seen.tolist()) == list(range(10))  # one epoch = one pass over a single source
    assert loader.epoch == 1


def test_mixing_frequencies_follow_the_sampler() -> None:
    loader = MultiSourceLoader(sources(), batch_size=2, sampler=Proportional(), seed=0)
    draws = [loader.next()[0] for _ in range(4000)]
    assert draws.count("b") / len(draws) == pytest.approx(30 / 40, abs=0.03)
    assert loader.steps_per_epoch == 20


def test_loader_state_round_trips() -> None:
    a = MultiSourceLoader(sources(), batch_size=3, sampler=Temperature(2.0), seed=5)
    for _ in range(7):
        a.next()
    b = MultiSourceLoader(sources(), batch_size=3, sampler=Temperature(2.0), seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(20):
        (na, ba), (nb, bb) = a.next(), b.next()
        assert na == nb and torch.equal(ba.inputs, bb.inputs)


def test_loader_state_of_changed_data_is_refused() -> None:
    a = MultiSourceLoader(sources(), batch_size=3, sampler=RoundRobin(), seed=5)
    for _ in range(2):  # round-robin: both sources have been read
        a.next()
    changed = sources()
    changed["a"] = TensorSource(torch.zeros(11, 1), {"a": torch.zeros(11)})
    with pytest.raises(ValueError, match="data changed"):
        MultiSourceLoader(changed, batch_size=3).load_state_dict(a.state_dict())


def test_a_batch_holds_the_rows_that_indexing_gives() -> None:
    """The source gathers rows by ``index_select``; each field equals ``value[indices]``: dict
    inputs of several shapes and dtypes, a block of partly labelled tasks, a block of fully
    labelled ones, a fully labelled task on its own."""
    n, g = 40, torch.Generator().manual_seed(0)
    inputs = {"image": torch.randn(n, 1, 4, 4, generator=g), "tokens": torch.randint(0, 9, (n, 5), generator=g)}
    targets = ({f"t{i}": torch.randn(n, generator=g) for i in range(9)} | {"full": torch.randint(0, 3, (n,), generator=g)}
               | {f"f{i}": torch.randn(n, generator=g) for i in range(8)})
    masks = {f"t{i}": torch.rand(n, generator=g) < 0.5 for i in range(9)}
    source = TensorSource(inputs, targets, masks)
    assert sorted(len(names) for names, _, _ in source._blocks) == [8, 9]
    indices = torch.randperm(n, generator=g)[:13]
    batch = source.batch(indices)
    for key, value in inputs.items():
        assert torch.equal(batch.inputs[key], value[indices])  # type: ignore[index]
    for task, value in targets.items():
        assert torch.equal(batch.targets[task], value[indices])
        expected = masks[task][indices] if task in masks else torch.ones(13, dtype=torch.bool)
        assert torch.equal(batch.masks[task], expected)
