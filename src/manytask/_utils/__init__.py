"""Small internal helpers shared by several subpackages: one helper per job."""

from ._atomic import atomic_path, atomic_write
from ._blas import one_blas_thread
from ._data_root import DEFAULT_DATA_ROOT, data_root
from ._index import index_tensor
from ._markdown import write_section
from ._splits import split_groups, split_indices
from ._strict import StrictModel
from ._suggest import did_you_mean
from ._table_io import TableError, read_table
from ._validation import validation_messages
from ._yaml import load_yaml

__all__ = [
    "DEFAULT_DATA_ROOT",
    "StrictModel",
    "TableError",
    "atomic_path",
    "atomic_write",
    "data_root",
    "did_you_mean",
    "index_tensor",
    "load_yaml",
    "one_blas_thread",
    "read_table",
    "split_groups",
    "split_indices",
    "validation_messages",
    "write_section",
]
