"""Cost of every registered balancer per training step, as ratios to EW (issue 10's cost table).

Same model and data for every method: ``HardSharing(MLP(64, (256, 256)), tasks)``, batch 128, T regression
tasks ``t0..`` with linear targets, fused Adam; a step is ``Trainer._train_step``. Each method is built with
its registry example options (task-keyed ones cycled over ``t0..``), once per level when it has several.

- Time: pairs of one step of the method and one of EW, which runs first alternating from pair to pair;
  the median (JSON: also the min) of the pairs' ratios of seconds per step. "naive" is LibMTL's way:
  T ``torch.autograd.grad(loss_i, shared, retain_graph=True)``, MGDA (the same ``min_norm_weights``) on
  the stacked gradients, one heads backward.
- Memory: peak bytes of live tensors from building model, optimizer and balancer through 2 steps (the
  dataset is made before and excluded), over EW's. CPU: torch.profiler's allocation events
  (``profile_memory=True``; each carries the CPU allocator's running total since profiling began); CUDA:
  ``max_memory_allocated``. Not the process RSS, which counts Python, libraries and blocks malloc keeps.
- Budget: a cell whose first step x steps x repeats exceeds ``--budget`` seconds (or whose first step alone
  does, stopped by SIGALRM) is cut, and so is that method at every larger T; failures are reported too.

Goals (issue 10): loss level <= 1.05x EW; representation level <= 1.2x EW at T = 32; exact Gramian <= 2x
EW at T = 8, <= 3x at T = 32 and <= 0.5x the naive reference at T >= 8.

Usage: python benchmarks/balancing_cost.py [--tasks 2,8,32,128] [--methods mgda,pcgrad:exact] [--threads 1]
       [--budget 120] [--no-memory] [--device cpu] [--quick] [--json FILE] [--docs]
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, paired, pin_malloc, protocol, write_section  # noqa: E402

from manytask._utils import one_blas_thread  # noqa: E402
from manytask.balancing import BALANCERS, balancer_info, create_balancer, min_norm_weights  # noqa: E402
from manytask.data import MultiSourceLoader, TensorSource  # noqa: E402
from manytask.models import MLP, HardSharing  # noqa: E402
from manytask.tasks import Regression  # noqa: E402
from manytask.training import Trainer, build_optimizer  # noqa: E402

N, IN, HIDDEN, BATCH = 4096, 64, (256, 256), 128
Method = tuple[str, str | None]  # (registry name, level or None)
Step = Callable[[], object]


def methods(selected: list[str] | None) -> list[Method]:
    """Every registered balancer (or ``selected``: ``name`` or ``name:level``), once per level."""
    out: list[Method] = []
    for name in BALANCERS.names() if selected is None else [s.split(":")[0] for s in selected]:
        levels: list[str | None] = list(balancer_info(name).levels)
        wanted: list[str | None] = [s.split(":")[1] for s in selected or [] if s.startswith(name + ":")]
        out += [(name, lv) for lv in (wanted or (levels if len(levels) > 1 else [None]))]
    return list(dict.fromkeys(out))


def label(method: Method) -> str:
    return f"{method[0]} ({method[1]})" if method[1] else method[0]


def options(name: str, level: str | None, names: list[str]) -> dict[str, Any]:
    """The registry's example options; a mapping keyed by the example tasks a, b, c is cycled over ``names``."""
    out: dict[str, Any] = {}
    for key, value in balancer_info(name).example.items():
        if isinstance(value, Mapping) and set(value) <= {"a", "b", "c"}:
            values = list(value.values())
            value = {n: values[i % len(values)] for i, n in enumerate(names)}
        out[key] = value
    return out | ({"level": level} if level else {})


def setup(num_tasks: int) -> tuple[list[Regression], TensorSource]:
    torch.manual_seed(0)
    x, w = torch.randn(N, IN), torch.randn(num_tasks, IN)
    tasks = [Regression(f"t{i}", metrics=("rmse",)) for i in range(num_tasks)]
    return tasks, TensorSource(x, {t.name: x @ w[i] for i, t in enumerate(tasks)})


def trainer_step(method: Method, tasks: list[Regression], data: TensorSource, device: str) -> Step:
    torch.manual_seed(0)
    model = HardSharing(MLP(IN, HIDDEN), tasks)
    balancer = create_balancer(method[0], tasks, **options(*method, [t.name for t in tasks]))
    trainer = Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-3),
                      MultiSourceLoader({"train": data}, BATCH, seed=0), steps=10**9, device=device, progress=False)
    return trainer._train_step


