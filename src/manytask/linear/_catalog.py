"""Short names of the linear MTL estimators (used by configs, the CLI and the benchmarks)."""

from __future__ import annotations

from typing import Any

from manytask._registry import Registry
from manytask.linear._aso import AlternatingStructureRegressor
from manytask.linear._base import LinearMultiTaskClassifier, LinearMultiTaskRegressor
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
from manytask.linear._task_clustering import TaskClusteringClassifier
from manytask.linear._vstg import VSTGMultiTaskClassifier, VSTGMultiTaskRegressor

__all__ = ["CLASSIFIERS", "LINEAR", "REGRESSORS"]

#: short name -> (least-squares class, logistic class)
_PAIRS: dict[str, tuple[type[LinearMultiTaskRegressor], type[LinearMultiTaskClassifier]]] = {
    "ridge": (IndependentRidgeRegressor, IndependentRidgeClassifier),
    "lasso": (IndependentLassoRegressor, IndependentLassoClassifier),
    "mean_regularized": (MeanRegularizedMultiTaskRegressor, MeanRegularizedMultiTaskClassifier),
    "l21": (L21MultiTaskRegressor, L21MultiTaskClassifier),
    "l1lq": (L1LqMultiTaskRegressor, L1LqMultiTaskClassifier),
    "trace": (TraceNormMultiTaskRegressor, TraceNormMultiTaskClassifier),
    "dirty": (DirtyMultiTaskRegressor, DirtyMultiTaskClassifier),
    "sparse_low_rank": (SparseLowRankMultiTaskRegressor, SparseLowRankMultiTaskClassifier),
    "rmtl": (RobustMultiTaskRegressor, RobustMultiTaskClassifier),
    "rmtfl": (RobustFeatureMultiTaskRegressor, RobustFeatureMultiTaskClassifier),
    "cmtl": (ClusteredMultiTaskRegressor, ClusteredMultiTaskClassifier),
    "mtrl": (RelationshipMultiTaskRegressor, RelationshipMultiTaskClassifier),
    "srmtl": (GraphRegularizedMultiTaskRegressor, GraphRegularizedMultiTaskClassifier),
    "gomtl": (LatentBasisMultiTaskRegressor, LatentBasisMultiTaskClassifier),
    "mmtfl": (MultiplicativeMultiTaskRegressor, MultiplicativeMultiTaskClassifier),
    "vstg": (VSTGMultiTaskRegressor, VSTGMultiTaskClassifier),
    "group_mtfl": (GroupedFeatureMultiTaskRegressor, GroupedFeatureMultiTaskClassifier),
}

REGRESSORS: Registry[LinearMultiTaskRegressor] = Registry("linear MTL regressor")
CLASSIFIERS: Registry[LinearMultiTaskClassifier] = Registry("linear MTL classifier")
#: Every estimator by short name, for ``manytask list linear`` and ``explain``.
LINEAR: Registry[Any] = Registry("linear MTL estimator")


def _summary(kind: type) -> str:
    return (kind.__doc__ or "").strip().splitlines()[0].replace("``", "")


for _name, (_reg, _clf) in _PAIRS.items():
    _details = {"classes": f"{_reg.__name__} (squared loss), {_clf.__name__} (logistic loss)"}
    REGRESSORS.register(_name, _summary(_reg), _details)(_reg)
    CLASSIFIERS.register(_name, _summary(_reg), _details)(_clf)
    LINEAR.register(_name, _summary(_reg), _details)(_reg)
# Estimators with one loss only: a kernel machine, ASO, a GP, shared hypotheses, hierarchical Bayes
# and task gating (regression); an online classifier, task clustering by nearest neighbour, a
# Dirichlet-process prior over logistic tasks.
for _name, _kind, _registry, _loss in (("kernel_mtl", MultiTaskKernelRidge, REGRESSORS, "squared loss"),
                                       ("aso", AlternatingStructureRegressor, REGRESSORS, "squared loss"),
                                       ("mtgp", MultiTaskGaussianProcess, REGRESSORS, "Gaussian likelihood"),
                                       ("shared_hypotheses", SharedHypothesesRegressor, REGRESSORS, "squared loss"),
                                       ("hierarchical_bayes", HierarchicalBayesRegressor, REGRESSORS, "Gaussian"),
                                       ("task_gating", TaskGatingRegressor, REGRESSORS, "Gaussian"),
                                       ("tc", TaskClusteringClassifier, CLASSIFIERS, "binary, nearest neighbour"),
                                       ("dp_mtl", DirichletProcessMultiTaskClassifier, CLASSIFIERS,
                                        "logistic, variational Bayes"),
                                       ("perceptron_mtl", MultiTaskPerceptron, CLASSIFIERS, "binary, online")):
    _details = {"classes": f"{_kind.__name__} ({_loss})"}
    _registry.register(_name, _summary(_kind), _details)(_kind)
    LINEAR.register(_name, _summary(_kind), _details)(_kind)
