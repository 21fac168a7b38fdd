"""Data parallelism on CPU: a training step on 2 gloo ranks (each its half of the global batch)
against one process on the whole batch, and what each rank all-reduces per step, per balancing
mode. Measured in one run: MLP 64 -> 256 -> 256, four regression tasks, global batch 512, Adam.

Usage: python benchmarks/distributed.py [--steps 30] [--docs]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, write_section  # noqa: E402

from manytask.balancing import create_balancer  # noqa: E402
from manytask.data import MultiSourceLoader, TensorSource  # noqa: E402
from manytask.models import MLP, create_model  # noqa: E402
from manytask.tasks import Regression  # noqa: E402
from manytask.training import Ranks, Trainer, build_optimizer  # noqa: E402

MODES: list[tuple[str, str, dict[str, Any]]] = [
    ("EW (loss level)", "ew", {}),
    ("MGDA, representation level", "mgda", {"level": "representation"}),
    ("MGDA, exact", "mgda", {"level": "exact"}),
    ("PCGrad, exact", "pcgrad", {"level": "exact"}),
]
BATCH, T = 512, 4


def _trainer(method: str, options: dict[str, Any], ranks: Ranks | None) -> Trainer:
    torch.manual_seed(0)
    x = torch.randn(8192, 64)
    tasks = [Regression(f"t{i}") for i in range(T)]
    model = create_model("hps", encoder=MLP(64, (256, 256)), tasks=tasks)
    balancer = create_balancer(method, tasks, **options)
    loader = MultiSourceLoader({"x": TensorSource(x, {f"t{i}": x[:, i].clone() for i in range(T)})}, BATCH, seed=0,
                               shard=(ranks.rank, ranks.world) if ranks is not None else None)
    return Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-3), loader, 10**9,
                   progress=False, ranks=ranks)


def _measure(trainer: Trainer, steps: int) -> float:
    for _ in range(3):
        trainer._train_step()
    times = []
    for _ in range(steps):
        if trainer.ranks is not None:
            dist.barrier()
        start = time.perf_counter()
        trainer._train_step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rank(rank: int, port: int, steps: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    results = {}
    for label, method, options in MODES:
        ranks = Ranks(rank, 2)
        trainer = _trainer(method, options, ranks)
        seconds = _measure(trainer, steps)
        before = ranks.reduced_bytes
        trainer._train_step()
        results[label] = (seconds, ranks.reduced_bytes - before)
    if rank == 0:
        torch.save(results, Path(out) / "two.pt")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--docs", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.start_processes(_rank, args=(port, args.steps, out), nprocs=2, start_method="spawn")
        two = torch.load(Path(out) / "two.pt")
    load = os.getloadavg()[0]  # other work on the machine skews the step times (not the bytes)
    parameters = sum(p.numel() for p in _trainer("ew", {}, None).model.parameters())
    lines = ["| balancing | 1 process (ms) | 2 ranks (ms) | 2 ranks / 1 | all-reduced per step and rank |",
             "|---|---|---|---|---|"]
    for label, method, options in MODES:
        one = _measure(_trainer(method, options, None), args.steps)
        seconds, sent = two[label]
        lines.append(f"| {label} | {one * 1e3:.2f} | {seconds * 1e3:.2f} | {seconds / one:.2f} | "
                     f"{sent / 1024:.0f} KiB ({sent / 4 / parameters:.1f} × the {parameters:,} parameters) |")
    text = "\n".join([
        "## Data parallelism on CPU (gloo)", "",
        f"Command: `python benchmarks/distributed.py --steps {args.steps}` ({environment()}; each rank one "
        f"thread; {os.cpu_count()} CPU cores, load average {load:.1f} when it ran). MLP 64 → 256 → 256, four regression tasks, global batch 512 (256 a rank), Adam; median step "
        "time over the steps, after 3 warm-up steps. 'All-reduced' is the payload one rank sums with the "
        "other per step (float32), measured by `Ranks.reduced_bytes`: loss sums and counts, the gradients "
        "(and a has-gradient flag per tensor), and for gradient methods the representation Gramian "
        "(T × T) or, at the exact level, the per-task gradients of the shared parameters (T × P).", "",
        *lines, ""])
    print(text)
    if args.docs:
        write_section("distributed", text, Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
