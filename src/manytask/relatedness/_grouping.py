"""Which tasks to train together: the best choice of k groups given a "how much i helps j" matrix.

The selection of Standley et al. 2020 (Sec. 3.3) and Fifty et al. 2021 (Sec. 3.2): choose k
groups (overlap allowed); each task is served by the chosen group that does best for it; maximise
the total over tasks. A group's value for its member ``j`` is the mean of ``matrix[i, j]`` over the
other members ``i`` (Fifty et al.'s total affinity onto ``j``, normalised; Standley et al.'s
higher-order approximation from pairs), and 0 for ``j`` alone (no partner: no gain).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["best_groups", "group_value"]


def group_value(matrix: np.ndarray, group: tuple[int, ...], task: int) -> float:
    """The mean of ``matrix[i, task]`` over the other members ``i`` of ``group`` (0 alone)."""
    others = [i for i in group if i != task]
    return float(np.mean([matrix[i, task] for i in others])) if others else 0.0


def best_groups(matrix: np.ndarray, k: int, limit: int = 5_000_000) -> tuple[list[tuple[int, ...]], float]:
    """The ``k`` groups (sorted tuples of task positions) with the largest total value, found by
    trying every choice of ``k`` of the ``2^T - 1`` groups (exact; refused past ``limit``
    choices), and that total. A chosen group that serves none of its tasks better than another
    chosen group does is dropped (the total is the same without it: with two tasks that help
    each other the answer is their pair, not the pair and a task alone), so fewer than ``k``
    groups may come back. NaN entries count as 0 (no measured effect); a matrix with no finite
    entry off the diagonal (no pair measured) is refused, as every choice is worth 0."""
    matrix = np.asarray(matrix, dtype=float)
    count = matrix.shape[0]
    if not 1 <= k <= count:
        raise ValueError(f"k must be between 1 and the number of tasks ({count}); got {k}.")
    if not np.isfinite(matrix[~np.eye(count, dtype=bool)]).any():
        raise ValueError("The matrix has no finite entry off the diagonal: no pair of tasks was measured, so every "
                         "grouping is worth the same. Measure the tasks together (batches that hold several tasks) "
                         "or from pair runs.")
    matrix = np.nan_to_num(matrix, nan=0.0)
    subsets = [tuple(i for i in range(count) if mask >> i & 1) for mask in range(1, 2 ** count)]
    choices = math.comb(len(subsets), k)
    if choices > limit:
        raise ValueError(f"Choosing {k} of {len(subsets)} groups of {count} tasks is {choices:,} choices, more than "
                         f"the exact search tries ({limit:,}); group fewer tasks (or fewer groups) at a time.")
    value = np.full((len(subsets), count), -np.inf)  # value[g, j]: group g for task j (-inf: j not in g)
    for g, subset in enumerate(subsets):
        for j in subset:
            value[g, j] = group_value(matrix, subset, j)
    best, best_total = None, -np.inf
    combos = itertools.combinations(range(len(subsets)), k)
    while chunk := list(itertools.islice(combos, 200_000)):
        index = np.array(chunk)  # [C, k]
        served = value[index].max(axis=1)  # [C, T]: each task's best chosen group
        totals = np.where(np.isfinite(served).all(axis=1), served.sum(axis=1), -np.inf)
        top = int(totals.argmax())
        if totals[top] > best_total:
            best, best_total = chunk[top], float(totals[top])
    assert best is not None  # k groups can always cover every task (k <= T)
    chosen = list(best)
    for g in sorted(best, key=lambda g: len(subsets[g])):  # smaller groups first: the pair stays, the task alone goes
        others = [h for h in chosen if h != g]
        if others and all(value[others, j].max() >= value[g, j] for j in subsets[g]):
            chosen = others
    return [subsets[g] for g in chosen], best_total
