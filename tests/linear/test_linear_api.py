"""Input forms, errors, and use with GridSearchCV / Pipeline."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from manytask import linear as lin
from manytask.linear._base import LinearMultiTaskClassifier
from manytask.linear._catalog import CLASSIFIERS, REGRESSORS


def test_public_api_is_explicit() -> None:
    for name in lin.__all__:
        assert hasattr(lin, name)
    # 17 regularised families with both losses (MMTFL, VSTG-MTL, grouped MTFL the last); kernel ridge, ASO, a GP,
    # shared hypotheses, hierarchical Bayes, task gating; an online classifier, task clustering (TC),
    # a Dirichlet-process prior
    assert (len(REGRESSORS.names()), len(CLASSIFIERS.names())) == (23, 20)


@pytest.mark.parametrize(
    "estimator, match",
    [
        (
            lin.L21MultiTaskRegressor(alpha=-1.0),
            r"The 'alpha' parameter of L21MultiTaskRegressor "
            r"must be a float in the range \[0, inf\). Got -1.0 instead.",
        ),
        (lin.DirtyMultiTaskRegressor(beta="a"), r"The 'beta' parameter of DirtyMultiTaskRegressor"),
        (
            lin.ClusteredMultiTaskRegressor(n_clusters=0),
            r"'n_clusters' parameter .* must be an int",
        ),
        (lin.IndependentRidgeRegressor(max_iter=1.5), r"'max_iter' parameter"),
        (lin.TraceNormMultiTaskClassifier(fit_intercept="yes"), r"'fit_intercept' parameter"),
        (
            lin.L1LqMultiTaskRegressor(q=3),
            r"The 'q' parameter of L1LqMultiTaskRegressor must be 2 "
            r"or numpy.inf",
        ),
    ],
)
def test_invalid_hyperparameters(estimator, match: str) -> None:  # noqa: ANN001
    X, Y = np.ones((6, 2)), np.arange(12.0).reshape(6, 2) % 2
    with pytest.raises(lin.InvalidParameterError, match=match):
        estimator.fit(X, Y)


def test_multi_input_form_errors(problem: Callable) -> None:
    p = problem()
    est = lin.L21MultiTaskRegressor().fit(p.X, p.y, task=p.task)
    assert est.coef_.shape == (p.n_tasks, p.X.shape[1]) and est.intercept_.shape == (p.n_tasks,)
    with pytest.raises(ValueError, match=r"fitted in the multi-input form .* task="):
        est.predict(p.X)
    with pytest.raises(ValueError, match=r"task index 3 is out of range"):
        est.predict(p.X, task=np.full(len(p.X), 3))
    with pytest.raises(ValueError, match=r"task must have shape"):
        est.predict(p.X, task=p.task[:-1])
    with pytest.raises(ValueError, match=r"task indices must be >= 0"):
        lin.L21MultiTaskRegressor().fit(p.X, p.y, task=p.task - 1)
    with pytest.raises(ValueError, match=r"y must be 1-D"):
        lin.L21MultiTaskRegressor().fit(p.X, np.c_[p.y, p.y], task=p.task)
    with pytest.raises(ValueError, match=r"each task must be binary"):
        lin.L21MultiTaskClassifier().fit(p.X, p.task, task=p.task)


def test_graph_must_match_tasks(problem: Callable) -> None:
    p = problem()
    with pytest.raises(ValueError, match=r"graph must be a \(3, 3\) adjacency matrix"):
        lin.GraphRegularizedMultiTaskRegressor(graph=np.ones((2, 2))).fit(p.X, p.y, task=p.task)
    with pytest.raises(ValueError, match=r"symmetric"):
        lin.GraphRegularizedMultiTaskRegressor(graph=-np.ones((3, 3))).fit(p.X, p.y, task=p.task)


def test_shared_form_shapes_and_task_predict() -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 4))
    est = lin.TraceNormMultiTaskRegressor().fit(X, Y)
    assert est.task_form_ == "shared" and est.predict(X).shape == (20, 4)
    task = np.arange(20) % 4
    np.testing.assert_allclose(est.predict(X, task=task), est.predict(X)[np.arange(20), task])


def test_classifier_forms() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, size=60)]
    ovr = lin.L21MultiTaskClassifier(alpha=0.01).fit(X, labels)
    assert ovr.task_form_ == "one_vs_rest" and ovr.coef_.shape == (3, 3)
    assert set(ovr.predict(X)) <= set(labels)
    np.testing.assert_allclose(ovr.predict_proba(X).sum(axis=1), 1.0)
    Y = (X @ rng.normal(size=(3, 2)) > 0).astype(int)
    shared = lin.L21MultiTaskClassifier(alpha=0.01).fit(X, Y)
    assert shared.predict(X).shape == (60, 2) and shared.predict_proba(X).shape == (60, 2)
    assert shared.score(X, Y) > 0.8


@pytest.mark.parametrize("make", [lambda: lin.L21MultiTaskClassifier(alpha=0.001), lin.DirichletProcessMultiTaskClassifier])
def test_a_one_vs_rest_task_is_not_answered_with_the_wrong_class(make: Callable) -> None:
    """Task t of a one-vs-rest fit is "classes_[t] against the rest". predict(X, task=t) returned
    classes_[0] or classes_[1] whatever t: on rows of class 'c' asked task 2, 'a' and 'b'. Labels
    and probabilities per task are refused; the fit's decision_function answers task t."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = np.array(["a", "b", "c"])[np.argmax(np.c_[X[:, 0], X[:, 1], -X[:, 0] - X[:, 1]], axis=1)]
    est = make().fit(X, y)
    rows = y == "c"
    task = np.full(rows.sum(), 2)
    assert np.mean(est.decision_function(X[rows], task=task) > 0) > 0.9  # task 2 says "c" on them
    assert np.mean(est.predict(X[rows]) == "c") > 0.9
    for method in (est.predict, est.predict_proba, est.predict_log_proba):
        with pytest.raises(ValueError, match=r"one-vs-rest on the classes \['a', 'b', 'c'\].*without task"):
            method(X[rows], task=task)
    with pytest.raises(ValueError, match="one-vs-rest"):
        est.score(X[rows], y[rows], task=task)


