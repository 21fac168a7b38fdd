"""scikit-learn's estimator checks on every linear MTL estimator."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from manytask.linear._catalog import CLASSIFIERS, REGRESSORS

ESTIMATORS = [REGRESSORS.create(n) for n in REGRESSORS.names()] + [
    CLASSIFIERS.create(n) for n in CLASSIFIERS.names()
]


# No expected failures: every check passes. Classifiers treat a multiclass 1-D y as
# one-vs-rest tasks and a column-vector y as 1-D, which check_classifiers_train and
# check_supervised_y_2d require. (check_array_api_input skips itself: SCIPY_ARRAY_API unset.)
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check) -> None:  # noqa: ANN001
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # Some checks fit on tiny or constant data (e.g. 10 uniform samples, an all-zero
        # solution), where the relative-decrease rule may not trigger within max_iter.
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
