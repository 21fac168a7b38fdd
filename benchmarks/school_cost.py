"""Step time of gradient methods on School's 139 tasks, as ratios to EW measured in one run.

The School catalogue's model (an MLP 28 -> 64 trunk, one linear head per school, batch 256, Argyriou
split 1, raw scores), each method's ``Trainer._train_step`` timed against EW's in alternating pairs
of single steps, the median of the pairs' ratios reported. Issue 10's goals: PCGrad <= 2x EW at the
representation level and <= 4x exact (it was 11x). Then EW against EW without each of the
many-task optimisations: the grouped heads, the stacked targets, the batched losses, and the
blocks read back by those losses (``Columns``).

Usage: python benchmarks/school_cost.py [--steps 20] [--repeats 7] [--threads 1] [--docs]
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, pin_malloc, protocol, ratio, write_section  # noqa: E402

from manytask.config import parse_config  # noqa: E402
from manytask.data import _source  # noqa: E402
from manytask.models import _hard_sharing  # noqa: E402
from manytask.runs import build_experiment  # noqa: E402
from manytask.tasks import _batched, _columns  # noqa: E402

SUITE = Path(__file__).resolve().parent / "school_catalogue.yaml"
METHODS: dict[str, dict[str, Any]] = {
    "PCGrad (representation)": {"name": "pcgrad", "level": "representation"},
    "PCGrad (exact)": {"name": "pcgrad", "level": "exact"},
    "MGDA-UB (representation)": {"name": "mgda", "level": "representation"},
    "MGDA (exact)": {"name": "mgda", "level": "exact"},
    "UPGrad (exact)": {"name": "upgrad"},
}
GOALS = {"PCGrad (representation)": 2.0, "PCGrad (exact)": 4.0}


def train_step(balancer: dict[str, Any]) -> Callable[[], object]:
    """One training step of the School catalogue's model with ``balancer`` (run from the repository root)."""
    config = copy.deepcopy(yaml.safe_load(SUITE.read_text())["base"])
    config["data"].update({"protocol": "argyriou", "split": 1})
    config["balancer"] = balancer
    config["training"]["progress"] = False
    return build_experiment(parse_config(config), run_dir=None).trainer._train_step


def without(owner: object, name: str, steps: int, repeats: int, value: object = 10**9) -> float:
    """EW's step as shipped against the same step with ``owner.name`` set to ``value`` (by
    default a size threshold out of reach): the optimisation it gates, measured on its own."""
    shipped = train_step({"name": "ew"})
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        unoptimised = train_step({"name": "ew"})  # built without it (targets are stacked at build)

        def step() -> object:
            setattr(owner, name, value)
            try:
                return unoptimised()
            finally:
                setattr(owner, name, saved)
    finally:
        setattr(owner, name, saved)
    return ratio(shipped, step, steps, repeats, warmup=3)


def grouped_heads_ratio(steps: int, repeats: int) -> float:
    """The 139 identical linear heads as one matmul (``HardSharing``, from ``GROUP_AT`` tasks on)
    against one call per head."""
    return without(_hard_sharing, "GROUP_AT", steps, repeats)


def stacked_targets_ratio(steps: int, repeats: int) -> float:
    """The schools' targets and masks stored as one block (``TensorSource``, from ``STACK_AT``
    tasks on) against one tensor per task."""
    return without(_source, "STACK_AT", steps, repeats)


def batched_losses_ratio(steps: int, repeats: int) -> float:
    """The schools' losses from one batched call (``loss_terms_of``, from ``STACK_AT`` tasks of one
    kind on) against one loss call per task."""
    return without(_batched, "STACK_AT", steps, repeats)


def block_reads_ratio(steps: int, repeats: int) -> float:
    """The schools' targets, masks and outputs read back off their blocks by the batched losses
    (``Columns``) against stacked again from their columns."""
    return without(_columns.Columns, "block_of", steps, repeats, value=lambda self, names: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="pairs of steps timed = steps x repeats")
    parser.add_argument("--repeats", type=int, default=7, help="pairs of steps timed = steps x repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--docs", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pin_malloc()
    lines = ["| method | step time / EW | goal |", "|---|---:|---|"]
    for label, options in METHODS.items():
        # a fresh EW beside each method: both draw the same batches in step (a step's cost follows
        # how many schools its batch holds, so one EW run ahead would compare other batches)
        value = ratio(train_step(options), train_step({"name": "ew"}), args.steps, args.repeats, warmup=3)
        goal = GOALS.get(label)
        mark = "–" if goal is None else f"≤ {goal:g} {'✓' if value <= goal else '✗'}"
        lines.append(f"| {label} | {value:.2f} | {mark} |")
        print(lines[-1], flush=True)
    grouped = grouped_heads_ratio(args.steps, args.repeats)
    lines.append(f"| EW, the 139 heads as one matmul / one call per head | {grouped:.2f} | – |")
    stacked = stacked_targets_ratio(args.steps, args.repeats)
    lines.append(f"| EW, the 139 schools' targets and masks as one block / one tensor per task | {stacked:.2f} | – |")
    batched = batched_losses_ratio(args.steps, args.repeats)
    lines.append(f"| EW, the present schools' losses from one batched call / one call per task | {batched:.2f} | – |")
    reads = block_reads_ratio(args.steps, args.repeats)
    lines.append(f"| EW, those losses' targets, masks and outputs read off their blocks / stacked again | {reads:.2f} | – |")
    print(*lines[-4:], sep="\n", flush=True)
    if args.docs:
        env = environment()
        write_section("school-cost", "\n".join([
            "## Cost of gradient methods on School (139 tasks)",
            "",
            f"Command: `python benchmarks/school_cost.py --docs` ({protocol(args.steps, args.repeats, 3)}; "
            f"{env}). The School catalogue's model and batch (MLP 28→64, "
            "139 linear heads, batch 256, Argyriou split 1); ratios of seconds per training step to EW's "
            "in the same run.",
            "",
            *lines,
        ]))


if __name__ == "__main__":
    main()
