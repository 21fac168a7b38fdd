"""Auxiliary kinds by name: ``auxiliary: <kind>`` in a task's entry expands to the task it means.

The kinds of auxiliary task the MTL literature names (Ruder 2017, "An Overview of Multi-Task
Learning in Deep Neural Networks", section "Auxiliary tasks") are, in manytask, plain tasks with a role and a
target. Each entry here turns a short spec into that task; ``manytask list auxiliary`` shows
them. Kinds that read a column live in the ``table`` dataset's ``data.tasks``; the adversarial
kind in the config's ``tasks`` section. Self-supervised targets computed from the inputs
(rotation, masked cells, masked words, the autoencoder's ``reconstruct``, focusing attention's
``region``, ...) are views: see ``manytask list views``.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from typing import Any, Literal

from .._registry import OptionsError, Registry, UnknownNameError
from .._utils import did_you_mean

__all__ = ["AUXILIARY", "expand_auxiliary"]

AUXILIARY: Registry[dict[str, Any]] = Registry("auxiliary kind")

_TABLE = "data.tasks.<name> of the table dataset"
_TASKS = "tasks.<name>"


@AUXILIARY.register("hint", details={
    "paper": "Abu-Mostafa 1990, Neural Computation (hints); Yu & Jiang 2016, EMNLP", "where": _TABLE,
    "example": "{auxiliary: hint, column: age, above: 45}"})
def hint(above: float, column: str | None = None) -> dict[str, Any]:
    """A hint: whether an input column is above a threshold, predicted while the column stays an input.

    ``column`` defaults to the task's name."""
    return {"kind": "binary", "column": column, "above": above, "from_input": True, "role": "auxiliary"}


@AUXILIARY.register("quantisation_smoothing", details={
    "paper": "Ruder 2017, An Overview of Multi-Task Learning in Deep Neural Networks (auxiliary tasks: "
             "quantization smoothing)",
    "where": _TABLE, "example": "{auxiliary: quantisation_smoothing, column: income}  # beside a task with bins"})
def quantisation_smoothing(column: str | None = None) -> dict[str, Any]:
    """The continuous value of a column whose bins (``bins``) another task predicts: a smooth target.

    ``column`` defaults to the task's name."""
    return {"kind": "regression", "column": column, "role": "auxiliary"}


@AUXILIARY.register("predicting_inputs", details={
    "paper": "Caruana & de Sa 1997, NIPS (Promoting poor features to supervisors: some inputs work "
             "better as outputs)", "where": _TABLE,
    "example": "{auxiliary: predicting_inputs, column: hours}"})
def predicting_inputs(column: str | None = None,
                      kind: Literal["regression", "binary", "classification"] = "regression") -> dict[str, Any]:
    """An input column moved to the outputs: predicted as an auxiliary task, no longer read.

    ``column`` defaults to the task's name."""
    return {"kind": kind, "column": column, "role": "auxiliary", "from_input": False}


@AUXILIARY.register("privileged", details={
    "paper": "Caruana, Baluja & Mitchell 1996, NIPS (Using the future to 'sort out' the present); "
             "Vapnik & Vashist 2009, Neural Networks (learning using privileged information)", "where": _TABLE,
    "example": "{auxiliary: privileged, column: spend}  # empty in the test rows"})
def privileged(column: str | None = None,
               kind: Literal["regression", "binary", "classification"] = "regression") -> dict[str, Any]:
    """A column known only at training time, as an auxiliary target; never an input, not needed to predict.

    ``column`` defaults to the task's name."""
    return predicting_inputs(column, kind)  # the same task: what differs is when the column is known


@AUXILIARY.register("adversarial", details={
    "paper": "Ganin & Lempitsky 2015, ICML (gradient reversal, Eq. 13; the schedule of Sec. 5)",
    "where": _TASKS, "example": "{auxiliary: adversarial, reversal: 1.0}"})
def adversarial(reversal: float = 1.0, reversal_schedule: Literal["ganin", "constant"] = "ganin") -> dict[str, Any]:
    """A task the shared layers learn to defeat through a gradient reversal layer of strength ``reversal``.

    ``reversal_schedule``: Ganin's ramp from 0 (default), or constant."""
    return {"role": "adversarial", "reversal": reversal, "reversal_schedule": reversal_schedule}


def expand_auxiliary(name: str, spec: Mapping[str, Any], where: Literal["table", "tasks"],
                     section_keys: Collection[str] = ()) -> dict[str, Any]:
    """``spec`` with its ``auxiliary: <kind>`` replaced by the task that kind means.

    A spec without ``auxiliary`` comes back as it is. The kind's options are checked against its
    signature (``column`` defaults to the task's name, as for a task written out); other keys of
    the section (``section_keys``: ``metrics``, ``lr``, ...) are kept beside the task the kind
    writes, unless the kind sets them itself. A kind used in the wrong section, an unknown kind, a
    missing or unknown option, or a key the kind sets raises :class:`ValueError` naming the task
    and the fix."""
    if "auxiliary" not in spec:
        return dict(spec)
    kind = spec["auxiliary"]
    try:
        entry = AUXILIARY.get(str(kind))
    except UnknownNameError as error:
        raise ValueError(f"Task {name!r}: {error} (views such as rotation or masked_words are set with "
                         "'view:', see manytask list views)") from None
    home = entry.details["where"]
    if (where == "table") != (home == _TABLE):
        raise ValueError(f"Task {name!r}: the auxiliary kind {kind!r} belongs under {home}, not under "
                         f"{_TABLE if where == 'table' else _TASKS}.")
    example = f"e.g. {name}: {entry.details['example']}"
    parameters = inspect.signature(entry.factory).parameters
    own = {k: v for k, v in spec.items() if k in parameters}
    if "column" in parameters and "column" not in own:  # as a task written out: the column named as the task
        own["column"] = name
    rest = {k: v for k, v in spec.items() if k not in parameters and k != "auxiliary"}
    unknown = [k for k in rest if k not in section_keys]
    if unknown:
        tail = did_you_mean(unknown[0], list(dict.fromkeys([*parameters, *section_keys])), "Valid keys")
        raise ValueError(f"Task {name!r} (auxiliary: {kind}): unknown key {unknown[0]!r}.{tail} ({example})")
    try:
        checked = AUXILIARY.validate(str(kind), own)
    except OptionsError as error:
        raise ValueError(f"Task {name!r} (auxiliary: {kind}): {error} ({example})") from None
    missing = [p for p, param in parameters.items() if param.default is param.empty and p not in checked]
    if missing:
        raise ValueError(f"Task {name!r} (auxiliary: {kind}) needs {', '.join(map(repr, missing))} ({example}).")
    task = entry.factory(**checked)
    clash = [k for k in rest if k in task]
    if clash:
        raise ValueError(f"Task {name!r}: auxiliary kind {kind!r} sets {clash[0]!r} itself "
                         f"({clash[0]}: {task[clash[0]]!r}); leave it out, or write the task out in full.")
    return task | rest
