"""The ``manytask`` command: a thin layer over :mod:`manytask.runs`."""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml

from .._registry import OptionsError, UnknownNameError
from .._utils import TableError
from ..config import ConfigError, apply_overrides, load_config, parse_config
from ..data import EmptySourceError
from ..data.datasets._download import ChecksumError, DownloadError
from ..data.datasets._files import DataFormatError
from ..runs._run_dir import RunDirError
from ..tasks import TargetError
from ..training import CheckpointError, NonFiniteError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multi-task learning: train, compare with single-task baselines, list components.")

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file (see examples/).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a key: --set training.steps=500")]

#: The project's own errors for things a user can fix: one line, exit 2. Anything else is a bug in
#: manytask (or its dependencies) and keeps its traceback.
_USER_ERRORS = (RunDirError, ConfigError, CheckpointError, NonFiniteError, TargetError, EmptySourceError,
                FileNotFoundError, IsADirectoryError, UnknownNameError, OptionsError, TableError, DataFormatError,
                ChecksumError, DownloadError)


def _under_torchrun(command: str) -> bool:
    """Refuse a command that runs in one process (its runs one after another) under torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _fail(ConfigError(f"{command} runs in one process (its trainings one after another); start it without "
                          f"torchrun (manytask {command} ...). train and compare run across ranks."))
        return True
    return False


def _fail(error: BaseException) -> None:
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def train(
    config: ConfigArg,
    set_: SetOpt = None,
    resume: Annotated[str | None, typer.Option(help="'latest' or a checkpoint file to continue from.")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Where to write the run (overrides run_dir).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete a run already in the run directory first.")] = False,
) -> None:
    """Train a multi-task model from CONFIG and evaluate its best checkpoint."""
    from ..runs import train as run_train

    try:
        cfg = load_config(config, set_ or [])
        result = run_train(cfg, resume=resume, run_dir=run_dir, overwrite=overwrite)
    except _USER_ERRORS as error:
        _fail(error)
        return
    if not result.split:  # a rank other than 0 under torchrun: rank 0 reports
        return
    typer.echo(f"Run directory: {result.run_dir}")
    best = result.train.best_value
    if result.train.best_step is None or best is None:
        typer.echo(f"Best step: none ({result.train.monitor} was never defined; the last model was tested)")
    else:
        typer.echo(f"Best step: {result.train.best_step} ({result.train.monitor} = {best:.4f})")
    for role, metrics_of_role in result.by_role().items():
        if role != "main":  # auxiliary and adversarial tasks are listed apart: they are not the objective
            typer.echo(f"  {role} tasks:")
        for key, value in metrics_of_role.items():
            typer.echo(f"  {result.split}/{key}: " + (f"{value:.4f}" if value == value else "undefined"))
    mean, undefined = result.mean_primary()
    metrics = sorted({k.split("/", 1)[1] for k in result.primary})
    if len(result.primary) > 1 and len(metrics) == 1:
        covered = len(result.primary) - len(undefined)
        left_out = f"; undefined for {', '.join(undefined)}" if undefined else ""
        typer.echo(f"  {result.split}/mean/{metrics[0]}: {mean:.4f} (over {covered} of {len(result.primary)} "
                   f"main tasks{left_out})")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by manytask train (on a table).")],
    data: Annotated[Path, typer.Option("--data", help="CSV or Parquet table of new rows with the training inputs.")],
    checkpoint: Annotated[str, typer.Option(help="best, latest or a checkpoint file.")] = "best",
    out: Annotated[Path | None, typer.Option(help="Where to write the predictions "
                                                  "(default RUN_DIR/predictions.csv).")] = None,
) -> None:
    """Predict every task for new rows, with the preprocessing fitted on the training rows."""
    from ..runs import predict as run_predict

    try:
        written = run_predict(run_dir, data, checkpoint, out)
    except _USER_ERRORS as error:
        _fail(error)
        return
    typer.echo(f"Predictions: {written}")


@app.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by manytask train (on a table).")],
    data: Annotated[Path, typer.Option("--data", help="A labelled CSV or Parquet table (empty cell = no label).")],
    checkpoint: Annotated[str, typer.Option(help="best, latest or a checkpoint file.")] = "best",
    out: Annotated[Path | None, typer.Option(help="Where to write the metrics "
                                                  "(default RUN_DIR/evaluation.csv).")] = None,
) -> None:
    """Every task's metrics on a labelled table, with the preprocessing fitted on the training rows."""
    from ..runs import evaluate_file

    try:
        metrics = evaluate_file(run_dir, data, checkpoint, out)
    except _USER_ERRORS as error:
        _fail(error)
        return
    for key, value in metrics.items():
        typer.echo(f"  {key}: {value:.4f}")


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by manytask train.")],
    out: Annotated[Path | None, typer.Option(help="Where to write the program (default RUN_DIR/model.pt2).")] = None,
    checkpoint: Annotated[str, typer.Option(help="best, latest or a checkpoint file.")] = "best",
) -> None:
    """Export the trained model with torch.export (load it with torch.export.load(path).module())."""
    from ..runs import ExportError, export_run

    try:
        written = export_run(run_dir, out, checkpoint)
    except (*_USER_ERRORS, ExportError) as error:
        _fail(error)
        return
    typer.echo(f"Exported: {written}")


