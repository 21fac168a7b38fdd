"""Dataset loaders, registered by name in :data:`manytask.data.DATASETS` when imported.

Each loader reads ``<root>/<folder>/`` (``root`` option, else ``$MANYTASK_DATA``, else
``./data``), verifies the files' SHA-256, and fetches missing files only with
``download=True``. See ``docs/datasets.md``.
"""

from ._census_income import census_income
from ._coloured_mnist import coloured_mnist
from ._conll2000 import conll2000
from ._download import ChecksumError, DownloadError, download
from ._files import DataFile, DataFormatError, MissingDataError, sha256_of
from ._huggingface import from_hf_dataset, huggingface
from ._mnist_domains import mnist_domains
from ._mnist_usps_pca import mnist_usps_pca
from ._multimnist import make_multimnist, multimnist
from ._sarcos import sarcos
from ._school_dataset import school
from ._table import TableError, read_table, table

__all__ = [
    "ChecksumError",
    "DataFile",
    "DataFormatError",
    "DownloadError",
    "MissingDataError",
    "TableError",
    "census_income",
    "coloured_mnist",
    "from_hf_dataset",
    "huggingface",
    "conll2000",
    "download",
    "make_multimnist",
    "mnist_domains",
    "mnist_usps_pca",
    "multimnist",
    "read_table",
    "sarcos",
    "school",
    "sha256_of",
    "table",
]
