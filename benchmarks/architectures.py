"""Parameter count and training-step time of every registered sharing scheme, relative to hard
sharing, on two backbones (measured in one run, alternating pairs of steps, median ratio); and
what exact MGDA costs on each scheme against EW on the same scheme (time, peak memory), with the
route its Gramian takes (the linear-layer engine, torchjd's autogram or the Jacobian).

- MLP 64 -> 256 -> 256, four regression tasks, batch 128;
- the MultiMNIST CNN (two conv blocks and a 50-unit linear stage), two 10-class tasks, batch 64.

Every scheme trains with Adam through ``Trainer._train_step`` (soft sharing with its l2 penalty).
Usage: python benchmarks/architectures.py [--steps 10] [--repeats 5] [--threads 1] [--docs]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, pin_malloc, protocol, ratio, write_section  # noqa: E402
from balancing_cost import peak_bytes  # noqa: E402

from manytask.balancing import create_balancer  # noqa: E402
from manytask.data import MultiSourceLoader, TensorSource  # noqa: E402
from manytask.models import MODELS, AdaptiveSharing, create_encoder, create_model  # noqa: E402
from manytask.tasks import Classification, Regression, Task  # noqa: E402
from manytask.training import Trainer, build_optimizer  # noqa: E402

N = 2048


def backbones() -> dict[str, tuple[Callable[[], torch.nn.Module], torch.Tensor, list[Task], dict[str, torch.Tensor], int]]:
    torch.manual_seed(0)
    x = torch.randn(N, 64)
    images = torch.randn(N, 1, 28, 28)
    return {
        "MLP 64→256→256, T = 4, batch 128": (
            lambda: create_encoder("mlp", in_features=64, hidden=[256, 256]), x,
            [Regression(f"t{i}") for i in range(4)], {f"t{i}": x[:, i].clone() for i in range(4)}, 128),
        "MultiMNIST CNN, T = 2, batch 64": (
            lambda: create_encoder("cnn", out_features=50), images,
            [Classification("left", num_classes=10), Classification("right", num_classes=10)],
            {"left": torch.randint(0, 10, (N,)), "right": torch.randint(0, 10, (N,))}, 64),
    }


def trainer(scheme: str, encoder: Callable[[], torch.nn.Module], x: torch.Tensor, tasks: list[Task],
            targets: dict[str, torch.Tensor], batch: int, method: str = "ew", split: str = "all") -> Trainer:
    """A trainer of ``scheme`` with ``method`` (exact level for a gradient method); adaptive
    sharing after every stage has split per task (``split="all"``: its largest) or after one
    round that splits its last stage into two groups of tasks (``"last"``: shared nodes left)."""
    torch.manual_seed(0)
    model = create_model(scheme, encoder=encoder(), tasks=tasks, **({"branch_cost": 0.0} if scheme == "adaptive" else {}))
    if isinstance(model, AdaptiveSharing):
        if split == "all":
            while model.widen(torch.eye(len(tasks))):
                pass
        else:  # tasks 0..T/2-1 apart from the others
            half = torch.arange(len(tasks)) < max(1, len(tasks) // 2)
            model.branch_cost = 0.5
            model.widen((half[:, None] == half[None, :]).double())
    balancer = create_balancer(method, tasks, **({} if method == "ew" else {"level": "exact"}))
    return Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-3),
                   MultiSourceLoader({"train": TensorSource(x, targets)}, batch, seed=0), steps=10**9,
                   progress=False)


def route(trainer: Trainer) -> str:
    """How the exact Gramian was computed on the trainer's last step."""
    engine = trainer.engine
    if engine.linear_gramian is not None:
        return "linear layers"
    return "autogram" if engine.gramian_engine is not None else "Jacobian"


def mgda_cells(scheme: str, *spec: Any, steps: int, repeats: int) -> str:
    """``| exact MGDA / EW | memory / EW | route |`` on ``scheme`` (adaptive: its last stage split
    in two), or dashes where the scheme shares no parameter."""
    ew = trainer(scheme, *spec, split="last")
    if not any(p.requires_grad for p in ew.model.shared_parameters()):
        return "| – | – | nothing shared |"
    mgda = trainer(scheme, *spec, method="mgda", split="last")
    value = ratio(mgda._train_step, ew._train_step, steps, repeats, warmup=2)
    memory = (peak_bytes(lambda: trainer(scheme, *spec, method="mgda", split="last")._train_step, "cpu")
              / peak_bytes(lambda: trainer(scheme, *spec, split="last")._train_step, "cpu"))
    return f"| {value:.2f} | {memory:.2f} | {route(mgda)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="pairs of steps timed = steps x repeats")
    parser.add_argument("--repeats", type=int, default=5, help="pairs of steps timed = steps x repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--docs", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pin_malloc()
    lines = ["| backbone | scheme | parameters / hps | step time / hps | exact MGDA time / EW | exact MGDA "
             "memory / EW | exact MGDA's Gramian |", "|---|---|---:|---:|---:|---:|---|"]
    for label, spec in backbones().items():
        hard = trainer("hps", *spec)
        hard_params = sum(p.numel() for p in hard.model.parameters())
        for scheme in MODELS.names():
            ours = trainer(scheme, *spec)
            params = sum(p.numel() for p in ours.model.parameters())
            value = ratio(ours._train_step, hard._train_step, args.steps, args.repeats, warmup=2)
            mgda = mgda_cells(scheme, *spec, steps=args.steps, repeats=args.repeats)
            lines.append(f"| {label} | `{scheme}` | {params / hard_params:.2f} | {value:.2f} {mgda}")
            print(lines[-1], flush=True)
    if args.docs:
        write_section("architectures", "\n".join([
            "## Sharing schemes: size and step time against hard sharing; exact MGDA on each",
            "",
            f"Command: `python benchmarks/architectures.py --docs --threads {args.threads}` "
            f"({protocol(args.steps, args.repeats, 2)}; {environment()}). Each scheme with its "
            "defaults (`mmoe`: 4 experts; `soft`: l2; `dmtrl`: full ranks; `adaptive`: after every stage has "
            "split per task, its largest — before the first round it is `hps`), EW, Adam; `Trainer._train_step` "
            "timed. On an MLP, MTAN's two attention layers per stage and task are as large as the trunk's "
            "layers (on convolutional maps they are 1×1 against the trunk's 5×5). The last three columns: "
            "exact MGDA against EW on the same scheme (`adaptive` here after one round that splits its last "
            "stage into two groups of tasks, so that shared nodes are left), time and peak memory of live "
            "tensors through 2 steps (torch.profiler's allocation events), and how its Gramian was computed "
            "(docs/balancing.md: the linear-layer engine, torchjd's autogram, else the `T × P` Jacobian).",
            "",
            *lines,
        ]))


if __name__ == "__main__":
    main()
