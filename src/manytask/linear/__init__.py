"""Classic multi-task learning as scikit-learn estimators: the regularised linear family, and task
clustering, shared structure, Bayesian, kernel and online methods.

Every estimator takes the shared-input form ``fit(X, Y)`` with ``Y`` of shape
``(n_samples, n_tasks)`` or the multi-input form ``fit(X, y, task=task)``; linear ones have
``coef_`` of shape ``(n_tasks, n_features)``. In the regularised family ``...Regressor`` classes
use the squared loss and ``...Classifier`` classes the logistic loss, solved by accelerated
proximal gradient with exact proximal operators (see :func:`accelerated_proximal_gradient`);
the others are fitted by their papers' algorithms (docs/linear.md).
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
from manytask.linear._dirichlet import DirichletProcessMultiTaskClassifier
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
from manytask.linear._grouped_features import (
    GroupedFeatureMultiTaskClassifier,
    GroupedFeatureMultiTaskRegressor,
)
from manytask.linear._hierarchical import HierarchicalBayesRegressor, TaskGatingRegressor
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
from manytask.linear._multiplicative import (
    MultiplicativeMultiTaskClassifier,
    MultiplicativeMultiTaskRegressor,
)
from manytask.linear._online import MultiTaskPerceptron
from manytask.linear._relationship import (
    RelationshipMultiTaskClassifier,
    RelationshipMultiTaskRegressor,
)
from manytask.linear._shared_hypotheses import SharedHypothesesRegressor
from manytask.linear._solvers import APGResult, accelerated_proximal_gradient
from manytask.linear._task_clustering import TaskClusteringClassifier
from manytask.linear._vstg import VSTGMultiTaskClassifier, VSTGMultiTaskRegressor

__all__ = [
    "APGResult",
    "AlternatingStructureRegressor",
    "ClusteredMultiTaskClassifier",
    "ClusteredMultiTaskRegressor",
    "DirichletProcessMultiTaskClassifier",
    "DirtyMultiTaskClassifier",
    "DirtyMultiTaskRegressor",
    "GraphRegularizedMultiTaskClassifier",
    "GraphRegularizedMultiTaskRegressor",
    "GroupedFeatureMultiTaskClassifier",
    "GroupedFeatureMultiTaskRegressor",
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
    "MultiplicativeMultiTaskClassifier",
    "MultiplicativeMultiTaskRegressor",
    "RelationshipMultiTaskClassifier",
    "RelationshipMultiTaskRegressor",
    "RobustFeatureMultiTaskClassifier",
    "RobustFeatureMultiTaskRegressor",
    "RobustMultiTaskClassifier",
    "RobustMultiTaskRegressor",
    "SharedHypothesesRegressor",
    "SparseLowRankMultiTaskClassifier",
    "SparseLowRankMultiTaskRegressor",
    "TaskClusteringClassifier",
    "TaskGatingRegressor",
    "TraceNormMultiTaskClassifier",
    "TraceNormMultiTaskRegressor",
    "VSTGMultiTaskClassifier",
    "VSTGMultiTaskRegressor",
    "accelerated_proximal_gradient",
]
