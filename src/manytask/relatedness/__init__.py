"""Which tasks help which: gradient diagnostics and lookahead affinity while training, transfer
gains from pair runs, and the grouping of tasks they recommend."""

from ._affinity import TaskAffinity
from ._grouping import best_groups, group_value
from ._matrix import TaskMatrix, load_matrices
from ._models import correlation_matrix, parameter_cosine, representation_similarity

__all__ = ["TaskAffinity", "TaskMatrix", "best_groups", "correlation_matrix", "group_value", "load_matrices",
           "parameter_cosine", "representation_similarity"]
