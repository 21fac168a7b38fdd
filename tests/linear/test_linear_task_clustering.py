"""The TC algorithm (Thrun & O'Sullivan 1996) against independent computations: scikit-learn's
k-NN (per task, with uniform and with learned weights, and its leave-one-out accuracy), the pair
objective summed pair by pair and minimised by a generic solver, partitions enumerated by brute
force, and planted task families."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.distance import pdist, squareform
from sklearn.model_selection import GridSearchCV, LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import manytask.linear._task_clustering as tc
from manytask.linear._base import InvalidParameterError
from manytask.linear._task_clustering import TaskClusteringClassifier


def _random_tasks(seed: int, n: int = 30, d: int = 4, tasks: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n * tasks, d))
    task = np.repeat(np.arange(tasks), n)
    W = rng.normal(size=(tasks, d))
    y = (np.einsum("ij,ij->i", X, W[task]) + 0.5 * rng.normal(size=len(X)) > 0).astype(int)
    return X, y, task


def _family_task(rng: np.random.Generator, family: int, n: int, d: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Family 0 labels by a random direction in features (0, 1), family 1 in (2, 3); the rest is noise."""
    X = rng.normal(size=(n, d))
    phi = rng.uniform(0.35, 1.2)
    y = np.where(X[:, [2 * family, 2 * family + 1]] @ [np.cos(phi), np.sin(phi)] > 0, 1, -1)
    return X, y


