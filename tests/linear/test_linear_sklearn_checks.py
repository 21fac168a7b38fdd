"""scikit-learn's estimator checks on every linear MTL estimator."""

from __future__ import annotations

from functools import partial

import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

from manytask.linear._catalog import CLASSIFIERS, REGRESSORS

ESTIMATORS = [REGRESSORS.create(n) for n in REGRESSORS.names()] + [
    CLASSIFIERS.create(n) for n in CLASSIFIERS.names()
]


def _name(check: partial) -> str:
    return getattr(check, "func", check).__name__


# No expected failures: every check passes. Classifiers treat a multiclass 1-D y as
# one-vs-rest tasks and a column-vector y as 1-D, which check_classifiers_train and
# check_supervised_y_2d require. The array-API checks are left out: the estimators are
# NumPy-only (they do not claim array-API support), and those checks would only skip themselves.
CHECKS = [
    pytest.param(est, check, id=f"{type(est).__name__}-{_name(check)}")
    for base in ESTIMATORS
    for est, check in estimator_checks_generator(base)
    if "array_api" not in _name(check)
]


@pytest.mark.parametrize("estimator, check", CHECKS)
def test_sklearn_compatible(estimator, check) -> None:  # noqa: ANN001
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # Some checks fit on tiny or constant data (e.g. 10 uniform samples, an all-zero
        # solution), where the relative-decrease rule may not trigger within max_iter.
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
