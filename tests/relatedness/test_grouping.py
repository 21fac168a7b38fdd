"""The grouping search is exact: it matches an independent brute force over every choice of k
groups, and a hand-made case."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from manytask.relatedness import TaskMatrix, best_groups, group_value, load_matrices


def _total(matrix: np.ndarray, groups: list[tuple[int, ...]]) -> float:
    """Written apart from the library: each task's best chosen group, by the mean of what the
    group's other members do for it (0 alone)."""
    total = 0.0
    for task in range(len(matrix)):
        values = []
        for group in groups:
            if task in group:
                others = [matrix[i][task] for i in group if i != task]
                values.append(sum(others) / len(others) if others else 0.0)
        if not values:
            return float("-inf")
        total += max(values)
    return total


@pytest.mark.parametrize("seed, count, k", [(0, 4, 2), (1, 5, 2), (2, 4, 3), (3, 5, 1)])
def test_the_search_finds_what_brute_force_finds(seed: int, count: int, k: int) -> None:
    matrix = np.random.default_rng(seed).normal(size=(count, count))
    subsets = [tuple(i for i in range(count) if m >> i & 1) for m in range(1, 2 ** count)]
    brute = max(_total(matrix, list(choice)) for choice in itertools.product(subsets, repeat=k))
    groups, total = best_groups(matrix, k)
    assert len(groups) == k
    assert total == pytest.approx(brute) and _total(matrix, groups) == pytest.approx(brute)


def test_two_helping_pairs_that_hurt_each_other_are_split() -> None:
    """0 and 1 help each other, 2 and 3 too; across the pairs they hurt: the best two groups are
    the pairs, worth 4 (each of the four tasks gets 1)."""
    matrix = np.array([[0, 1, -1, -1], [1, 0, -1, -1], [-1, -1, 0, 1], [-1, -1, 1, 0]], dtype=float)
    groups, total = best_groups(matrix, 2)
    assert sorted(groups) == [(0, 1), (2, 3)] and total == 4.0
    assert best_groups(matrix, 1) == ([(0, 1, 2, 3)], pytest.approx(4 * (1 - 2) / 3))


def test_the_search_refuses_more_than_it_can_try() -> None:
    with pytest.raises(ValueError, match="more than the exact search tries"):
        best_groups(np.zeros((12, 12)), 3)
    with pytest.raises(ValueError, match="between 1 and the number of tasks"):
        best_groups(np.zeros((3, 3)), 4)


@pytest.mark.parametrize("matrix", [np.full((3, 3), np.nan), np.where(np.eye(3, dtype=bool), 1.0, np.nan)])
def test_a_matrix_that_measured_no_pair_recommends_no_groups(matrix: np.ndarray) -> None:
    """All NaN, or only the diagonal measured: every grouping would be worth 0, an arbitrary pick."""
    with pytest.raises(ValueError, match="no finite entry off the diagonal"):
        best_groups(matrix, 2)


def test_a_matrix_round_trips_and_names_each_tasks_partners(tmp_path: Path) -> None:
    values = np.array([[np.nan, 0.5, -0.2], [0.1, np.nan, 0.3], [-0.4, 0.0, np.nan]])
    matrix = TaskMatrix("affinity", "Affinity", "row helps column", ("a", "b", "c"), values, effect=True)
    matrix.save(tmp_path)
    (back,) = load_matrices(tmp_path)
    np.testing.assert_array_equal(back.values, values)
    assert back.tasks == ("a", "b", "c") and back.title == "Affinity" and back.effect
    assert matrix.partners() == ["a: helped most by b (+0.1), hurt most by c (-0.4)",
                                 "b: helped most by a (+0.5)",
                                 "c: helped most by b (+0.3), hurt most by a (-0.2)"]
    alike = TaskMatrix("cos", "Cosine", "", ("a", "b", "c"), values)
    assert alike.partners()[0] == "a: most alike b (+0.1), least alike c (-0.4)"


def test_a_group_that_serves_no_task_better_is_dropped() -> None:
    """Two tasks that help each other, two groups asked: the enumeration's first tie was
    "score | score, flag", a task alone beside the pair that serves it better. The pair alone
    has the same total; with three tasks, a second group that does serve one stays."""
    groups, total = best_groups(np.array([[0.0, 0.3], [0.2, 0.0]]), 2)
    assert groups == [(0, 1)] and total == pytest.approx(0.5)
    matrix = np.array([[0.0, 0.5, -0.4], [0.5, 0.0, 0.1], [-0.4, 0.6, 0.0]])
    groups, total = best_groups(matrix, 2)
    served = [max(group_value(matrix, g, j) for g in groups if j in g) for j in range(3)]
    assert sum(served) == pytest.approx(total) and len(groups) == 2