def _families(seed: int, per_family: int = 3, n: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = [_family_task(rng, t // per_family, n) for t in range(2 * per_family)]
    task = np.repeat(np.arange(2 * per_family), n)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), task


@pytest.mark.parametrize("k", [1, 3, 4])
def test_knn_per_task_with_uniform_and_with_learned_weights(k: int) -> None:
    """Uniform weights: each task is scikit-learn's KNeighborsClassifier on its own rows; learned
    weights d: the same on features scaled by sqrt(d) (k = 4 checks that a tied vote goes to the
    first class, as in scikit-learn)."""
    X, y, task = _random_tasks(0)
    Q = np.random.default_rng(1).normal(size=(40, 4))
    model = TaskClusteringClassifier(n_clusters=2, n_neighbors=k).fit(X, y, task=task)
    learned = model.metrics_.copy()
    for weights in (np.ones_like(learned), learned):
        model.metrics_ = weights
        for t in range(3):
            scale = np.sqrt(weights[model.clusters_[t]])
            knn = KNeighborsClassifier(n_neighbors=k).fit(X[task == t] * scale, y[task == t])
            np.testing.assert_array_equal(model.predict(Q, task=np.full(len(Q), t)), knn.predict(Q * scale))


def test_transfer_matrix_is_leave_one_out_accuracy_of_knn() -> None:
    """C[n, m] is the leave-one-out accuracy of scikit-learn's k-NN on task n's rows scaled by task
    m's metric; cluster_transfer_ likewise with the cluster metrics."""
    X, y, task = _random_tasks(2, n=25)
    model = TaskClusteringClassifier(n_clusters=2, n_neighbors=3).fit(X, y, task=task)
    for metrics, table in ((model.task_metrics_, model.transfer_), (model.metrics_, model.cluster_transfer_)):
        for n in range(3):
            for m, weights in enumerate(metrics):
                knn = KNeighborsClassifier(n_neighbors=3)
                loo = cross_val_score(knn, X[task == n] * np.sqrt(weights), y[task == n], cv=LeaveOneOut())
                assert table[n, m] == pytest.approx(loo.mean())


def _pair_objective(X: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """Mean squared weighted distance over same-label pairs minus that over different-label pairs."""
    S = squareform(pdist(X, "sqeuclidean", w=weights))
    same = y[:, None] == y[None, :]
    np.fill_diagonal(same, False)
    return float(S[same].mean() - S[y[:, None] != y[None, :]].mean())


def test_metrics_minimise_the_pair_objective() -> None:
    """Each task's metric and the pooled metric of a cluster (the mean objective of its tasks) are
    the minimum found by SLSQP over d >= 0, ||d||^2 = dim, with the objective summed pair by pair."""
    X, y, task = _families(3, per_family=2, n=25)
    model = TaskClusteringClassifier(n_clusters=1).fit(X, y, task=task)
    dim = X.shape[1]
    for members, ours in [([0], model.task_metrics_[0]), ([3], model.task_metrics_[3]),
                          ([0, 1, 2, 3], model.metrics_[0])]:
        def objective(weights: np.ndarray, members: list[int] = members) -> float:
            return float(np.mean([_pair_objective(X[task == t], y[task == t], weights) for t in members]))

        best = min((minimize(objective, start, method="SLSQP", bounds=[(0, None)] * dim,
                             constraints={"type": "eq", "fun": lambda w: w @ w - dim}, options={"ftol": 1e-12})
                    for start in (np.ones(dim), ours + 0.3)), key=lambda r: r.fun)
        assert objective(ours) <= best.fun + 1e-7
        assert objective(ours) < objective(np.ones(dim))  # better than the Euclidean metric
        np.testing.assert_allclose(ours, best.x, atol=1e-3)


def test_objective_is_linear_in_the_weights_with_the_computed_gaps() -> None:
    """E(d) = -d . g for any weights, g from class means and variances (one-vs-rest imbalance)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 5)) * [1.0, 2.0, 0.5, 1.0, 3.0]
    y = np.where(np.arange(40) < 6, 1.0, -1.0)
    gaps = tc._pair_gaps(X, y[:, None])[0]
    for weights in rng.uniform(0, 2, size=(3, 5)):
        assert -weights @ gaps == pytest.approx(_pair_objective(X, y, weights), rel=1e-10)


def _partition_score(C: np.ndarray, labels: tuple[int, ...]) -> float:
    return sum(sum(C[n, m] for n in block for m in block) / len(block)
               for block in ([i for i, a in enumerate(labels) if a == c] for c in set(labels)))


def test_exhaustive_search_maximises_j_over_all_labellings() -> None:
    C = np.random.default_rng(5).uniform(size=(6, 6))
    ours = tc._best_partition(C, 3, 1, np.random.RandomState(0))
    brute = max(_partition_score(C, labels) for labels in itertools.product(range(3), repeat=6) if len(set(labels)) == 3)
    assert len(set(ours.tolist())) == 3
    assert _partition_score(C, tuple(ours)) == pytest.approx(brute)
    assert tc._stirling2(10, 3) == 9330 == len(list(tc._partitions(10, 3)))


def test_local_search_finds_planted_blocks_and_the_exhaustive_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    blocks = np.repeat(np.arange(3), 4)
    C = 0.5 + 0.3 * (blocks[:, None] == blocks[None, :]) + 0.1 * rng.uniform(size=(12, 12))
    small = rng.uniform(size=(7, 7))
    exhaustive = tc._best_partition(small, 3, 1, np.random.RandomState(0))
    monkeypatch.setattr(tc, "_EXHAUSTIVE_LIMIT", 0)
    found = tc._best_partition(C, 3, 10, np.random.RandomState(0))
    np.testing.assert_array_equal(found, blocks)  # clusters numbered in order of their first task
    local = tc._best_partition(small, 3, 20, np.random.RandomState(0))
    assert _partition_score(small, tuple(local)) == pytest.approx(_partition_score(small, tuple(exhaustive)))


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_families_are_the_clusters_and_their_metrics_weight_their_features(seed: int) -> None:
    X, y, task = _families(seed)
    model = TaskClusteringClassifier(n_clusters=2).fit(X, y, task=task)
    np.testing.assert_array_equal(model.clusters_, [0, 0, 0, 1, 1, 1])
    for family, relevant in ((0, [0, 1]), (1, [2, 3])):
        weights = model.metrics_[family] ** 2
        assert weights[relevant].sum() > 0.9 * weights.sum()
        assert weights[relevant].min() > weights[4:].max()
    within = model.transfer_[:3, :3].mean() + model.transfer_[3:, 3:].mean()
    assert within > model.transfer_[:3, 3:].mean() + model.transfer_[3:, :3].mean() + 0.3


def test_selective_transfer_beats_one_pooled_metric_on_few_examples() -> None:
    """New tasks with 10 examples: TC puts each in its family's cluster and classifies fresh points
    better than k-NN under one metric pooled over every task (n_clusters=1)."""
    X, y, task = _families(7)
    selective = TaskClusteringClassifier(n_clusters=2).fit(X, y, task=task)
    pooled = TaskClusteringClassifier(n_clusters=1).fit(X, y, task=task)
    rng = np.random.default_rng(8)
    gains = []
    for family in (0, 0, 0, 1, 1, 1):
        X_new, y_new = _family_task(rng, family, 10 + 400)
        accuracy = []
        for model in (selective, pooled):
            t = model.add_task(X_new[:10], y_new[:10]).n_tasks_ - 1
            accuracy.append(np.mean(model.predict(X_new[10:], task=np.full(400, t)) == y_new[10:]))
        assert selective.clusters_[-1] == family
        gains.append(accuracy[0] - accuracy[1])
    assert min(gains) > 0 and np.mean(gains) > 0.05


def test_forms_labels_search_and_errors() -> None:
    X, y, task = _families(9, per_family=2, n=30)
    Y = np.stack([y[task == t] for t in range(4)], axis=1)  # four tasks sharing the first task's rows
    shared = TaskClusteringClassifier().fit(X[:30], (Y > 0).astype(int))
    assert shared.predict(X[:5]).shape == (5, 4) and shared.transfer_.shape == (4, 4)
    assert set(np.unique(shared.predict(X[:5]))) <= {0, 1}
    multi = TaskClusteringClassifier(n_clusters=5).fit(X, np.where(y > 0, "yes", "no"), task=task)
    assert multi.n_clusters_ == 4 and multi.predict(X[:3], task=[0, 1, 3]).tolist()[0] in ("no", "yes")
    search = GridSearchCV(TaskClusteringClassifier(), {"n_neighbors": [1, 3]}, cv=3).fit(X[:30], (Y > 0).astype(int))
    assert search.best_params_["n_neighbors"] in (1, 3)
    with pytest.raises(InvalidParameterError, match="'n_clusters' parameter"):
        TaskClusteringClassifier(n_clusters=0).fit(X, y, task=task)
    with pytest.raises(ValueError, match="binary"):
        TaskClusteringClassifier().fit(X, task % 3, task=task)
    with pytest.raises(ValueError, match="Task 1 has no rows"):
        TaskClusteringClassifier().fit(X[:60], y[:60], task=np.repeat([0, 2], 30))
    with pytest.raises(ValueError, match="not one of the classes"):
        multi.add_task(X[:4], ["yes", "no", "maybe", "no"])


def test_predict_after_a_multi_input_fit_needs_the_task() -> None:
    """It answered for task 0 when task was left out, silently."""
    from manytask.linear import TaskClusteringClassifier

    rng = np.random.default_rng(0)
    X, task = rng.normal(size=(60, 3)), np.arange(60) % 3
    model = TaskClusteringClassifier().fit(X, (X[:, 0] > 0).astype(int), task=task)
    with pytest.raises(ValueError, match=r"fitted on 3 tasks in the multi-input form.*predict\(X, task=task\)"):
        model.predict(X)