@app.command("report")
def report_command(
    directory: Annotated[Path, typer.Argument(help="A run, comparison, relate or bench directory.")],
    out: Annotated[Path | None, typer.Option(help="Where to write the page (default DIRECTORY/report.html).")] = None,
) -> None:
    """Write one self-contained report.html (figures embedded; opens from a file, no network)."""
    from ..report import ReportError, write_report

    try:
        written = write_report(directory, out)
    except (ReportError, ValueError, OSError) as error:  # a malformed or unreadable file among the run's
        _fail(error)
        return
    typer.echo(f"Report: {written}")


@app.command()
def relate(
    config: ConfigArg,
    set_: SetOpt = None,
    pairs: Annotated[bool, typer.Option(help="Also train every task alone and every pair (T + T(T-1)/2 runs).")
                     ] = False,
    linear: Annotated[bool, typer.Option(help="Also fit ridge and MTRL (rows of features): weight cosines and "
                                               "MTRL's task correlation.")] = False,
    run_dir: Annotated[Path | None, typer.Option(help="Where to write the runs (overrides run_dir).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete runs already in the run directory first.")] = False,
    resume: Annotated[bool, typer.Option(help="Keep the runs already finished there; train the others.")] = False,
) -> None:
    """Which tasks help which: gradient cosines and conflicts and the lookahead affinity while
    training CONFIG (with --pairs, transfer gains from pair runs), and the groups they recommend."""
    from ..runs import relate as run_relate

    if _under_torchrun("relate"):
        return
    try:
        relation = run_relate(load_config(config, set_ or []), run_dir=run_dir, pairs=pairs, linear=linear,
                              overwrite=overwrite, resume=resume)
    except (*_USER_ERRORS, ValueError) as error:
        _fail(error)
        return
    typer.echo(relation.summary())
    typer.echo(f"\nWritten: {relation.run_dir / 'relatedness'}")


@app.command()
def compare(
    config: ConfigArg,
    set_: SetOpt = None,
    run_dir: Annotated[Path | None, typer.Option(help="Where to write the runs (overrides run_dir).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete runs already in the run directory first.")] = False,
) -> None:
    """Train single-task baselines and the multi-task model of CONFIG; print the table with Δm."""
    from ..runs import compare as run_compare

    try:
        cfg = load_config(config, set_ or [])
        comparison = run_compare(cfg, run_dir=run_dir, overwrite=overwrite)
    except _USER_ERRORS as error:
        _fail(error)
        return
    if not comparison.rows:  # a rank other than 0 under torchrun: rank 0 reports
        return
    typer.echo(comparison.table())
    typer.echo(f"\nWritten: {comparison.run_dir / 'comparison.md'}")


