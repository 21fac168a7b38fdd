"""From a validated config to the objects of a run: data, tasks, model, balancer, trainer."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from .._registry import OptionsError, Registry, UnknownNameError
from .._utils import TableError, atomic_write, did_you_mean
from ..balancing import BALANCERS, Balancer
from ..config import Config, ConfigError
from ..data import (
    DATASETS,
    SAMPLERS,
    EmptySourceError,
    MultiSourceLoader,
    MultiTaskData,
    TensorSource,
    keep_labels,
)
from ..data.datasets._download import ChecksumError
from ..data.datasets._files import DataFormatError
from ..metrics import METRICS
from ..models import ENCODERS, MODELS, MultiTaskModel
from ..tasks import BinaryClassification, Classification, Regression, SequenceLabelling, TargetError, Task
from ..training import (
    Callback,
    CheckpointError,
    Checkpointing,
    Evaluation,
    Ranks,
    TaskSchedule,
    TensorBoardLogger,
    Trainer,
    WeightsLoaded,
    Window,
    build_optimizer,
    build_scheduler,
    load_matching_weights,
)
from ..views import VIEWS, View
from ._preflight import (
    check_language_models,
    check_metrics,
    check_model_fits,
    check_view_classes,
    check_views_fit,
)

__all__ = ["Experiment", "build_experiment", "check_config", "load_data", "select_tasks"]


def _check(registry: Registry[Any], section: str, name: str, options: Mapping[str, Any],
           provided: tuple[str, ...] = (), complete: bool = True) -> dict[str, Any]:
    """``options`` validated (``complete``: they and ``provided`` are all the factory gets)."""
    try:
        return registry.validate(name, options, provided, complete)
    except (UnknownNameError, OptionsError) as error:
        raise ConfigError(f"Config section {section!r}: {error}") from None


@contextlib.contextmanager
def _section(section: str) -> Iterator[None]:
    """A component's own validation error (a ValueError from its constructor) becomes a
    :class:`ConfigError` naming the config section; the project's own errors pass unchanged."""
    try:
        yield
    except (ConfigError, TableError, TargetError, DataFormatError, ChecksumError, EmptySourceError):
        raise
    except ValueError as error:
        raise ConfigError(f"Config section {section!r}: {error}") from None


def check_config(config: Config) -> None:
    """Check every registered name and its options, before any data is loaded."""
    _check(DATASETS, "data", config.data.name, config.data.options())
    _check(SAMPLERS, "data.sampler", config.data.sampler.name, config.data.sampler.options())
    # the model and its encoder also get what the data says of the inputs (in_features, vocab_size)
    _check(MODELS, "model", config.model.name, config.model.options(), ("encoder", "tasks"), complete=False)
    _check(ENCODERS, "model.encoder", config.model.encoder.name, config.model.encoder.options(), complete=False)
    _check(BALANCERS, "balancer", config.balancer.name, config.balancer.options(), ("tasks",))
    for name, options in config.views.items():
        _check(VIEWS, f"views.{name}", name, options)
    for task_name, override in config.tasks.items():
        if override.view is not None:
            _check(VIEWS, f"tasks.{task_name}.view", override.view, {})
        for metric in override.metrics or []:
            if metric not in METRICS:
                _check(METRICS, f"tasks.{task_name}.metrics", metric, {})


def load_data(config: Config) -> MultiTaskData:
    """Build the configured dataset (seeded by ``config.seed`` when it takes a seed)."""
    options = _check(DATASETS, "data", config.data.name, config.data.options())
    factory = DATASETS.get(config.data.name).factory
    if "seed" in inspect.signature(factory).parameters and "seed" not in options:
        options["seed"] = config.seed
    with _section("data"):
        data = DATASETS.create(config.data.name, **options)
        kept = config.data.keep_labels
        if kept is not None:
            data = keep_labels(data, kept.fraction, kept.samples, config.seed)
        return data


#: ``tasks.<name>`` keys that change a task, dataset-defined or view-reading alike.
_OVERRIDES = ("role", "head_hidden", "head_dropout", "loss", "view", "level", "attach_at", "reversal",
              "reversal_schedule", "reads", "head_grid")
#: Keys that define the outputs of a task the config makes itself.
_VIEW_TASK_KEYS = ("kind", "num_outputs", "num_classes")


def _unknown_task(key: str, name: str, valid: Sequence[str]) -> ConfigError:
    tail = did_you_mean(name, valid, "Tasks")
    return ConfigError(f"Config key {key!r} names unknown task {name!r}.{tail}")