def naive_step(tasks: list[Regression], data: TensorSource, device: str) -> Step:
    """LibMTL-style: T backward passes through the shared parameters, then MGDA on the stacked gradients."""
    torch.manual_seed(0)
    model = HardSharing(MLP(IN, HIDDEN), tasks).to(device)
    optimizer = build_optimizer(model, create_balancer("ew", tasks), "adam", 1e-3)
    loader = MultiSourceLoader({"train": data}, BATCH, seed=0)
    shared = list(model.shared_parameters())
    heads = [p for t in tasks for p in model.task_parameters(t.name)]

    def step() -> None:
        batch = loader.next()[1].to(device)
        optimizer.zero_grad(set_to_none=True)
        out = model(batch.inputs)
        losses = [F.mse_loss(out[t.name].squeeze(1), batch.targets[t.name]) for t in tasks]
        jacobian = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared, retain_graph=True)])
                                for loss in losses])
        with one_blas_thread():  # as the engine solves (a BLAS thread pool only adds contention here)
            weights = min_norm_weights(jacobian @ jacobian.T)
        update = weights @ jacobian
        offset = 0
        for p in shared:
            p.grad, offset = update[offset:offset + p.numel()].view_as(p).clone(), offset + p.numel()
        torch.stack(losses).sum().backward(inputs=heads)
        optimizer.step()

    return step


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError


def first_step(step: Step, limit: float, device: str) -> float:
    """Seconds of one (warm-up) step; TimeoutError past ``limit`` seconds (SIGALRM: main thread, Unix)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def peak_bytes(build: Callable[[], Step], device: str, steps: int = 2) -> int:
    """Peak bytes of live tensors from ``build()`` through ``steps`` steps (see the module docstring)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step = build()
        for _ in range(steps):
            step()
        return torch.cuda.max_memory_allocated() - base
    gc.collect()  # no garbage from earlier steps is freed while profiling
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step = build()
        for _ in range(steps):
            step()
        del step
        gc.collect()  # free everything while profiling: the allocator's running total persists across sessions
    stack, events = list(prof.profiler.kineto_results.experimental_event_tree()), []
    while stack:  # (start, running total, size) of every CPU allocation (size < 0: a free)
        event = stack.pop()
        stack += event.children
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            events.append((event.start_time_ns, event.extra_fields.total_allocated, event.extra_fields.alloc_size))
    start = min(events)
    return max(total for _, total, _ in events) - (start[1] - start[2])


def measure(selected: list[Method], task_counts: list[int], *, steps: int, repeats: int, budget: float,
            memory: bool = True, naive: bool = True, device: str = "cpu") -> dict[str, dict[int, dict[str, Any]]]:
    """``{label: {T: cell}}``; a cell holds ``time`` (median ratio to EW), ``time_min``, ``memory``
    (peak ratio to EW), or ``skipped`` (why). The naive reference is labelled ``naive``."""
    results: dict[str, dict[int, dict[str, Any]]] = {}
    cut: dict[str, str] = {}
    sync: Callable[[], object] = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for t in task_counts:
        tasks, data = setup(t)
        ew = trainer_step(("ew", None), tasks, data, device)
        ew()  # warm-up
        ew_bytes = peak_bytes(partial(trainer_step, ("ew", None), tasks, data, device), device) if memory else 0
        builders = {label(m): partial(trainer_step, m, tasks, data, device) for m in selected}
        if naive:
            builders["naive"] = partial(naive_step, tasks, data, device)
        for name, build in builders.items():
            if name in cut:
                results.setdefault(name, {})[t] = {"skipped": cut[name]}
                continue
            seconds = float("inf")
            try:
                step = build()
                seconds = first_step(step, budget, device)
                if seconds * steps * repeats > budget:
                    raise TimeoutError
                pairs = paired(step, ew, steps * repeats, sync)
                ratios = [ours / ew_time for ours, ew_time in pairs]
                cell: dict[str, Any] = {"time": statistics.median(ratios), "time_min": min(ratios),
                                        "ms_per_step": 1e3 * statistics.median(p[0] for p in pairs),
                                        "ew_ms_per_step": 1e3 * statistics.median(p[1] for p in pairs)}
                if memory:
                    peak = peak_bytes(build, device)
                    cell |= {"memory": peak / ew_bytes, "peak_mib": peak / 2**20, "ew_peak_mib": ew_bytes / 2**20}
            except TimeoutError:
                cell = {"skipped": f"cut: {steps * repeats} steps would take {seconds * steps * repeats:.3g} s "
                                   f"> budget {budget:g} s" if seconds < budget else f"cut: one step > {budget:g} s"}
                cut[name] = f"cut at T = {t} (budget {budget:g} s); larger T cost more"
            except Exception as error:  # noqa: BLE001  a broken method must not stop the table
                cell = {"skipped": f"error: {type(error).__name__}: {error}"[:200]}
            results.setdefault(name, {})[t] = cell
            print(f"T={t:<4} {name:<28} {cell}", file=sys.stderr, flush=True)
    return results


