"""manytask side by side with LibMTL and with torchjd used directly: step time and peak memory.

Same model, batch, T, optimizer (fused Adam) and loss on both sides; a step is forward, the method's
backward and the optimizer step. Ours is ``Trainer._train_step`` (data loading included, so ours pays
for its loader too). Not in CI: LibMTL is optional (``pip install --no-deps LibMTL`` — its
``torchvision`` requirement is only for its image models, which are not imported here — or
``--libmtl PATH`` to a checkout); nothing in it is patched. Rows:

- LibMTL: its weighting classes as its trainer uses them, mixed into a model that provides what they
  read (``task_num``, ``device``, ``rep_grad``, ``get_share_params``, ``zero_grad_share_params``,
  ``rep``/``rep_tasks`` at the representation level, ``epoch = 1`` and a loss buffer for
  DWA/GradNorm), with LibMTL's default hyper-parameters. Parameter level: T backward passes
  (``mode='backward'``); representation level (``rep_grad=True``): T backward passes to the
  features, summed over the batch (``[T, D]``; ours keeps the per-sample ``[T, B·D]``).
- torchjd: its autogram ``Engine`` on the trunk, ``compute_gramian`` of the losses, its weighting,
  ``losses.backward(weights)`` (the heads then get weighted gradients, as torchjd's examples do).

Timing: after warm-up steps of each, pairs of one step of each in alternating order, median of the
per-pair ratios (``_report.ratio``), with glibc malloc's thresholds fixed (``_report.pin_malloc``).
Memory: peak bytes of live tensors from building model and optimizer through 2 steps (see
balancing_cost.py).

torchjd's UPGrad and DualProj need ``qpsolvers`` and ``quadprog`` (``pip install --no-deps qpsolvers
quadprog``); without them those rows say "failed". They solve a regularised QP (``G / tr G + 1e-4 I``),
ours the exact NNLS, so their weights differ slightly.

Usage: python benchmarks/peers.py [--tasks 4,11,32] [--model mlp|cnn] [--batch 128] [--methods mgda,pcgrad]
       [--libmtl PATH] [--no-memory] [--docs]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, pin_malloc, protocol, ratio, write_section  # noqa: E402
from balancing_cost import peak_bytes  # noqa: E402

from manytask.balancing import create_balancer  # noqa: E402
from manytask.data import MultiSourceLoader, TensorSource  # noqa: E402
from manytask.models import MLP, ConvNet, HardSharing  # noqa: E402
from manytask.tasks import Regression  # noqa: E402
from manytask.training import Trainer, build_optimizer  # noqa: E402

Step = Callable[[], object]

#: ours (name, options) -> LibMTL (class, level, kwargs) and torchjd weighting (or None).
SHARED: dict[str, tuple[dict[str, Any], str | None, bool, dict[str, Any], str | None]] = {
    # label: (our options, LibMTL class, LibMTL rep_grad, LibMTL kwargs, torchjd weighting)
    "ew": ({"name": "ew"}, "EW", False, {}, None),
    "uw": ({"name": "uw"}, "UW", False, {}, None),
    "dwa": ({"name": "dwa"}, "DWA", False, {"T": 2.0}, None),
    "gls": ({"name": "gls"}, "GLS", False, {}, None),
    "rlw": ({"name": "rlw"}, "RLW", False, {"dist": "Normal"}, None),
    "gradnorm": ({"name": "gradnorm"}, "GradNorm", False, {"alpha": 1.5}, None),
    "mgda (exact)": ({"name": "mgda", "level": "exact"}, "MGDA", False, {"mgda_gn": "none"}, "MGDAWeighting"),
    "mgda (representation)": ({"name": "mgda", "level": "representation"}, "MGDA", True, {"mgda_gn": "none"}, None),
    "pcgrad (exact)": ({"name": "pcgrad", "level": "exact"}, "PCGrad", False, {}, "PCGradWeighting"),
    "pcgrad (representation)": ({"name": "pcgrad", "level": "representation"}, "PCGrad", True, {}, None),
    "graddrop (representation)": ({"name": "graddrop"}, "GradDrop", True, {"leak": 0.0}, None),
    "gradvac (exact)": ({"name": "gradvac"}, "GradVac", False, {"beta": 0.5}, None),
    "cagrad (exact)": ({"name": "cagrad", "c": 0.5}, "CAGrad", False, {"calpha": 0.5, "rescale": 1}, None),
    "imtl-g (exact)": ({"name": "imtl-g"}, "IMTL", False, {}, "IMTLGWeighting"),
    "upgrad (exact)": ({"name": "upgrad"}, None, False, {}, "UPGradWeighting"),
    "dualproj (exact)": ({"name": "dualproj"}, None, False, {}, "DualProjWeighting"),
    "aligned-mtl (exact)": ({"name": "aligned-mtl"}, None, False, {}, "AlignedMTLWeighting"),
}
BATCH, N = 128, 2048
#: what a peer's failure comes from, where we read its source to find out
WHY_FAILED = {
    "cagrad (exact) vs LibMTL": "LibMTL 1.1.5's CAGrad objective reshapes the weights to `(1, 3)`: "
                                "it runs with exactly 3 tasks",
    "pcgrad (representation) vs LibMTL": "LibMTL refuses it by design",
}


def model_and_data(kind: str, count: int) -> tuple[Callable[[], HardSharing], Tensor, dict[str, Tensor]]:
    torch.manual_seed(0)
    make: Callable[[], nn.Module]
    if kind == "mlp":
        x = torch.randn(N, 64)
        make = partial(MLP, 64, (256, 256))
    else:
        x = torch.randn(N, 1, 28, 28)
        make = partial(ConvNet, out_features=50)
    tasks = [Regression(f"t{i}", metrics=("rmse",)) for i in range(count)]
    targets = {t.name: torch.randn(N) for t in tasks}
    return (lambda: HardSharing(make(), tasks)), x, targets


def ours(method: str, build: Callable[[], HardSharing], x: Tensor, targets: dict[str, Tensor]) -> Step:
    torch.manual_seed(0)
    model = build()
    tasks = [Regression(n, metrics=("rmse",)) for n in targets]
    options = dict(SHARED[method][0])
    balancer = create_balancer(options.pop("name"), tasks, **options)
    trainer = Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-3),
                      MultiSourceLoader({"train": TensorSource(x, targets)}, BATCH, seed=0), steps=10**9,
                      progress=False)
    return trainer._train_step


def batches(x: Tensor, targets: dict[str, Tensor]) -> Callable[[], tuple[Tensor, Tensor]]:
    stacked = torch.stack(list(targets.values()), dim=1)
    state = {"i": 0}

    def next_batch() -> tuple[Tensor, Tensor]:
        i = state["i"] = (state["i"] + BATCH) % (N - BATCH)
        return x[i:i + BATCH], stacked[i:i + BATCH]

    return next_batch


def libmtl(method: str, build: Callable[[], HardSharing], x: Tensor, targets: dict[str, Tensor]) -> Step:
    import LibMTL.weighting as weighting  # noqa: PLC0415 — optional

    _, name, rep_grad, kwargs, _ = SHARED[method]
    base = getattr(weighting, str(name))
    count = len(targets)

    class Model(base):  # type: ignore[misc, valid-type]  # LibMTL's trainer mixes weighting into the model
        def __init__(self) -> None:
            super().__init__()
            inner = build()
            self.encoder, self.decoders = inner.encoder, inner.heads
            self.task_name, self.task_num, self.device, self.rep_grad = list(targets), count, torch.device("cpu"), rep_grad
            self.epoch, self.train_loss_buffer = 1, np.ones((count, 2))
            self.init_param()

        def get_share_params(self) -> Any:
            return self.encoder.parameters()

        def zero_grad_share_params(self) -> None:
            self.encoder.zero_grad(set_to_none=False)

        def forward(self, inputs: Tensor) -> Tensor:
            z = self.encoder(inputs)
            if self.rep_grad:  # as LibMTL's AbsArchitecture: a detached copy per task
                self.rep, self.rep_tasks = z, {}
                outs = []
                for t in self.task_name:
                    self.rep_tasks[t] = z.detach().clone().requires_grad_()
                    outs.append(self.decoders[t](self.rep_tasks[t]))
                return torch.cat(outs, dim=1)
            return torch.cat([self.decoders[t](z) for t in self.task_name], dim=1)

    torch.manual_seed(0)
    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    next_batch = batches(x, targets)

    def step() -> None:
        inputs, y = next_batch()
        optimizer.zero_grad(set_to_none=False)
        out = model(inputs)
        losses = torch.stack([F.mse_loss(out[:, i], y[:, i]) for i in range(count)])
        model.backward(losses, **kwargs)
        optimizer.step()

    return step


def torchjd(method: str, build: Callable[[], HardSharing], x: Tensor, targets: dict[str, Tensor]) -> Step:
    import torchjd.aggregation as aggregation  # noqa: PLC0415
    from torchjd.autogram import Engine  # noqa: PLC0415

    torch.manual_seed(0)
    model = build()
    engine = Engine(model.encoder, batch_dim=None)
    weighting = getattr(aggregation, str(SHARED[method][4]))()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    next_batch = batches(x, targets)
    names = list(targets)

    def step() -> None:
        inputs, y = next_batch()
        optimizer.zero_grad(set_to_none=True)
        out = model(inputs)
        losses = torch.stack([F.mse_loss(out[n].squeeze(1), y[:, i]) for i, n in enumerate(names)])
        losses.backward(weighting(engine.compute_gramian(losses)))
        optimizer.step()

    return step


def compare(mine: Callable[[], Step], theirs: Callable[[], Step], steps: int, repeats: int,
            memory: bool) -> dict[str, Any]:
    cell: dict[str, Any] = {"time": ratio(mine(), theirs(), steps, repeats, warmup=steps)}
    if memory:
        cell["memory"] = peak_bytes(mine, "cpu") / peak_bytes(theirs, "cpu")
    return cell


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="4,11,32")
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    parser.add_argument("--methods", help="comma-separated labels (default: all shared)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--steps", type=int, default=10, help="warm-up steps of each; pairs timed = steps x repeats")
    parser.add_argument("--repeats", type=int, default=10, help="pairs of steps timed = steps x repeats")
    parser.add_argument("--libmtl", type=Path, help="a LibMTL checkout (its parent of LibMTL/) to import")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args(argv)
    global BATCH  # noqa: PLW0603 — one setting for every builder below
    BATCH = args.batch
    torch.set_num_threads(1)
    pin_malloc()
    has_libmtl = _import_libmtl_weighting(args.libmtl)
    if not has_libmtl:
        print("LibMTL not found: its rows are skipped (pip install --no-deps LibMTL, or --libmtl PATH)")
    labels = args.methods.split(",") if args.methods else list(SHARED)
    counts = [int(t) for t in args.tasks.split(",")]
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    for count in counts:
        build, x, targets = model_and_data(args.model, count)
        for label in labels:
            _, lib_name, _, _, jd_name = SHARED[label]
            peers = ([("LibMTL", libmtl)] if lib_name and has_libmtl else []) + ([("torchjd", torchjd)] if jd_name else [])
            for peer, make in peers:
                key = f"{label} vs {peer}"
                try:
                    cell = compare(partial(ours, label, build, x, targets), partial(make, label, build, x, targets),
                                   args.steps, args.repeats, not args.no_memory)
                except Exception as error:  # noqa: BLE001 — a peer's failure is a result too
                    cell = {"failed": f"{type(error).__name__}: {error}".split("\n")[0][:100]}
                rows.setdefault(key, {})[count] = cell
                print(f"T={count:<4} {key:<40} {cell}", flush=True)
    table = render(rows, counts, args)
    print(table)
    if args.docs:
        write_section(f"peers-{args.model}", table, Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md")


def render(rows: dict[str, dict[int, dict[str, Any]]], counts: list[int], args: argparse.Namespace) -> str:
    model = "MLP 64→256→256" if args.model == "mlp" else "ConvNet (2 conv blocks + linear 50), 1×28×28"
    version = _libmtl_version()
    lines = [f"## Side by side with the peers — {model}, batch {BATCH}", "",
             f"Command: `python benchmarks/peers.py --model {args.model} --tasks {args.tasks} --batch {BATCH} --docs` "
             f"(LibMTL {version}, its weighting modules imported as they are — the package's `__init__`, which "
             f"needs torchvision for LibMTL's ResNet, is not run; torchjd {_version('torchjd')}, {environment()}; "
             f"{protocol(args.steps, args.repeats, args.steps)}). Ratios ours / theirs: below 1 is faster or smaller. Ours is a full `Trainer` "
             "step, its data loader included; the peers' steps slice prepared tensors. LibMTL runs with its "
             "default hyper-parameters and is not patched; its GradNorm differentiates all shared "
             "parameters (ours: the last shared layer, as the paper), its IMTL is IMTL-L and IMTL-G "
             "together (ours: IMTL-G alone).", "",
             "| method vs peer | " + " | ".join(f"time T={t}" for t in counts) + " | "
             + " | ".join(f"memory T={t}" for t in counts) + " |",
             "|---|" + "---:|" * (2 * len(counts))]
    failures: dict[str, str] = {}
    for key, cells in rows.items():
        time = [_fmt(cells.get(t, {}), "time") for t in counts]
        memory = [_fmt(cells.get(t, {}), "memory") for t in counts]
        lines.append(f"| {key} | " + " | ".join(time + memory) + " |")
        failed = [c["failed"] for c in cells.values() if "failed" in c]
        if failed:
            failures[key] = failed[0]
    if failures:
        lines += ["", "Failed on the peer's side (the first error):", ""]
        lines += [f"- {key}: `{reason}`" + (f" ({WHY_FAILED[key]})" if key in WHY_FAILED else "")
                  for key, reason in failures.items()]
    return "\n".join(lines)


def _fmt(cell: dict[str, Any], key: str) -> str:
    if "failed" in cell:
        return "failed"
    return f"{cell[key]:.2f}" if key in cell else "–"


def _import_libmtl_weighting(checkout: Path | None) -> bool:
    """Make ``LibMTL.weighting`` importable without running ``LibMTL/__init__.py``, which imports
    torchvision for LibMTL's ResNet (the weighting modules themselves import only torch and numpy)."""
    import importlib.util  # noqa: PLC0415
    import types  # noqa: PLC0415

    roots = [checkout] if checkout else [Path(p) for p in sys.path if p]
    for root in roots:
        package = root / "LibMTL"
        if (package / "weighting" / "__init__.py").exists():
            stub = types.ModuleType("LibMTL")
            stub.__path__ = [str(package)]
            sys.modules["LibMTL"] = stub
            if checkout:
                sys.path.insert(0, str(checkout))
            return importlib.util.find_spec("LibMTL.weighting") is not None
    return False


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(package)
    except PackageNotFoundError:
        return "checkout"


def _libmtl_version() -> str:
    return _version("LibMTL")


if __name__ == "__main__":
    main()