def select_tasks(config: Config, data: MultiTaskData, only: Sequence[str] | None = None) -> tuple[Task, ...]:
    """The dataset's tasks with the config's overrides applied, plus the config's view tasks
    (self-supervised tasks that name a view), restricted to ``only``."""
    names = [t.name for t in data.tasks]
    for name, spec in config.tasks.items():
        if name not in names and spec.view is None:
            raise _unknown_task(f"tasks.{name}", name, names)
    defined = list(data.tasks) + [_view_task(n, o) for n, o in config.tasks.items() if n not in names]
    every = [t.name for t in defined]
    for name in config.include_tasks or []:
        if name not in every:
            raise _unknown_task("include_tasks", name, every)
    keep = only if only is not None else (config.include_tasks or every)
    tasks = []
    for task in defined:
        if task.name not in keep:
            continue
        override = config.tasks.get(task.name)
        if override is not None and task.name in names:
            given = [k for k in _VIEW_TASK_KEYS if getattr(override, k) is not None]
            if given:
                raise ConfigError(f"Config section 'tasks.{task.name}': {', '.join(given)} define a task the config "
                                  f"makes itself (one that reads a view); {task.name!r} is the dataset's {task.kind} "
                                  f"task, whose outputs the dataset sets. Remove {', '.join(given)}.")
            changes: dict[str, Any] = {k: getattr(override, k) for k in _OVERRIDES if getattr(override, k) is not None}
            if override.metrics is not None:
                changes["metrics"] = tuple(override.metrics)
            if override.crf is not None:
                _check_crf(task.name, override.crf, isinstance(task, SequenceLabelling), task.kind,
                           getattr(task, "num_classes", None))
                changes["crf"] = override.crf
            try:
                task = dataclasses.replace(task, **changes)
            except ValueError as error:
                raise ConfigError(f"Config section 'tasks.{task.name}': {error}") from None
        if override is not None and task.role != "adversarial":
            reversal = [k for k in ("reversal", "reversal_schedule") if getattr(override, k) is not None]
            if reversal:
                raise ConfigError(f"Config section 'tasks.{task.name}': {' and '.join(reversal)} apply to adversarial "
                                  f"tasks (gradient reversal); {task.name!r} is a {task.role} task. Set role: "
                                  f"adversarial, or remove {' and '.join(reversal)}.")
        tasks.append(task)
    if not tasks:
        raise ConfigError("No task left to train: check include_tasks.")
    for task in tasks:
        check_metrics(task)
    return tuple(tasks)


def standardize_targets(tasks: Sequence[Task], data: MultiTaskData) -> tuple[Task, ...]:
    """Regression tasks with the mean and std of their labelled training targets (per output), so
    that their heads learn standardised targets while metrics stay on the original scale."""
    out = []
    for task in tasks:
        if isinstance(task, Regression) and task.view is None and task.target_mean is None:
            values = [_labelled(task, s) for s in data.train.values() if isinstance(s, TensorSource)
                      and task.name in s.targets]
            stacked = torch.cat([v for v in values if v.numel()]) if any(v.numel() for v in values) else None
            if stacked is not None:
                mean = stacked.double().mean(0)
                std = stacked.double().std(0, correction=0)
                std = torch.where(torch.isfinite(std) & (std > 0), std, torch.ones_like(std))
                task = dataclasses.replace(task, target_mean=tuple(mean.tolist()), target_std=tuple(std.tolist()))
        out.append(task)
    return tuple(out)


def _labelled(task: Regression, source: TensorSource) -> torch.Tensor:
    """The labelled target entries of ``task`` in ``source`` as ``[n, K]``."""
    target, mask = source.targets[task.name], source.masks[task.name]
    if task.level == "pixel" and target.ndim == 4:
        target = target.movedim(1, -1)
    return target[mask].reshape(-1, task.num_outputs)


#: The most tags a CRF output takes: it holds C x C potentials per token (256 tags: 65,536 a token,
#: 0.6 GB of float32 for 32 sentences of 78 tokens; a vocabulary of 9,065 would need 205 GB).
_CRF_TAGS = 256


def _check_crf(name: str, crf: bool, labels_sequences: bool, kind: str, tags: int | None) -> None:
    if not labels_sequences:
        raise ConfigError(f"Config section 'tasks.{name}': crf applies to sequence-labelling tasks (tags per "
                          f"token); {name!r} is a {kind} task.")
    if crf and tags is not None and tags > _CRF_TAGS:
        raise ConfigError(f"Config section 'tasks.{name}': crf holds num_classes x num_classes potentials per token; "
                          f"{tags} classes would need {tags * tags:,} a token. A CRF is for tag sets (at most "
                          f"{_CRF_TAGS}); leave crf out for this task.")