@app.command()
def bench(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file (see benchmarks/*.yaml).")],
    results_dir: Annotated[Path, typer.Option(help="Where the raw CSV goes.")] = Path("benchmarks/results"),
    runs_dir: Annotated[Path, typer.Option(help="Where the cells' run directories go.")] = Path("runs/bench"),
    docs: Annotated[Path | None, typer.Option(help="Markdown file to write the tables to.")] = Path(
        "docs/benchmarks.md"),
    no_docs: Annotated[bool, typer.Option("--no-docs", help="Do not write the tables.")] = False,
) -> None:
    """Run a benchmark suite (datasets x methods x seeds); finished cells are not re-run."""
    from ..runs import run_suite

    command = "manytask bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None
    if _under_torchrun("bench"):
        return
    try:
        csv_path = run_suite(suite, results_dir, runs_dir, None if no_docs else docs, command,
                             log=lambda line: typer.echo(line, err=True))
    except (*_USER_ERRORS, RuntimeError) as error:  # RuntimeError: a cell's process failed
        _fail(error)
        return
    typer.echo(f"Raw results: {csv_path}" + ("" if no_docs else f"; tables: {docs}"))


@app.command("fit-linear")
def fit_linear(
    config: ConfigArg,
    set_: SetOpt = None,
    run_dir: Annotated[Path | None, typer.Option(help="Where to write the run (overrides run_dir).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete a run already in the run directory first.")] = False,
) -> None:
    """Fit the linear MTL estimator of CONFIG's `linear:` section on the data `train` reads (same
    preprocessing, split and metrics), its hyperparameters chosen by cross-validation."""
    from ..config import read_config
    from ..runs import fit_linear_run

    if _under_torchrun("fit-linear"):
        return
    try:
        raw = read_config(config, set_ or [])
        if "estimator" in raw or "output_dir" in raw:
            raise ConfigError(
                f"{config} is in the old fit-linear format. fit-linear now reads the config `train` reads: "
                "data: {name: table, path: ..., inputs: [...], tasks: {...}} (or target + task_column), "
                "estimator -> linear: {name, params, search}, output_dir -> run_dir (see docs/linear.md).")
        run = fit_linear_run(load_config(config, set_ or []), run_dir=run_dir, overwrite=overwrite)
    except _USER_ERRORS as error:
        _fail(error)
        return
    typer.echo(f"{run.params} on the {run.split} split:")
    tasks = {key.split("/", 1)[0] for key in run.test}
    if len(tasks) <= 8:
        for key, value in run.test.items():
            typer.echo(f"  {key}: {value:.4f}")
    else:  # many tasks (School's 139): each metric's mean; every task's value is in results.json
        for metric in dict.fromkeys(key.split("/", 1)[1] for key in run.test):
            values = [v for k, v in run.test.items() if k.endswith(f"/{metric}") and v == v]
            typer.echo(f"  mean {metric} over {len(values)} tasks: {sum(values) / max(1, len(values)):.4f}")
    written = [name for name in ("results.json", "coef.csv", "search.csv", "report.html")
               if (run.run_dir / name).is_file()]  # report.html: not with logging.report=false, nor if it failed
    typer.echo(f"Written: {run.run_dir} ({', '.join(written)})")


@app.command("list")
def list_components(
    kind: Annotated[str | None, typer.Argument(
        help="models, encoders, balancers, samplers, datasets, metrics, views, auxiliary or linear")] = None,
) -> None:
    """List registered components by kind."""
    from .._utils import did_you_mean
    from ..catalogue import REGISTRIES

    if kind is not None and kind not in REGISTRIES:
        _fail(ValueError(f"Unknown kind {kind!r}.{did_you_mean(kind.lower(), REGISTRIES, 'Kinds')}"))
    for name, registry in REGISTRIES.items():
        if kind is not None and name != kind:
            continue
        typer.echo(f"{name}:")
        for entry in registry.entries():
            typer.echo(f"  {entry.name:<14} {entry.summary}")
            if entry.details:
                typer.echo("  " + " " * 15 + "; ".join(f"{k}: {v}" for k, v in entry.details.items()))


@app.command()
def explain(name: Annotated[str, typer.Argument(help="A registered component: a model, balancer, view, ...")]) -> None:
    """A component's description, paper, options with their defaults, and documentation."""
    import inspect

    from .._utils import did_you_mean
    from ..catalogue import REGISTRIES

    found = [(kind, entry) for kind, registry in REGISTRIES.items() for entry in registry.entries()
             if entry.name == name]
    if not found:
        every = sorted({e.name for registry in REGISTRIES.values() for e in registry.entries()})
        close = did_you_mean(name.lower(), every, None)  # MGDA -> mgda
        _fail(UnknownNameError(f"No component is named {name!r}.{close} See manytask list."))
        return
    for kind, entry in found:
        typer.echo(f"{entry.name} ({kind[:-1] if kind.endswith('s') else kind}): {entry.summary}")
        for key, value in entry.details.items():
            typer.echo(f"  {key}: {value}")
        target = entry.factory.__init__ if inspect.isclass(entry.factory) else entry.factory  # type: ignore[misc]
        options = [p for p in inspect.signature(target).parameters.values()
                   if p.name not in ("self", "tasks", "encoder") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if options:
            typer.echo("  options:")
            for p in options:
                default = "required" if p.default is p.empty else f"default {p.default!r}"
                typer.echo(f"    {p.name} ({default})")
        doc = inspect.getdoc(entry.factory)
        if doc:
            typer.echo("")
            typer.echo("  " + doc.replace("\n", "\n  "))


@app.command()
def demo(
    run_dir: Annotated[Path, typer.Option(help="Where to write the demo runs.")] = Path("runs/demo"),
    set_: SetOpt = None,
) -> None:
    """Show MTL helping: few labels for two tasks, many for a related one (generated data).

    The demo owns its run directory: each run replaces the previous demo there."""
    import torch

    from ..demos import DEMO_CONFIG
    from ..runs import compare as run_compare

    # The demo's models are tiny: extra intra-op threads only add synchronisation, and on a busy
    # machine their spin-waits can slow it tenfold. One thread keeps it fast everywhere.
    torch.set_num_threads(1)
    try:
        cfg = parse_config(apply_overrides(copy.deepcopy(DEMO_CONFIG), set_ or []))
    except ConfigError as error:
        _fail(error)
        return
    typer.echo("manytask demo: 3 tasks read one hidden representation of 20 inputs.")
    typer.echo("  'category' is labelled on all 2000 training samples; 'score' and 'flag' on 80 of them.")
    typer.echo("  Training one single-task model per task, then one hard-sharing multi-task model...\n")
    previous = Path(run_dir) / "multi" / "config.yaml"
    other_run = any((Path(run_dir) / name).exists() for name in ("config.yaml", "results.json", "checkpoints")) or (
        previous.is_file() and (yaml.safe_load(previous.read_text()) or {}).get("data", {}).get("name") != "demo")
    if other_run:  # the demo replaces its own earlier runs only
        _fail(RunDirError(f"Run directory {run_dir} holds a run that is not the demo's; give the demo another "
                          "directory (--run-dir ...)."))
        return
    start = time.perf_counter()
    comparison = run_compare(cfg, run_dir=run_dir, overwrite=True)
    typer.echo(comparison.table())
    typer.echo(f"\nRun directory: {comparison.run_dir} ({time.perf_counter() - start:.0f} s)")


def main() -> None:
    """Entry point of the ``manytask`` script."""
    app(prog_name="manytask")


if __name__ == "__main__":  # pragma: no cover
    main()
