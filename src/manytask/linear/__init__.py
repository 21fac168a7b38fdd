"""Regularised linear multi-task learning as scikit-learn estimators.

Every estimator takes the shared-input form ``fit(X, Y)`` with ``Y`` of shape
``(n_samples, n_tasks)`` or the multi-input form ``fit(X, y, task=task)``; ``coef_`` has shape
``(n_tasks, n_features)``. ``...Regressor`` classes use the squared loss, ``...Classifier``
classes the logistic loss. All are solved by accelerated proximal gradient with exact
proximal operators (see :func:`accelerated_proximal_gradient`).
"""

from manytask.linear._aso import AlternatingStructureRegressor
from manytask.linear._base import (
    InvalidParameterError,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
)
from manytask.linear._clustered import ClusteredMultiTaskClassifier, ClusteredMultiTaskRegressor
from manytask.linear._decomposed import (
    DirtyMultiTaskClassifier,
    DirtyMultiTaskRegressor,
    RobustFeatureMultiTaskClassifier,
    RobustFeatureMultiTaskRegressor,
    RobustMultiTaskClassifier,
    RobustMultiTaskRegressor,
    SparseLowRankMultiTaskClassifier,
    SparseLowRankMultiTaskRegressor,
)
from manytask.linear._feature_selection import (
    L1LqMultiTaskClassifier,
    L1LqMultiTaskRegressor,
    L21MultiTaskClassifier,
    L21MultiTaskRegressor,
    TraceNormMultiTaskClassifier,
    TraceNormMultiTaskRegressor,
)
from manytask.linear._gp import MultiTaskGaussianProcess
from manytask.linear._graph import (
    GraphRegularizedMultiTaskClassifier,
    GraphRegularizedMultiTaskRegressor,
)
from manytask.linear._hierarchical import HierarchicalBayesRegressor
from manytask.linear._independent import (
    IndependentLassoClassifier,
    IndependentLassoRegressor,
    IndependentRidgeClassifier,
    IndependentRidgeRegressor,
    MeanRegularizedMultiTaskClassifier,
    MeanRegularizedMultiTaskRegressor,
)
from manytask.linear._kernel import MultiTaskKernelRidge
from manytask.linear._latent_basis import (
    LatentBasisMultiTaskClassifier,
    LatentBasisMultiTaskRegressor,
)
from manytask.linear._online import MultiTaskPerceptron
from manytask.linear._relationship import (
    RelationshipMultiTaskClassifier,
    RelationshipMultiTaskRegressor,
)
from manytask.linear._shared_hypotheses import SharedHypothesesRegressor
from manytask.linear._solvers import APGResult, accelerated_proximal_gradient

__all__ = [
    "APGResult",
    "AlternatingStructureRegressor",
    "ClusteredMultiTaskClassifier",
    "ClusteredMultiTaskRegressor",
    "DirtyMultiTaskClassifier",
    "DirtyMultiTaskRegressor",
    "GraphRegularizedMultiTaskClassifier",
    "GraphRegularizedMultiTaskRegressor",
    "HierarchicalBayesRegressor",
    "IndependentLassoClassifier",
    "IndependentLassoRegressor",
    "IndependentRidgeClassifier",
    "IndependentRidgeRegressor",
    "InvalidParameterError",
    "L1LqMultiTaskClassifier",
    "L1LqMultiTaskRegressor",
    "L21MultiTaskClassifier",
    "L21MultiTaskRegressor",
    "LatentBasisMultiTaskClassifier",
    "LatentBasisMultiTaskRegressor",
    "LinearMultiTaskClassifier",
    "LinearMultiTaskRegressor",
    "MeanRegularizedMultiTaskClassifier",
    "MeanRegularizedMultiTaskRegressor",
    "MultiTaskGaussianProcess",
    "MultiTaskKernelRidge",
    "MultiTaskPerceptron",
    "RelationshipMultiTaskClassifier",
    "RelationshipMultiTaskRegressor",
    "RobustFeatureMultiTaskClassifier",
    "RobustFeatureMultiTaskRegressor",
    "RobustMultiTaskClassifier",
    "RobustMultiTaskRegressor",
    "SharedHypothesesRegressor",
    "SparseLowRankMultiTaskClassifier",
    "SparseLowRankMultiTaskRegressor",
    "TraceNormMultiTaskClassifier",
    "TraceNormMultiTaskRegressor",
    "accelerated_proximal_gradient",
]