@pytest.mark.parametrize("name", sorted(n for n in CLASSIFIERS.names()
                                      if issubclass(CLASSIFIERS.get(n).factory, LinearMultiTaskClassifier)))
def test_a_task_with_one_label_is_refused_by_name(name: str) -> None:
    """Task 1 all positive (multi-input form) or a constant column of a shared Y: every regularised
    logistic estimator fitted it silently, its unpenalised intercept whatever tol made it (8.8 at
    1e-5, 13.8 at 1e-8). (The Bayesian DP-MTL, the perceptron and TC's nearest neighbours have an
    answer for such a task.)"""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    task = np.arange(90) % 3
    y = (X[:, 0] > 0).astype(int)
    y[task == 1] = 1
    with pytest.raises(ValueError, match=r"task 1 has only the label 1 in y \(30 rows; 1 such task"):
        CLASSIFIERS.create(name).fit(X, y, task=task)
    Y = np.c_[X[:, 0] > 0, np.ones(90)].astype(int)
    with pytest.raises(ValueError, match="task 1 has only the label.*fit_intercept=False"):
        CLASSIFIERS.create(name).fit(X, Y)


def test_grid_search_and_pipeline_shared_form() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 6)) * 10
    Y = X[:, :2] @ rng.normal(size=(2, 3)) + rng.normal(size=(60, 3))
    pipe = make_pipeline(StandardScaler(), lin.L21MultiTaskRegressor())
    search = GridSearchCV(pipe, {"l21multitaskregressor__alpha": [1e-3, 1e-1, 10.0]}, cv=3)
    search.fit(X, Y)
    assert search.best_params_["l21multitaskregressor__alpha"] < 10.0
    assert search.predict(X).shape == (60, 3)


def test_grid_search_multi_input_form_with_metadata_routing(problem: Callable) -> None:
    p = problem(n=90)
    with sklearn.config_context(enable_metadata_routing=True):
        est = lin.MeanRegularizedMultiTaskRegressor().set_fit_request(task=True)
        est = est.set_score_request(task=True)
        search = GridSearchCV(est, {"alpha": [0.0, 1.0]}, cv=KFold(3, shuffle=True, random_state=0))
        search.fit(p.X, p.y, task=p.task)
        assert search.best_estimator_.coef_.shape == (3, 5)
        assert search.score(p.X, p.y, task=p.task) > 0.5


