"""Cost of a manytask training step, measured as ratios in one run.

1. manytask step (hard sharing, EW, through ``Trainer``) / a hand-written PyTorch step on the same
   model, batch size and data, with the same fused Adam (goal <= 1.03) and with Adam's defaults.
2. exact MGDA and representation-level MGDA / EW, for T = 2, 8 and 32 tasks.

Usage: python benchmarks/overhead.py [--json FILE] [--docs]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, pin_malloc, protocol, ratio, write_section  # noqa: E402

from manytask.balancing import create_balancer  # noqa: E402
from manytask.data import MultiSourceLoader, TensorSource  # noqa: E402
from manytask.models import MLP, HardSharing  # noqa: E402
from manytask.tasks import BinaryClassification, Classification, Regression  # noqa: E402
from manytask.training import Trainer, build_optimizer  # noqa: E402

N = 4096


def step_vs_plain(in_features: int, hidden: tuple[int, ...], batch: int, steps: int, repeats: int,
                  fused: bool = True) -> float:
    """manytask's step / a hand-written step; ``fused``: the hand loop uses the same fused Adam
    as manytask (the machinery's overhead alone), else ``torch.optim.Adam``'s defaults."""
    torch.manual_seed(0)
    x = torch.randn(N, in_features)
    targets = {"cls": torch.randint(0, 10, (N,)), "reg": torch.randn(N), "bin": torch.randint(0, 2, (N,)).float()}
    tasks = [Classification("cls", num_classes=10), Regression("reg"), BinaryClassification("bin", metrics=("accuracy",))]

    # manytask
    model = HardSharing(MLP(in_features, hidden), tasks)
    balancer = create_balancer("ew", tasks)
    trainer = Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-3),
                      MultiSourceLoader({"train": TensorSource(x, targets)}, batch, seed=0),
                      steps=10**9, progress=False)

    # hand-written PyTorch: same architecture, same data access pattern, same losses
    torch.manual_seed(0)
    encoder = nn.Sequential(*[m for m in MLP(in_features, hidden).modules() if isinstance(m, (nn.Linear, nn.ReLU))])
    heads = nn.ModuleDict({"cls": nn.Linear(hidden[-1], 10), "reg": nn.Linear(hidden[-1], 1), "bin": nn.Linear(hidden[-1], 1)})
    params = [*encoder.parameters(), *heads.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3, fused=fused)
    generator = torch.Generator().manual_seed(0)
    state = {"order": torch.randperm(N, generator=generator), "pos": 0}

    def plain() -> None:
        if state["pos"] >= N:
            state["order"], state["pos"] = torch.randperm(N, generator=generator), 0
        idx = state["order"][state["pos"] : state["pos"] + batch]
        state["pos"] += batch
        xb = x[idx]
        optimizer.zero_grad(set_to_none=True)
        z = encoder(xb)
        loss = (F.cross_entropy(heads["cls"](z), targets["cls"][idx])
                + F.mse_loss(heads["reg"](z).squeeze(1), targets["reg"][idx])
                + F.binary_cross_entropy_with_logits(heads["bin"](z).squeeze(1), targets["bin"][idx]))
        loss.backward()
        optimizer.step()

    return ratio(trainer._train_step, plain, steps, repeats, warmup=steps)


def balancer_vs_ew(num_tasks: int, steps: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    in_features, batch = 64, 128
    x = torch.randn(N, in_features)
    w = torch.randn(num_tasks, in_features)
    targets = {f"t{i}": x @ w[i] for i in range(num_tasks)}
    tasks = [Regression(f"t{i}", metrics=("rmse",)) for i in range(num_tasks)]

    def make(name: str, **options: str) -> Callable[[], None]:
        torch.manual_seed(0)
        model = HardSharing(MLP(in_features, (256, 256)), tasks)
        balancer = create_balancer(name, tasks, **options)
        trainer = Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-3),
                          MultiSourceLoader({"train": TensorSource(x, targets)}, batch, seed=0),
                          steps=10**9, progress=False)
        return trainer._train_step

    ew = make("ew")
    return {
        "exact": ratio(make("mgda", level="exact"), ew, steps, repeats, warmup=steps),
        "representation": ratio(make("mgda", level="representation"), ew, steps, repeats, warmup=steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--docs", action="store_true", help="write the table to docs/benchmarks.md")
    parser.add_argument("--steps", type=int, default=20, help="warm-up steps of each; pairs timed = steps x repeats")
    parser.add_argument("--repeats", type=int, default=15, help="pairs of steps timed = steps x repeats")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pin_malloc()

    figures: dict[str, float] = {}
    figures["hps_ew_vs_plain_step"] = step_vs_plain(256, (512, 512), 256, args.steps, args.repeats)
    figures["hps_ew_vs_default_adam_step"] = step_vs_plain(256, (512, 512), 256, args.steps, args.repeats, fused=False)
    figures["hps_ew_vs_plain_step_tiny_model"] = step_vs_plain(20, (32,), 32, args.steps * 4, args.repeats)
    for t in (2, 8, 32):
        for level, value in balancer_vs_ew(t, args.steps, args.repeats).items():
            figures[f"mgda_{level}_vs_ew_T{t}"] = value

    lines = [
        "| measurement | ratio |",
        "|---|---:|",
        f"| manytask step (HPS, EW) / hand-written PyTorch step with the same fused Adam — MLP 256→512→512, batch 256, 3 tasks | {figures['hps_ew_vs_plain_step']:.3f} |",
        f"| same, hand-written step with `torch.optim.Adam` defaults (manytask uses the fused kernel) | {figures['hps_ew_vs_default_adam_step']:.3f} |",
        f"| same, tiny model — MLP 20→32, batch 32 (per-step Python overhead dominates; 4× the pairs) | {figures['hps_ew_vs_plain_step_tiny_model']:.3f} |",
    ]
    for t in (2, 8, 32):
        lines.append(f"| MGDA exact / EW, T = {t} (MLP 64→256→256, batch 128) | {figures[f'mgda_exact_vs_ew_T{t}']:.2f} |")
        lines.append(f"| MGDA representation-level / EW, T = {t} | {figures[f'mgda_representation_vs_ew_T{t}']:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.docs:
        env = environment()
        write_section("overhead", "\n".join([
            "## Cost per training step",
            "",
            f"Command: `python benchmarks/overhead.py --docs --threads {args.threads}` "
            f"({protocol(args.steps, args.repeats, args.steps)}; {env}).",
            "Ratios of time per step measured in the same run; no absolute times.",
            "",
            table,
        ]))


if __name__ == "__main__":
    main()
