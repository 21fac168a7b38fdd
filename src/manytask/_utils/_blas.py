"""NumPy and SciPy's BLAS on one thread for the small dense solves of a training step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]

_blas: list[Any] | None = None  # threadpoolctl's controller of each BLAS library


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with NumPy/SciPy's BLAS and LAPACK limited to one thread.

    A balancer's T×T solve (an ``eigh`` of a 32×32 Gramian takes 0.1 ms) gains nothing from
    threads, and its BLAS's own thread pool competes with PyTorch's OpenMP threads, which spin
    after each operation, and with other processes: on a 2-core machine with the other core busy,
    one such ``eigh`` between two PyTorch matmuls took 11-16 ms instead of 0.1 ms. The libraries
    are found once, at the first call (by then the solvers have imported NumPy and SciPy); each
    call reads their thread counts and changes (and afterwards restores) only those that are not
    1 already: about 2 µs, where threadpoolctl's ``limit`` takes 16.
    """
    global _blas
    if _blas is None:
        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    changed = [(lib, n) for lib in _blas if (n := lib.get_num_threads()) is not None and n != 1]
    for lib, _ in changed:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)