# hierarchical Bayes' EM can use up its default max_iter=200 on these 60-row folds, and says so
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", REGRESSORS.names())
def test_every_regressor_is_scored_by_a_multi_input_grid_search(problem: Callable, name: str) -> None:
    """GridSearchCV's scoring routes ``task`` to ``score`` (scikit-learn's own cannot pass it on)."""
    p = problem(n=90)
    with sklearn.config_context(enable_metadata_routing=True):
        est = REGRESSORS.create(name).set_fit_request(task=True).set_score_request(task=True)
        search = GridSearchCV(est, {}, cv=KFold(3, shuffle=True, random_state=0), error_score="raise")
        search.fit(p.X, p.y, task=p.task)
        assert np.isfinite(search.best_score_)
        assert search.score(p.X, p.y, task=p.task) > 0.0


@pytest.mark.parametrize("name", CLASSIFIERS.names())
def test_every_classifier_is_scored_by_a_multi_input_grid_search(problem: Callable, name: str) -> None:
    p = problem(n=90)
    labels = (p.y > np.median(p.y)).astype(int)
    with sklearn.config_context(enable_metadata_routing=True):
        est = CLASSIFIERS.create(name).set_fit_request(task=True).set_score_request(task=True)
        search = GridSearchCV(est, {}, cv=KFold(3, shuffle=True, random_state=0), error_score="raise")
        search.fit(p.X, labels, task=p.task)
        assert 0.5 < search.best_score_ <= 1.0


def test_pipeline_multi_input_form(problem: Callable) -> None:
    p = problem()
    pipe = make_pipeline(StandardScaler(), lin.TraceNormMultiTaskRegressor())
    pipe.fit(p.X, p.y, tracenormmultitaskregressor__task=p.task)
    assert pipe.predict(p.X, task=p.task).shape == (len(p.y),)


def test_fit_returns_self_and_attributes(problem: Callable) -> None:
    p = problem()
    for name in REGRESSORS.names():
        est = REGRESSORS.create(name)
        if not isinstance(est, lin.LinearMultiTaskRegressor):  # kernel ridge, ASO, the GP: their own solvers
            continue
        assert est.fit(p.X, p.y, task=p.task) is est
        assert est.n_features_in_ == 5 and est.n_tasks_ == 3 and est.n_iter_ >= 1
        assert np.isfinite(est.objective_)


def test_every_estimator_listed_has_a_one_line_summary() -> None:
    """``manytask list linear`` shows the docstring's first line: a whole sentence, not a fragment."""
    from manytask.linear._catalog import LINEAR, _summary

    for name in LINEAR.names():
        summary = _summary(LINEAR.get(name).factory)
        assert summary.endswith((".", ")")) and ":math:" not in summary and len(summary) <= 110, (name, summary)


@pytest.mark.parametrize("make", [lin.IndependentRidgeRegressor, lin.L21MultiTaskRegressor, lin.TraceNormMultiTaskClassifier])
def test_badly_scaled_columns_are_named_instead_of_a_silent_early_stop(make: Callable) -> None:
    """A column 1e6 (or 1e3: 6 steps, coefficients off by 2) times the others sets the step size:
    the solver stopped in a few steps far from the optimum and no warning. The fit now says which
    columns and what to do."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = X[:, 0] + 0.1 * rng.normal(size=90)
    target = (y > 0).astype(int) if "Classifier" in make.__name__ else y
    for factor, said in ((1e6, r"1e\+06"), (1e3, "1e\\+03|1000")):
        wide = np.c_[X, factor * X[:, 1], np.full(90, 5.0)]  # (a constant column has no scale to compare)
        with pytest.warns(UserWarning, match=rf"differ in scale by a factor ({said}) \(column 4.*Standardise X"):
            make().fit(wide, target, task=np.arange(90) % 3)
    X = np.c_[X, 1e6 * X[:, 1], np.full(90, 5.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # standardised: no warning
        make().fit((X[:, :5] - X[:, :5].mean(0)) / X[:, :5].std(0), target, task=np.arange(90) % 3)