def _view_task(name: str, override: Any) -> Task:
    """A task the config defines itself: it reads a view's inputs and targets. Every key the
    config sets is applied or refused, never dropped."""
    kind = override.kind or "regression"
    options: dict[str, Any] = {"role": "auxiliary", "level": "sample"}
    options |= {k: getattr(override, k) for k in _OVERRIDES if getattr(override, k) is not None}
    if override.metrics is not None:
        options["metrics"] = tuple(override.metrics)
    size, other = ("num_classes", "num_outputs") if kind == "classification" else ("num_outputs", "num_classes")
    if getattr(override, other) is not None:
        raise ConfigError(f"Config section 'tasks.{name}': {other} does not apply to a {kind} task; set its "
                          f"{size} instead.")
    sequence = kind == "classification" and options["level"] == "token"
    if override.crf is not None:
        _check_crf(name, override.crf, sequence, f"{options['level']}-level {kind}", override.num_classes)
        options["crf"] = override.crf
    try:
        if kind == "classification":
            if override.num_classes is None:
                raise ValueError("a classification view task needs num_classes (e.g. the vocabulary size for "
                                 "masked_words)")
            preset = SequenceLabelling if sequence else Classification
            return preset(name, num_classes=override.num_classes, **options)
        if kind == "binary":
            return BinaryClassification(name, num_labels=override.num_outputs or 1, **options)
        return Regression(name, num_outputs=override.num_outputs or 1, **options)
    except ValueError as error:
        raise ConfigError(f"Config section 'tasks.{name}': {error}") from None


def _views(config: Config, tasks: Sequence[Task], input_info: Mapping[str, Any] | None = None) -> dict[str, View]:
    """The views the tasks name, with the options of the config's ``views`` section; a view's
    option the config leaves out comes from the dataset's ``input_info`` when it has one of that
    name (``contains_words``' ``vocab``)."""
    named = {t.view for t in tasks if t.view is not None}
    configured = named | {o.view for o in config.tasks.values() if o.view is not None}  # a run of some tasks
    for name in config.views:
        if name not in configured:
            raise ConfigError(f"Config section 'views.{name}': no task names this view; set "
                              f"tasks.<name>.view: {name}, or remove the section.")
    views = {}
    for name in sorted(named):
        options = _check(VIEWS, f"views.{name}", name, config.views.get(name, {}))
        accepted = inspect.signature(VIEWS.get(name).factory).parameters
        options.update({k: v for k, v in (input_info or {}).items() if k in accepted and k not in options})
        with _section(f"views.{name}"):
            views[name] = VIEWS.create(name, **options)
    return views


def _loggers(config: Config) -> list[Callback]:
    """The optional loggers and probes the config's ``logging`` and ``relatedness`` ask for."""
    loggers: list[Callback] = []
    if config.relatedness.every:
        from ..relatedness import TaskAffinity

        loggers.append(TaskAffinity(config.relatedness.every, config.relatedness.lookahead, config.relatedness.level))
    if not config.logging.tensorboard:
        return loggers
    try:
        return [*loggers, TensorBoardLogger(config.logging.every)]
    except ImportError as error:
        raise ConfigError(f"Config key 'logging.tensorboard': {error}") from None


def _schedule(config: Config, names: Sequence[str], known: Sequence[str]) -> TaskSchedule | None:
    """The run's task schedule from ``tasks.<name>.every/start/stop`` and ``training.alternate``."""
    windows = {}
    for name, options in config.tasks.items():
        if name in names and (options.every, options.start, options.stop) != (None, None, None):
            try:
                windows[name] = Window(options.every or 1, options.start or 0, options.stop)
            except ValueError as error:
                raise ConfigError(f"Config section 'tasks.{name}': {error}") from None
            if windows[name].start >= config.training.steps:
                raise ConfigError(f"Config section 'tasks.{name}': start: {options.start} is not before the last "
                                  f"step (training.steps: {config.training.steps}), so {name!r} would never train; "
                                  "lower start or raise training.steps.")
    alternate = config.training.alternate
    if alternate is not None:
        unknown = sorted({t for group in alternate for t in group} - set(known))
        if unknown:
            raise ConfigError(f"Config key 'training.alternate' names unknown tasks {unknown}; the tasks are "
                              f"{list(known)}.")
        # a single-task baseline (or include_tasks) keeps the groups' tasks it trains
        alternate = [kept for group in alternate if (kept := [t for t in group if t in names])]
    if not windows and not alternate:
        return None
    try:
        return TaskSchedule(names, windows, alternate, config.training.alternate_order, config.seed)
    except ValueError as error:
        raise ConfigError(f"Config section 'training': {error}") from None


