"""Parameter count and training-step time of every registered sharing scheme, relative to hard
sharing, on two backbones (measured in one run, alternating pairs of steps, median ratio).

- MLP 64 -> 256 -> 256, four regression tasks, batch 128;
- the MultiMNIST CNN (two conv blocks and a 50-unit linear stage), two 10-class tasks, batch 64.

Every scheme trains with EW and Adam through ``Trainer._train_step`` (soft sharing with its l2
penalty). Usage: python benchmarks/architectures.py [--steps 10] [--repeats 5] [--threads 1] [--docs]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, pin_malloc, protocol, ratio, write_section  # noqa: E402

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


def step(scheme: str, encoder: Callable[[], torch.nn.Module], x: torch.Tensor, tasks: list[Task],
         targets: dict[str, torch.Tensor], batch: int) -> tuple[Callable[[], object], int]:
    torch.manual_seed(0)
    model = create_model(scheme, encoder=encoder(), tasks=tasks, **({"branch_cost": 0.0} if scheme == "adaptive" else {}))
    if isinstance(model, AdaptiveSharing):  # its largest: every stage split per task
        while model.widen(torch.eye(len(tasks))):
            pass
    balancer = create_balancer("ew", tasks)
    trainer = Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-3),
                      MultiSourceLoader({"train": TensorSource(x, targets)}, batch, seed=0), steps=10**9,
                      progress=False)
    return trainer._train_step, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="pairs of steps timed = steps x repeats")
    parser.add_argument("--repeats", type=int, default=5, help="pairs of steps timed = steps x repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--docs", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pin_malloc()
    lines = ["| backbone | scheme | parameters / hps | step time / hps |", "|---|---|---:|---:|"]
    for label, (encoder, x, tasks, targets, batch) in backbones().items():
        hard, hard_params = step("hps", encoder, x, tasks, targets, batch)
        for scheme in MODELS.names():
            ours, params = step(scheme, encoder, x, tasks, targets, batch)
            value = ratio(ours, hard, args.steps, args.repeats, warmup=2)
            lines.append(f"| {label} | `{scheme}` | {params / hard_params:.2f} | {value:.2f} |")
            print(lines[-1], flush=True)
    if args.docs:
        write_section("architectures", "\n".join([
            "## Sharing schemes: size and step time against hard sharing",
            "",
            f"Command: `python benchmarks/architectures.py --docs --threads {args.threads}` "
            f"({protocol(args.steps, args.repeats, 2)}; {environment()}). Each scheme with its "
            "defaults (`mmoe`: 4 experts; `soft`: l2; `dmtrl`: full ranks; `adaptive`: after every stage has "
            "split per task, its largest — before the first round it is `hps`), EW, Adam; `Trainer._train_step` "
            "timed. On an MLP, MTAN's two attention layers per stage and task are as large as the trunk's "
            "layers (on convolutional maps they are 1×1 against the trunk's 5×5).",
            "",
            *lines,
        ]))


if __name__ == "__main__":
    main()
