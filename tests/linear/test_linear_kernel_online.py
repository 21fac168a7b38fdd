"""The kernel-form and online multi-task estimators against independent computations: ridge
regression in the primal, their known limits, and a Perceptron run by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Perceptron, Ridge
from sklearn.model_selection import GridSearchCV

from manytask.linear import InvalidParameterError, MultiTaskKernelRidge, MultiTaskPerceptron


def _problem(seed: int = 0, n: int = 90, d: int = 4, tasks: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    task = np.repeat(np.arange(tasks), n // tasks)
    shared = rng.normal(size=d)
    W = shared + 0.3 * rng.normal(size=(tasks, d))
    y = np.einsum("ij,ij->i", X, W[task]) + np.arange(tasks)[task] + 0.1 * rng.normal(size=n)
    return X, y, task


def _primal(X: np.ndarray, y: np.ndarray, task: np.ndarray, mu: float, alpha: float) -> np.ndarray:
    """Evgeniou & Pontil's feature map, written out: phi(x, t) = [x / sqrt(mu), 0, .., x (block
    t), .., 0]; ridge with an unpenalised intercept per task (centre each task's rows), in
    closed form. Returns each task's weights w_t = u / sqrt(mu) + v_t."""
    tasks, d = task.max() + 1, X.shape[1]
    phi = np.zeros((len(X), d * (tasks + 1)))
    phi[:, :d] = X / np.sqrt(mu)
    for t in range(tasks):
        phi[task == t, d * (t + 1):d * (t + 2)] = X[task == t]
    centred_phi, centred_y = phi.copy(), y.copy()
    for t in range(tasks):
        rows = task == t
        centred_phi[rows] -= phi[rows].mean(0)
        centred_y[rows] -= y[rows].mean()
    theta = np.linalg.solve(centred_phi.T @ centred_phi + alpha * np.eye(phi.shape[1]), centred_phi.T @ centred_y)
    return np.stack([theta[:d] / np.sqrt(mu) + theta[d * (t + 1):d * (t + 2)] for t in range(tasks)])


@pytest.mark.parametrize("mu", [0.1, 1.0, 10.0])
def test_the_kernel_form_is_the_primal_of_evgeniou_and_pontil(mu: float) -> None:
    X, y, task = _problem()
    model = MultiTaskKernelRidge(alpha=0.5, mu=mu).fit(X, y, task=task)
    np.testing.assert_allclose(model.coef_, _primal(X, y, task, mu, 0.5), atol=1e-8)


def test_independent_tasks_are_per_task_ridge_regressions() -> None:
    """mu = inf (B = I): each task is scikit-learn's Ridge with an intercept on its own rows."""
    X, y, task = _problem(seed=1)
    model = MultiTaskKernelRidge(alpha=2.0, mu=np.inf).fit(X, y, task=task)
    for t in range(3):
        ridge = Ridge(alpha=2.0).fit(X[task == t], y[task == t])
        np.testing.assert_allclose(model.coef_[t], ridge.coef_, atol=1e-8)
        np.testing.assert_allclose(model.intercept_[t], ridge.intercept_, atol=1e-8)
        np.testing.assert_allclose(model.predict(X[:5], task=np.full(5, t)), ridge.predict(X[:5]), atol=1e-8)


def test_a_given_similarity_and_a_nonlinear_kernel() -> None:
    """B = I with an RBF kernel decouples the tasks: the joint fit predicts as each task fitted
    alone; the shared-input form gives one column per task; a bad B is named."""
    X, y, task = _problem(seed=2)
    joint = MultiTaskKernelRidge(alpha=0.3, task_similarity=np.eye(3), kernel="rbf", gamma=0.5).fit(X, y, task=task)
    for t in range(3):
        alone = MultiTaskKernelRidge(alpha=0.3, mu=np.inf, kernel="rbf", gamma=0.5).fit(X[task == t], y[task == t])
        np.testing.assert_allclose(joint.predict(X, task=np.full(len(X), t)), alone.predict(X), atol=1e-8)
    Y = np.stack([y[:30], y[30:60]], axis=1)
    assert MultiTaskKernelRidge().fit(X[:30], Y).predict(X[:4]).shape == (4, 2)
    with pytest.raises(InvalidParameterError, match="positive semi-definite"):
        MultiTaskKernelRidge(task_similarity=np.array([[1.0, 2.0], [2.0, 1.0]])).fit(X[:60], y[:60], task=task[:60] % 2)
    search = GridSearchCV(MultiTaskKernelRidge(), {"mu": [0.1, 10.0]}, cv=3).fit(X[:30], Y)
    assert search.best_params_["mu"] in (0.1, 10.0)


def test_the_perceptron_by_hand_and_its_independent_limit() -> None:
    """b = 0: every task is scikit-learn's Perceptron (no bias, step 1, no shuffling) on its own
    rows; b > 0: a mistake on task s moves task t by A^-1[t, s] x (checked on one update)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    task = np.tile([0, 1], 30)
    y = np.where(X @ np.array([1.0, -1.0, 0.5]) > 0, 1, 0)
    ours = MultiTaskPerceptron(b=0.0, max_iter=3, fit_intercept=False).fit(X, y, task=task)
    for t in range(2):
        theirs = Perceptron(fit_intercept=False, shuffle=False, max_iter=3, tol=None, eta0=1.0, alpha=0.0)
        theirs.fit(X[task == t], y[task == t])
        np.testing.assert_allclose(ours.coef_[t], theirs.coef_[0])
        with_bias = MultiTaskPerceptron(max_iter=3).fit(X[task == t], y[task == t] + 0)  # a bias, as theirs learns it
        bias = Perceptron(shuffle=False, max_iter=3, tol=None, eta0=1.0, alpha=0.0).fit(X[task == t], y[task == t])
        np.testing.assert_allclose([*with_bias.coef_[0], with_bias.intercept_[0]], [*bias.coef_[0], bias.intercept_[0]])
    coupled = MultiTaskPerceptron(b=0.5, fit_intercept=False).partial_fit(X[:1], np.array([1]), task=np.array([0]), classes=[0, 1],
                                                      n_tasks=2)
    inverse = np.linalg.inv(np.eye(2) + 0.5 * (2 * np.eye(2) - np.ones((2, 2))))
    np.testing.assert_allclose(coupled.coef_, inverse[:, [0]] * X[0])  # the first example is always a mistake
    assert coupled.mistakes_ == 1 and (coupled.coef_[1] != 0).all()
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        MultiTaskPerceptron().fit(X, task % 3 + (X[:, 0] > 0), task=task)


@pytest.mark.parametrize("mu", [0.5, np.inf])
def test_the_primal_and_the_dual_give_one_solution(mu: float) -> None:
    """Many rows (the linear kernel is then solved in the primal) against the dual system on the
    same data (forced by a kernel that is the linear one by another name: poly of degree 1)."""
    X, y, task = _problem(seed=3, n=300, d=3)
    primal = MultiTaskKernelRidge(alpha=0.7, mu=mu).fit(X, y, task=task)
    assert primal.dual_coef_ is None
    dual = MultiTaskKernelRidge(alpha=0.7, mu=mu, kernel="poly").set_params(gamma=1.0)
    dual._gram = lambda A, B: A @ B.T  # type: ignore[method-assign]  # the linear kernel, through the dual
    dual.fit(X, y, task=task)
    assert dual.dual_coef_ is not None
    np.testing.assert_allclose(primal.predict(X[:9], task=task[:9]), dual.predict(X[:9], task=task[:9]), atol=1e-8)


def test_the_perceptron_on_shared_inputs_sees_each_rows_tasks_in_turn() -> None:
    """y of shape (n, T): the same as the multi-input form with each row repeated once per task."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    Y = (X @ rng.normal(size=(4, 3)) > 0).astype(int)
    shared = MultiTaskPerceptron(b=0.3, max_iter=2).fit(X, Y)
    stacked = MultiTaskPerceptron(b=0.3, max_iter=2).fit(np.repeat(X, 3, axis=0), Y.ravel(), task=np.tile([0, 1, 2], 30))
    np.testing.assert_allclose(shared.coef_, stacked.coef_)
    assert shared.predict(X).shape == (30, 3) and shared.decision_function(X).shape == (30, 3)


def test_the_perceptron_after_a_multi_input_fit_needs_the_task_and_its_stream_hints_name_the_fix() -> None:
    """predict(X) without task answered for task 0 after a fit on several tasks, silently; the
    errors of a first chunk with one class and of a later chunk with a new task named no fix."""
    from manytask.linear import MultiTaskPerceptron

    rng = np.random.default_rng(0)
    X, task = rng.normal(size=(40, 3)), np.arange(40) % 2
    y = (X[:, 0] > 0).astype(int)
    model = MultiTaskPerceptron().fit(X, y, task=task)
    with pytest.raises(ValueError, match=r"fitted on 2 tasks with task=.*predict\(X, task=task\)"):
        model.predict(X)
    assert model.predict(X, task=task).shape == (40,)
    with pytest.raises(ValueError, match=r"pass classes=\[negative, positive\] to the first partial_fit"):
        MultiTaskPerceptron().partial_fit(X[y == 1], y[y == 1], task=task[y == 1])
    stream = MultiTaskPerceptron().partial_fit(X[:10], y[:10], task=np.zeros(10, dtype=int), classes=[0, 1])
    with pytest.raises(ValueError, match="pass n_tasks=<all of them> to the first partial_fit"):
        stream.partial_fit(X[10:20], y[10:20], task=np.ones(10, dtype=int))


def test_mu_takes_any_real_number_but_a_bool() -> None:
    """mu=np.float32(1.0) was refused as not a float, mu=True accepted."""
    X, y = np.random.default_rng(0).normal(size=(12, 2)), np.random.default_rng(1).normal(size=(12, 2))
    MultiTaskKernelRidge(mu=np.float32(1.0)).fit(X, y)
    with pytest.raises(InvalidParameterError, match="'mu' parameter"):
        MultiTaskKernelRidge(mu=True).fit(X, y)
