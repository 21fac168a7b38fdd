"""Checks run while a run is built, before anything is written or trained: what would otherwise
fail at the first step, the first evaluation or some later batch is a config error, named."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .._registry import UnknownNameError
from ..config import Config, ConfigError
from ..data import TensorSource
from ..metrics import METRICS, create_metric
from ..models import MultiTaskModel
from ..tasks import Classification, Task
from ..views import NeighbourWord, View

__all__ = ["check_language_models", "check_metrics", "check_model_fits", "check_view_classes", "check_views_fit"]


def _fits(metric: str, task: Task) -> bool:
    try:
        create_metric(metric, task)
    except (ValueError, UnknownNameError):
        return False
    return True


def check_metrics(task: Task) -> None:
    """Each of the task's metrics exists and applies to its kind: known before training, not
    at the first evaluation."""
    for metric in task.metrics:
        if not _fits(metric, task):
            valid = [m for m in METRICS.names() if _fits(m, task)]
            problem = (f"unknown metric {metric!r}" if metric not in METRICS.names()
                       else f"metric {metric!r} does not apply to a {task.kind} task")
            raise ConfigError(f"Task {task.name!r}: {problem}. Its metrics can be: {', '.join(valid)}.")


def check_views_fit(views: Mapping[str, View], tasks: Sequence[Task], sources: Mapping[str, Any]) -> None:
    """Apply each view to two training rows, so that a view the dataset's inputs do not fit (an
    image view on a table) is a config error before training, not a crash at its first step."""
    if not views or not sources:
        return
    source = next(iter(sources.values()))
    sample = source.batch(torch.arange(min(2, len(source))))
    for name, view in views.items():
        try:
            viewed = view(sample.inputs, generator=torch.Generator().manual_seed(0))
        except (ValueError, TypeError) as error:
            readers = ", ".join(t.name for t in tasks if t.view == name)
            raise ConfigError(f"Config section 'tasks.{readers}': view {name!r} cannot read the inputs of dataset "
                              f"{source.name!r}: {error}") from None
        for task in (t for t in tasks if t.view == name):  # its target must fit the task's outputs
            try:
                task.check(viewed.target, viewed.mask)
            except (ValueError, TypeError) as error:
                raise ConfigError(f"Config section 'tasks.{task.name}': the targets view {name!r} makes do not fit "
                                  f"the task: {error} Set the task's kind, level and num_outputs (or num_classes) "
                                  "to what the view predicts.") from None


def check_model_fits(config: Config, model: MultiTaskModel, tasks: Sequence[Task], sources: Mapping[str, Any],
                     views: Mapping[str, View] | None = None) -> None:
    """Run the model on two training rows (eval mode, no gradient, the random state kept), and
    each view's tasks on its view of them, so that an encoder that cannot read the dataset's
    inputs (a CNN on a table, a wrong in_features or gate_in) or a view's (next_sentence's pairs
    longer than a transformer's max_length, a mask_index beyond the vocabulary) is a config error
    before anything is written, not a crash at the first step."""
    source = next((s for s in sources.values() if isinstance(s, TensorSource) and len(s)), None)
    if source is None:
        return
    sample = source.batch(torch.arange(min(2, len(source))))
    names = [t.name for t in tasks if t.view is None]
    training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()
            if names:
                outputs = _forward(config, model, sample.inputs, names, None)
                _check_pixel_sizes(config, tasks, outputs, sample.targets)
            for view_name, view in (views or {}).items():
                readers = [t.name for t in tasks if t.view == view_name]
                if readers:
                    viewed = view(sample.inputs, generator=torch.Generator().manual_seed(0))
                    outputs = _forward(config, model, viewed.inputs, readers, view_name)
                    _check_pixel_sizes(config, tasks, outputs, dict.fromkeys(readers, viewed.target))
    finally:
        model.train(training)


def _check_pixel_sizes(config: Config, tasks: Sequence[Task], outputs: Mapping[str, Tensor],
                       targets: Mapping[str, Tensor]) -> None:
    """A pixel-level task's maps must have its targets' height and width (a CNN whose stages halve
    the size gives smaller maps for images whose sides the halvings do not divide)."""
    for task in tasks:
        out, target = outputs.get(task.name), targets.get(task.name)
        if task.level != "pixel" or out is None or target is None or out.shape[-2:] == target.shape[-2:]:
            continue
        got, want = "x".join(map(str, out.shape[-2:])), "x".join(map(str, target.shape[-2:]))
        raise ConfigError(f"Config section 'tasks.{task.name}': a pixel-level task, but {config.model.name!r} with "
                          f"encoder {config.model.encoder.name!r} gives {got} maps for its {want} targets. An encoder "
                          "that halves the size at each stage needs images whose sides the halvings divide (the cnn: "
                          "a multiple of 4); resize or pad the images, or choose an encoder that keeps the size.")


def _forward(config: Config, model: MultiTaskModel, inputs: Any, names: list[str],
             view: str | None) -> dict[str, Tensor]:
    try:
        return model(inputs, names)
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        first = str(error).strip().splitlines()[0]
        if view is not None:
            raise ConfigError(f"Config section 'views.{view}': {config.model.name!r} with encoder "
                              f"{config.model.encoder.name!r} cannot read the inputs view {view!r} makes ({first}). "
                              "Check the view's options (an index beyond the vocabulary) and the encoder's limits "
                              "(a transformer's max_length must hold the view's sequences).") from None
        raise ConfigError(f"Config section 'model': {config.model.name!r} with encoder {config.model.encoder.name!r} "
                          f"cannot read the inputs of dataset {config.data.name!r} ({first}). Choose an encoder for "
                          "these inputs (manytask list encoders), and leave input sizes (in_features, vocab_size, "
                          "gate_in, ...) unset: they come from the dataset.") from None


def check_view_classes(views: Mapping[str, View], tasks: Sequence[Task], input_info: Mapping[str, Any]) -> None:
    """A classification task with fewer classes than the class ids its view's targets take is
    refused before training (a few sample rows may not show it; a later step would crash)."""
    for task in tasks:
        view = views.get(task.view) if task.view is not None else None
        count = view.classes(input_info) if view is not None else None
        if isinstance(task, Classification) and count is not None and task.num_classes < count:
            predict = " (or lower the view's predict)" if getattr(view, "predict", None) is not None else ""
            raise ConfigError(f"Config section 'tasks.{task.name}': view {task.view!r} makes targets with {count} "
                              f"class ids, but the task has num_classes {task.num_classes}; set num_classes: "
                              f"{count}{predict}.")


def check_language_models(config: Config, views: Mapping[str, View], tasks: Sequence[Task]) -> None:
    """A next_word (previous_word) task must not read features that have seen its target (Rei
    2017): the forward (backward) half of the first BiLSTM layer. Anything else trains a head that
    copies the neighbour from its inputs, silently (test accuracy 0.97 against 0.27 on CoNLL-2000).
    A user's encoder is not checked: whether it reads ahead is not known here."""
    encoder = config.model.encoder
    layers = int(encoder.options().get("layers", 1))
    for task in tasks:
        view = views.get(task.view) if task.view is not None else None
        if not isinstance(view, NeighbourWord):
            continue
        need = "forward" if view.direction == "next" else "backward"
        if encoder.name == "transformer":
            problem = ("the transformer's attention gives every position features that have read the whole "
                       "sentence; use encoder bilstm")
        elif encoder.name != "bilstm":  # a user's encoder: whether it reads ahead is not known here
            continue
        elif task.reads != need:
            problem = (f"reads: {task.reads} includes the half that has read the {view.direction} word; "
                       f"set reads: {need}")
        elif layers > 1 and (task.attach_at is None or task.attach_at > 2):
            problem = (f"above the first of {layers} BiLSTM layers the {need} half has read the other direction's "
                       "states; set attach_at: 2 (model low_supervision)")
        else:
            continue
        raise ConfigError(f"Config section 'tasks.{task.name}': view {task.view!r} makes the {view.direction} word "
                          f"the target, and this head would see it in its inputs: {problem}.")