def _train_sources(data: MultiTaskData, tasks: Sequence[Task]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training sources with a label for one of ``tasks`` (their rows labelled for one),
    and those without: where a task reads a view they are kept whole, as unlabelled sources
    (semi-supervised), and labelled sources keep their unlabelled rows too."""
    labelled = [t.name for t in tasks if t.view is None]
    reads_views = len(labelled) < len(tasks)
    sources: dict[str, Any] = {}
    unlabelled: dict[str, Any] = {}
    for key, source in data.train.items():
        carried = [n for n in labelled if n in source.tasks]
        if isinstance(source, TensorSource):
            has_labels = any(bool(source.masks[n].any()) for n in carried)
            if not has_labels and not reads_views:
                continue
            (sources if has_labels else unlabelled)[key] = source.only(carried, unlabelled=reads_views)
        elif carried or reads_views:
            sources[key] = source
    if not sources and not (reads_views and unlabelled):
        raise ConfigError(f"No training source has labels for tasks {labelled}.")
    return sources, unlabelled


def build_model(config: Config, tasks: Sequence[Task], input_info: Mapping[str, Any]) -> MultiTaskModel:
    """The config's encoder and sharing scheme for ``tasks``; the encoder's options the config
    leaves out come from the dataset's ``input_info`` (``in_features``, ``vocab_size``, ...)."""
    encoder_options = _check(ENCODERS, "model.encoder", config.model.encoder.name, config.model.encoder.options(),
                             complete=False)
    encoder_params = inspect.signature(ENCODERS.get(config.model.encoder.name).factory).parameters
    for key, value in input_info.items():
        if key in encoder_params and key not in encoder_options:
            encoder_options[key] = value
    try:
        encoder = ENCODERS.create(config.model.encoder.name, **encoder_options)
    except TypeError as error:
        missing = [p for p, v in encoder_params.items() if v.default is v.empty and p not in encoder_options]
        if missing:  # the dataset gives what its inputs need (in_features, vocab_size): not this
            raise ConfigError(f"Config section 'model.encoder': encoder {config.model.encoder.name!r} needs "
                              f"{', '.join(missing)}, which dataset {config.data.name!r} does not give: its inputs are "
                              "not what this encoder reads. Choose an encoder for them (manytask list encoders)."
                              ) from None
        raise ConfigError(f"Config section 'model.encoder': {error}.") from None
    except ValueError as error:
        raise ConfigError(f"Config section 'model.encoder': {error}") from None
    model_options = _check(MODELS, "model", config.model.name, config.model.options(), ("encoder", "tasks"),
                           complete=False)
    with _section("model"):
        model = MODELS.create(config.model.name, encoder=encoder, tasks=tasks, **model_options)
    return model


@dataclass
class Experiment:
    """Everything a run needs, built from a config."""

    config: Config
    data: MultiTaskData
    tasks: tuple[Task, ...]
    model: MultiTaskModel
    balancer: Balancer
    trainer: Trainer
    run_dir: Path
    started_from: WeightsLoaded | None = None  # what training.init_from loaded


def build_experiment(config: Config, data: MultiTaskData | None = None, only: Sequence[str] | None = None,
                     run_dir: Path | str | None = None, ranks: Ranks | None = None,
                     resuming: bool = False) -> Experiment:
    """Build data, tasks, model, balancer, optimizer, loader and trainer for ``config``.

    Args:
        config: A validated config.
        data: Reuse already-loaded data (``compare`` loads it once).
        only: Train only these tasks (single-task baselines).
        run_dir: Overrides ``config.run_dir``.
        ranks: Data-parallel ranks (``torchrun``): each reads its share of every global batch.
        resuming: The run continues from its own checkpoint, which sets every weight:
            ``training.init_from`` is not read (it may be gone by then).
    """
    check_config(config)
    torch.manual_seed(config.seed)
    data = data if data is not None else load_data(config)
    tasks = select_tasks(config, data, only)
    if config.data.standardize_targets:
        tasks = standardize_targets(tasks, data)
    names = [t.name for t in tasks]
    task_lr = {n: o.lr for n, o in config.tasks.items() if o.lr is not None and n in names}

    model = build_model(config, tasks, data.input_info)
    balancer_options = _check(BALANCERS, "balancer", config.balancer.name, config.balancer.options(), ("tasks",))
    with _section("balancer"):
        balancer = BALANCERS.create(config.balancer.name, tasks=tasks, **balancer_options)
    if config.balancer.name == "aux-schedule" and len(tasks) > 1 and all(t.role != "auxiliary" for t in tasks):
        raise ConfigError(f"Config section 'balancer': aux-schedule weights the auxiliary tasks, and none of "
                          f"{names} is one, so it would train as plain EW; set role: auxiliary on a task "
                          "(tasks.<name>.role), or use ew.")

    training = config.training
    started_from = None
    if training.init_from is not None and not resuming:  # every weight the checkpoint shares with the model
        try:
            started_from = load_matching_weights(model, training.init_from)
        except CheckpointError as error:
            raise ConfigError(f"Config section 'training': {error}") from None
    if training.freeze == "shared":
        # the spare copies too (adaptive sharing): a widening copies a frozen shared node into them, and
        # a resumed run must freeze the same parameters as the straight run did
        for parameter in (*model.shared_parameters(), *model.spare_parameters()):
            parameter.requires_grad_(False)
        if balancer.needs != "losses":
            raise ConfigError(f"Config section 'training': freeze: shared leaves {config.balancer.name!r} no shared "
                              "gradient to combine; use a loss weighting (ew, uw, dwa, ...) or freeze: none.")
    opt = config.optimizer
    optimizer = build_optimizer(model, balancer, opt.name, opt.lr, opt.weight_decay, opt.momentum, task_lr,
                                opt.shared_lr)
    scheduler = None
    if opt.scheduler != "constant" or opt.warmup_steps:
        try:
            scheduler = build_scheduler(optimizer, opt.scheduler, training.steps, opt.warmup_steps,
                                        opt.decay_every, opt.decay_factor)
        except ValueError as error:
            raise ConfigError(f"Config section 'optimizer': {error}") from None
    sampler_options = _check(SAMPLERS, "data.sampler", config.data.sampler.name, config.data.sampler.options())
    with _section("data.sampler"):
        sampler = SAMPLERS.create(config.data.sampler.name, **sampler_options)
    sources, unlabelled = _train_sources(data, tasks)
    beside = config.data.keep_labels.unlabelled_batch_size if config.data.keep_labels is not None else None
    if beside is None or not sources:  # the unlabelled sources are drawn like the others
        sources, unlabelled = {**sources, **unlabelled}, {}
    try:
        loader = MultiSourceLoader(sources, config.data.batch_size, sampler, seed=config.seed, unlabelled=unlabelled,
                                   unlabelled_batch_size=beside or 0,
                                   shard=(ranks.rank, ranks.world) if ranks is not None else None)
    except ValueError as error:
        raise ConfigError(f"Config section 'data': {error}") from None
    loader.num_epochs = max(1, -(-training.steps // loader.steps_per_epoch))
    run_dir = Path(run_dir if run_dir is not None else config.run_dir)
    monitor = training.monitor
    if monitor is not None and only is not None and monitor.split("/", 1)[0] not in (*names, "mean"):
        monitor = None  # a single-task baseline of another task monitors its own task
    schedule = _schedule(config, names, [t.name for t in select_tasks(config, data)])
    views = _views(config, tasks, data.input_info)
    check_view_classes(views, tasks, data.input_info)
    check_language_models(config, views, tasks)
    check_views_fit(views, tasks, {**sources, **unlabelled})
    check_model_fits(config, model, tasks, {**sources, **unlabelled}, views)
    callbacks = _loggers(config)  # its own errors name their config keys
    try:
        trainer = Trainer(
            model, tasks, balancer, optimizer, loader, training.steps,
            evaluation=Evaluation(data.val, training.eval_every, monitor, training.patience,
                                  config.data.eval_batch_size),
            checkpoints=Checkpointing(run_dir, training.checkpoint_every),
            precision=training.precision, scheduler=scheduler, device=training.device,
            max_grad_norm=training.max_grad_norm, progress=training.progress, seed=config.seed,
            views=views, schedule=schedule, ranks=ranks, callbacks=callbacks,
        )
    except ValueError as error:
        raise ConfigError(f"Config section 'training': {error}") from None
    return Experiment(config, data, tasks, model, balancer, trainer, run_dir, started_from)


def save_config(config: Config, run_dir: Path) -> None:
    """Write the resolved config to ``run_dir/config.yaml`` (atomically), its ``run_dir`` the
    directory the run is in (``--run-dir`` may differ from the config's), so that the file
    trains or resumes that run and no other."""
    resolved = config.model_copy(update={"run_dir": str(run_dir)})
    atomic_write(Path(run_dir) / "config.yaml", yaml.safe_dump(resolved.model_dump(mode="json"), sort_keys=False))
