"""A balancer's T×T solve runs with NumPy/SciPy's BLAS on one thread, whatever the process's
setting: a multi-threaded BLAS pool competing with PyTorch's spinning threads made a 32×32
``eigh`` take 11-16 ms instead of 0.1 ms on a busy machine."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits
from torch import Tensor

from manytask.balancing import MGDA
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MLP, create_model
from manytask.tasks import Classification, Regression
from manytask.training import Trainer, build_optimizer


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


class ThreadsSeen(MGDA):
    """MGDA that notes the BLAS libraries' thread counts while it solves."""

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        self.seen.append(blas_threads())
        return super().gramian_weights(gramian, losses, present, step=step)


@pytest.mark.parametrize(("scheme", "level"), [("hps", "exact"), ("hps", "representation"),
                                               ("cross_stitch", "exact")])
def test_the_solve_runs_on_one_blas_thread_and_the_setting_comes_back(scheme: str, level: str) -> None:
    torch.manual_seed(0)
    tasks = [Regression("a"), Classification("b", num_classes=3), Regression("c")]
    x = torch.randn(64, 6)
    data = TensorSource(x, {"a": x[:, 0], "b": torch.randint(0, 3, (64,)), "c": x[:, 1]})
    model = create_model(scheme, encoder=MLP(6, (8, 8)), tasks=tasks)
    balancer = ThreadsSeen(tasks, level=level)
    balancer.seen = []
    trainer = Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-3),
                      MultiSourceLoader({"train": data}, 16, seed=0), steps=3, progress=False)
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        trainer.fit()
        after = blas_threads()
    assert len(balancer.seen) == 3
    assert all(counts and set(counts) == {1} for counts in balancer.seen), balancer.seen
    assert 2 in before and after == before