def kind(method: Method) -> str:
    """Which goal of issue 10 applies: ``losses``, ``representation``, ``exact`` (exact Gramian) or ``""``."""
    info = balancer_info(method[0])
    level = method[1] or next(iter(info.levels), None)
    if info.needs == "losses" or level == "representation":
        return "losses" if info.needs == "losses" else "representation"
    return "exact" if info.needs == "gramian" and level == "exact" else ""


GOALS = {"losses": "≤ 1.05", "representation": "≤ 1.2 at T=32", "exact": "≤ 2 (T=8), ≤ 3 (T=32), ≤ 0.5×naive (T≥8)"}


def meets(goal: str, t: int, ratio: float, naive: float | None) -> bool | None:
    """Whether ``ratio`` (to EW) meets ``goal`` at this T; None where the goal says nothing about T."""
    if goal == "losses":
        return ratio <= 1.05
    if goal == "representation" and t == 32:
        return ratio <= 1.2
    if goal == "exact" and t >= 8:
        return ratio <= {8: 2.0, 32: 3.0}.get(t, float("inf")) and (naive is None or ratio <= 0.5 * naive)
    return None


def table(selected: list[Method], task_counts: list[int], results: dict[str, dict[int, dict[str, Any]]]) -> str:
    lines = ["| method | goal (time / EW) | " + " | ".join(f"time T={t}" for t in task_counts) + " | "
             + " | ".join(f"memory T={t}" for t in task_counts) + " |",
             "|---|---|" + "---:|" * 2 * len(task_counts)]
    notes: list[str] = []
    rows = [(label(m), kind(m)) for m in selected] + ([("naive", "")] if "naive" in results else [])
    for name, goal in rows:
        times, memories = [], []
        for t in task_counts:
            cell = results[name][t]
            if "skipped" in cell:
                notes.append(f"{name}, T = {t}: {cell['skipped']}")
                times.append(cell["skipped"].split(":")[0].split()[0])  # "cut" or "error"
                memories.append(times[-1])
                continue
            naive = results.get("naive", {}).get(t, {}).get("time")
            ok = meets(goal, t, cell["time"], naive)
            times.append(f"{cell['time']:.2f}" + ("" if ok is None else " ✓" if ok else " ✗"))
            memories.append(f"{cell['memory']:.2f}" if "memory" in cell else "–")
        shown = "naive: T backward passes + MGDA (LibMTL style)" if name == "naive" else name
        lines.append(f"| {shown} | {GOALS.get(goal, '–')} | " + " | ".join(times + memories) + " |")
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", help="comma-separated task counts T (default 2,8,32,128)")
    parser.add_argument("--methods", help="comma-separated names or name:level (default: every registered one)")
    parser.add_argument("--steps", type=int, help="pairs of steps timed = steps x repeats (default 20)")
    parser.add_argument("--repeats", type=int, help="pairs of steps timed = steps x repeats (default 5)")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of timed steps allowed per method and T")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run; defaults T = 2,8 and 2 pairs of steps")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--docs", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    defaults = ("2,8", 2, 1) if args.quick else ("2,8,32,128", 20, 5)
    args.tasks, args.steps, args.repeats = (a or d for a, d in zip((args.tasks, args.steps, args.repeats), defaults))
    torch.set_num_threads(args.threads)
    pin_malloc()
    task_counts = [int(t) for t in args.tasks.split(",")]
    selected = methods(args.methods.split(",") if args.methods else None)
    results = measure(selected, task_counts, steps=args.steps, repeats=args.repeats, budget=args.budget,
                      memory=not args.no_memory, device=args.device)
    text = table(selected, task_counts, results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({n: {str(t): c for t, c in r.items()} for n, r in results.items()}, indent=2))
    if args.docs:
        command = " ".join(["python benchmarks/balancing_cost.py", *sys.argv[1:]])
        env = f"{environment()}, {args.device}"
        write_section("balancing-cost", "\n".join([
            "## Cost of each balancing method",
            "",
            f"Command: `{command}` ({protocol(args.steps, args.repeats, 1)}; {env}).",
            "MLP 64→256→256 hard sharing, batch 128, T regression tasks, Adam. Time: seconds per training step "
            "/ EW's, measured in the same run (the `ew` row is a second EW instance: the noise floor). Memory: "
            "peak bytes of live tensors from construction through 2 steps / EW's (CPU: torch.profiler's "
            "allocation events; CUDA: `max_memory_allocated`), not the process RSS. ✓/✗: the goal of issue 10 "
            "met or missed; – no goal at this T. Cells cut by the time budget or failing are listed under the table.",
            "",
            text,
        ]))


if __name__ == "__main__":
    main()
