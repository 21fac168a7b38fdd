"""Tasks: what one head predicts, at which level, how it is scored, and which role it plays.

A task is data: a name, a level (what its mask indexes), an elementwise loss, metrics, a role
and an optional view. ``Classification``, ``Regression``, ``BinaryClassification`` and
``SequenceLabelling`` are presets: they fill the defaults and validate targets of their kind.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._crf import crf_log_likelihood_terms, crf_marginals, viterbi

__all__ = [
    "Task",
    "Classification",
    "BinaryClassification",
    "Regression",
    "SequenceLabelling",
    "TargetError",
    "LOSSES",
    "Role",
    "Level",
]

Role = Literal["main", "auxiliary", "adversarial"]
Level = Literal["sample", "token", "pixel"]
UncertaintyForm = Literal["regression", "classification"]
ElementwiseLoss = Callable[[Tensor, Tensor], Tensor]

#: Leading (entry) dimensions of a target at each level: ``[B]``, ``[B, L]``, ``[B, H, W]``.
ENTRY_DIMS: dict[str, int] = {"sample": 1, "token": 2, "pixel": 3}
_ENTRY_NAMES: dict[str, list[str]] = {
    "sample": ["batch"], "token": ["batch", "length"], "pixel": ["batch", "height", "width"],
}


class TargetError(ValueError):
    """A batch's target or mask does not fit its task (shape, dtype or value range)."""


def _rows(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Class scores ``[N, C]`` and class indices ``[N]`` (no reshape node when already flat)."""
    scores = output if output.ndim == 2 else output.reshape(-1, output.shape[-1])
    return scores, (target if target.ndim == 1 else target.reshape(-1)).long()


def _cross_entropy(output: Tensor, target: Tensor, reduction: str = "none") -> Tensor:
    return F.cross_entropy(*_rows(output, target), reduction=reduction)


def _bce(output: Tensor, target: Tensor, reduction: str = "none") -> Tensor:
    return F.binary_cross_entropy_with_logits(output, _like(target, output), reduction=reduction)


def _mse(output: Tensor, target: Tensor, reduction: str = "none") -> Tensor:
    return F.mse_loss(output, _like(target, output), reduction=reduction)


def _like(target: Tensor, output: Tensor) -> Tensor:
    return target if target.dtype == output.dtype else target.to(output.dtype)


def _l1(output: Tensor, target: Tensor, reduction: str = "none") -> Tensor:
    return F.l1_loss(output, _like(target, output), reduction=reduction)


def _huber(output: Tensor, target: Tensor, reduction: str = "none") -> Tensor:
    return F.huber_loss(output, _like(target, output), reduction=reduction)


@functools.cache
def _computes_loss_as_declared(kind: type) -> bool:
    """Whether ``kind`` computes its loss (``loss_terms``, ``entries``, ``select``,
    ``loss_target``) as the class that defines its ``stack_key`` does."""
    owner = next(c for c in kind.__mro__ if "stack_key" in vars(c))
    return all(getattr(kind, m) is getattr(owner, m) for m in ("loss_terms", "entries", "select", "loss_target"))


#: Elementwise losses by name (``reduction="none"``): ``(output entries, target entries) -> losses``.
#: Each also takes ``reduction="sum"``: the sum from the kernel itself, one autograd node less per
#: task than the elementwise losses followed by ``.sum()`` (what :meth:`Task.loss_terms` uses).
LOSSES: dict[str, ElementwiseLoss] = {
    "cross_entropy": _cross_entropy,
    "bce": _bce,
    "mse": _mse,
    "l1": _l1,
    "huber": _huber,
}
_BUILT_IN_LOSSES = dict(LOSSES)  # elementwise over any leading dimensions: stackable (Task.stack_key)


@dataclass(frozen=True)
class Task(ABC):
    """One task: a name, a level, a loss, metrics, a role and an optional view.

    The loss of a batch is the **masked sum over labelled entries divided by their count**
    (:meth:`loss_terms` returns both, so counts can be summed across micro-batches or ranks
    before dividing). An entry is a sample, a token or a pixel, by ``level``.

    Args:
        name: Key of the task in every per-task dict (targets, masks, outputs, losses).
        role: ``"main"`` tasks are the ones we care about (single-task baselines, Δm);
            ``"auxiliary"`` tasks are trained only to help the main ones; ``"adversarial"``
            tasks are learned by their head while the shared layers are trained to defeat them
            (their head reads the features through gradient reversal, Ganin & Lempitsky 2015).
        metrics: Metric names (see ``manytask.metrics``); the first is the primary metric.
        head_hidden: Width of a hidden layer in the head; 0 gives a linear head.
        head_dropout: Dropout after the head's hidden layer (needs ``head_hidden``).
        level: What the mask indexes: ``"sample"`` (``[B]``), ``"token"`` (``[B, L]``) or
            ``"pixel"`` (``[B, H, W]``); default from the preset.
        loss: Elementwise loss: a name from :data:`LOSSES` or a callable
            ``(output, target) -> per-entry losses`` (``reduction="none"``); default from the preset.
        view: Name of a registered view (``manytask.views``) whose inputs, targets and masks
            this task uses instead of the batch's (self-supervised tasks); None: the batch's.
        reversal: Gradient-reversal factor λ of an adversarial task (ignored otherwise).
        reversal_schedule: ``"ganin"`` (default): λ rises from 0 to ``reversal`` over training,
            as Ganin & Lempitsky (2015, Sec. 5) schedule it; ``"constant"``: λ throughout.
        attach_at: The backbone stage (1 = the first) whose output the head reads, for schemes
            that tap lower stages (``low_supervision``, Søgaard & Goldberg 2016); None: the last.
        reads: ``"forward"`` or ``"backward"``: the head reads only the first or second half of a
            bidirectional encoder's features (a language-modelling task that must not see its
            target, Rei 2017); ``"all"``: every feature.
        head_grid: A sample-level head on a map averages it over a ``head_grid × head_grid`` grid
            of regions and reads them all (1: the global mean; 2 keeps left from right, as
            MultiMNIST's two digits need).
    """

    name: str
    role: Role = "main"
    metrics: tuple[str, ...] = ()
    head_hidden: int = 0
    level: Level | None = field(default=None, kw_only=True)
    loss: str | ElementwiseLoss | None = field(default=None, kw_only=True)
    view: str | None = field(default=None, kw_only=True)
    reversal: float = field(default=1.0, kw_only=True)
    reversal_schedule: Literal["constant", "ganin"] = field(default="ganin", kw_only=True)
    head_dropout: float = field(default=0.0, kw_only=True)
    attach_at: int | None = field(default=None, kw_only=True)
    reads: Literal["all", "forward", "backward"] = field(default="all", kw_only=True)
    head_grid: int = field(default=1, kw_only=True)

    kind: ClassVar[str]
    uncertainty_form: ClassVar[UncertaintyForm]
    default_level: ClassVar[Level] = "sample"
    default_loss: ClassVar[str]
    #: Whether the target has a channel dimension of size ``out_features`` (dim 1 at pixel level,
    #: last otherwise) that may be left out when ``out_features == 1``.
    channelled: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "." in self.name:
            raise ValueError(f"Task name must be non-empty and contain no '/' or '.' (it names the task's head "
                             f"module and its metrics, 'task/metric'). Got {self.name!r}: name the task otherwise "
                             "(a table task reads any column: {wage_hr: {column: wage.hr}}; task ids in a "
                             "task column such as 7.0 become names: write them as 7).")
        if self.role not in ("main", "auxiliary", "adversarial"):
            raise ValueError(f"Task {self.name!r}: role must be 'main', 'auxiliary' or 'adversarial'. "
                             f"Got {self.role!r}.")
        if not 0.0 <= self.head_dropout < 1.0 or (self.head_dropout and not self.head_hidden):
            raise ValueError(f"Task {self.name!r}: head_dropout must be in [0, 1) and needs a hidden layer "
                             f"(head_hidden > 0). Got head_dropout={self.head_dropout!r}, "
                             f"head_hidden={self.head_hidden!r}.")
        if self.attach_at is not None and (isinstance(self.attach_at, bool) or self.attach_at < 1):
            raise ValueError(f"Task {self.name!r}: attach_at is a backbone stage, counted from 1. "
                             f"Got {self.attach_at!r}.")
        if self.reads not in ("all", "forward", "backward"):
            raise ValueError(f"Task {self.name!r}: reads must be 'all', 'forward' or 'backward'. Got {self.reads!r}.")
        if isinstance(self.head_grid, bool) or not isinstance(self.head_grid, int) or self.head_grid < 1:
            raise ValueError(f"Task {self.name!r}: head_grid must be an integer >= 1. Got {self.head_grid!r}.")
        if self.level is None:
            object.__setattr__(self, "level", self.default_level)
        if self.level not in ENTRY_DIMS:
            raise ValueError(f"Task {self.name!r}: level must be 'sample', 'token' or 'pixel'. Got {self.level!r}.")
        if self.loss is None:
            object.__setattr__(self, "loss", self.default_loss)
        if isinstance(self.loss, str) and self.loss not in LOSSES:
            raise ValueError(f"Task {self.name!r}: unknown loss {self.loss!r}; choose one of "
                             f"{', '.join(LOSSES)} or pass a callable (output, target) -> per-entry losses.")
        if not self.metrics:
            object.__setattr__(self, "metrics", self.default_metrics)

    @property
    @abstractmethod
    def out_features(self) -> int:
        """Size of the head's output channel dimension."""

    @property
    @abstractmethod
    def default_metrics(self) -> tuple[str, ...]:
        """Metrics used when none are given."""

    @property
    def loss_function(self) -> ElementwiseLoss:
        """The elementwise loss as a callable."""
        return LOSSES[self.loss] if isinstance(self.loss, str) else self.loss  # type: ignore[return-value]

    # ---- entries: outputs and targets with the entry dims first, channels last --------------
    def entries(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``output`` and ``target`` laid out entry-first: ``[*entry dims, channels]``.

        Pixel-level outputs ``[B, C, H, W]`` become ``[B, H, W, C]`` (likewise a channelled
        target); a single-channel output is squeezed when the target has no channel dimension.
        """
        if self.level == "pixel":
            output = output.movedim(1, -1)
            if target.ndim == ENTRY_DIMS["pixel"] + 1:
                target = target.movedim(1, -1)
        if self.channelled and target.ndim == output.ndim - 1:
            output = output.squeeze(-1)
        return output, target

    def select(self, output: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The labelled entries of ``output`` and ``target``, ``[N, *channels]`` with one row per
        entry (a sample, token or pixel). ``mask`` is a prefix of the entry dims: one flag per
        sample stands for all of its tokens or pixels (without that, ``output[mask]`` kept the
        pixel grid, and the metrics read its height as the class axis)."""
        output, target = self.entries(output, target)
        dims = ENTRY_DIMS[str(self.level)]
        if mask.ndim < dims:
            mask = mask.reshape(*mask.shape, *([1] * (dims - mask.ndim))).expand(*target.shape[:dims])
        return output[mask], target[mask]

    def loss_terms(self, output: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, int]:
        """``(sum, count)`` of the elementwise loss over the labelled entries (``mask=None``: all).

        The count counts loss elements (a sample with 3 regression outputs counts 3), so the
        mean is ``sum / count``.
        """
        if mask is None:
            output, target = self.entries(output, target)
        else:
            output, target = self.select(output, target, mask)
        target = self.loss_target(target)
        if isinstance(self.loss, str) and (self.loss == "cross_entropy" or output.shape == target.shape):
            return LOSSES[self.loss](output, target, reduction="sum"), target.numel()  # type: ignore[call-arg]
        losses = self.loss_function(output, target)
        return losses.sum(), losses.numel()

    def stack_key(self) -> tuple[object, ...] | None:
        """Tasks with equal keys may take their losses from one batched call
        (:meth:`stacked_loss_terms`); None: this task's loss is computed on its own.

        A sample-level task with a named loss has one, unless its class changes how the loss is
        computed (``loss_terms``, ``entries``, ``select``, ``loss_target``) below the class that
        defines ``stack_key``: a subclass that does so has none unless it says how to stack.
        """
        kind = type(self)
        if (not isinstance(self.loss, str) or LOSSES.get(self.loss) is not _BUILT_IN_LOSSES.get(self.loss)
                or self.level != "sample" or not _computes_loss_as_declared(kind)):
            return None
        return (kind, self.loss, self.out_features)

    def stacked_loss_terms(self, outputs: Tensor, targets: Tensor, masks: Tensor | None) -> tuple[Tensor, list[int]]:
        """:meth:`loss_terms` of ``S`` tasks with this task's :meth:`stack_key` in one call: their
        outputs ``[S, B, K]``, targets ``[S, B, ...]`` and masks ``[S, B]`` (None: all labelled)
        stacked. Returns the sums ``[S]`` and the counts.

        Unlabelled entries' targets are replaced by 0 before the loss (missing labels may be NaN or
        out of range) and their losses by 0 after it, so they add nothing to the sums nor (where the
        outputs are finite) to the gradients.
        """
        if self.channelled and targets.ndim == outputs.ndim - 1:
            outputs = outputs.squeeze(-1)
        count, batch = outputs.shape[:2]
        if masks is not None:
            labelled = masks.reshape(*masks.shape, *([1] * (targets.ndim - masks.ndim)))
            targets = torch.where(labelled, targets, 0)
        losses = self.loss_function(outputs, targets).reshape(count, batch, -1)  # [S, B, per entry]
        if masks is None:
            return losses.sum((1, 2)), [batch * losses.shape[2]] * count
        losses = torch.where(masks.unsqueeze(-1), losses, 0.0)
        return losses.sum((1, 2)), [int(n) * losses.shape[2] for n in masks.sum(1).tolist()]

    def mean_loss(self, output: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        """Mean loss over the labelled entries (the caller ensures there is at least one)."""
        total, count = self.loss_terms(output, target, mask)
        return total / count

    def _loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean loss of already-selected entries."""
        return self.loss_function(output, self.loss_target(target)).mean()

    def loss_target(self, target: Tensor) -> Tensor:
        """The target the loss compares the output with (entry-first layout)."""
        return target

    def predictions(self, output: Tensor) -> Tensor:
        """What metrics receive: probabilities for classification, values for regression."""
        return output

    # ---- validation ------------------------------------------------------------------------
    def check(self, target: Tensor, mask: Tensor) -> None:
        """Raise :class:`TargetError` naming this task if ``target``/``mask`` do not fit it."""
        if mask.dtype != torch.bool:
            raise TargetError(
                f"Task {self.name!r}: mask must be a bool tensor, got dtype {mask.dtype}. "
                "Use True where the sample has a label for this task."
            )
        self._check_target(target, mask)
        aligned = target.movedim(1, -1) if self.level == "pixel" and target.ndim == 4 else target
        if mask.ndim > ENTRY_DIMS[str(self.level)]:
            entry = "[" + ", ".join(_ENTRY_NAMES[str(self.level)]) + "]"
            per = "" if self.level == "sample" else f" or per labelled element ({entry})"
            raise TargetError(
                f"Task {self.name!r}: mask of shape {tuple(mask.shape)} flags single outputs of an entry; a mask "
                f"has one flag per sample (shape {tuple(target.shape[:1])}){per}, for all of its outputs. Split "
                "outputs labelled on different samples into tasks of their own."
            )
        if tuple(mask.shape) != tuple(aligned.shape[: mask.ndim]):
            entry = "[" + ", ".join(_ENTRY_NAMES[str(self.level)]) + "]"
            raise TargetError(
                f"Task {self.name!r}: mask of shape {tuple(mask.shape)} does not match target of "
                f"shape {tuple(target.shape)}; the mask must have one entry per sample "
                f"(shape {tuple(target.shape[:1])}) or per labelled element ({entry})."
            )
        self._check_values(aligned[mask] if mask.ndim else aligned)

    def _check_shape(self, target: Tensor, fix: str) -> None:
        """Targets have the level's entry dims, plus a channel dim of ``out_features`` if channelled."""
        base = ENTRY_DIMS[str(self.level)]
        ok = target.ndim == base and (not self.channelled or self.out_features == 1)
        if self.channelled and target.ndim == base + 1:
            channel = 1 if self.level == "pixel" else -1
            ok = target.shape[channel] == self.out_features
        if not ok:
            raise self._fail(f"targets must have shape {self._expected_shape()}, got {tuple(target.shape)}", fix)

    def _expected_shape(self) -> str:
        entry = _ENTRY_NAMES[str(self.level)]
        if not self.channelled:
            return "[" + ", ".join(entry) + "]"
        k = str(self.out_features)
        full = [*entry, k] if self.level != "pixel" else [entry[0], k, *entry[1:]]
        shape = "[" + ", ".join(full) + "]"
        return shape + (" or [" + ", ".join(entry) + "]" if self.out_features == 1 else "")

    @abstractmethod
    def _check_target(self, target: Tensor, mask: Tensor) -> None: ...

    def _check_values(self, labelled: Tensor) -> None:  # noqa: B027 (optional override)
        """Check the labelled target entries' values."""

    def _fail(self, problem: str, fix: str) -> TargetError:
        return TargetError(f"Task {self.name!r} ({self.kind}): {problem}. {fix}")


def _check_int_range(task: Task, target: Tensor, high: int, what: str) -> None:
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise task._fail(
            f"targets must be integer class indices, got dtype {target.dtype}",
            "Convert them with `.long()`.",
        )
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= high):
        raise task._fail(
            f"labelled targets must lie in [0, {high - 1}] ({what}), got values in "
            f"[{int(target.min())}, {int(target.max())}]",
            "Check the label encoding, or mark missing labels with mask=False.",
        )


@dataclass(frozen=True)
class Classification(Task):
    """Multi-class classification: logits ``[*, C]`` (``[B, C, H, W]`` per pixel), class-index targets.

    Target ``[B]`` per sample, ``[B, L]`` per token, ``[B, H, W]`` per pixel.
    """

    num_classes: int = field(default=2, kw_only=True)
    kind: ClassVar[str] = "classification"
    uncertainty_form: ClassVar[UncertaintyForm] = "classification"
    default_loss: ClassVar[str] = "cross_entropy"
    channelled: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 2:
            raise ValueError(f"Task {self.name!r}: num_classes must be >= 2, got {self.num_classes}.")

    @property
    def out_features(self) -> int:
        return self.num_classes

    @property
    def default_metrics(self) -> tuple[str, ...]:
        return ("accuracy",)

    def predictions(self, output: Tensor) -> Tensor:
        return output.softmax(dim=-1)

    def _check_target(self, target: Tensor, mask: Tensor) -> None:
        self._check_shape(target, "Pass one class index per entry (not one-hot vectors).")

    def _check_values(self, labelled: Tensor) -> None:
        _check_int_range(self, labelled, self.num_classes, f"num_classes={self.num_classes}")


@dataclass(frozen=True)
class SequenceLabelling(Classification):
    """Per-token classification: output ``[B, L, C]``, target ``[B, L]``, mask ``[B, L]``.

    With ``crf=True`` the tags of a sentence are predicted jointly by a linear-chain CRF
    (Lafferty et al. 2001; on a BiLSTM, Lample et al. 2016, Eqs. 1-2; see
    :mod:`manytask.tasks._crf`): the head outputs potentials ``[B, L, C, C]`` (emissions plus
    learned transitions), the loss is the negative log-likelihood of each sentence's labelled tags
    (unlabelled tokens summed over) divided by the labelled tokens, metrics that read sentences
    (chunk F1) get the Viterbi path, and per-token metrics and the evaluation loss the posterior
    marginals.
    """

    crf: bool = field(default=False, kw_only=True)
    kind: ClassVar[str] = "sequence_labelling"
    default_level: ClassVar[Level] = "token"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crf and (self.loss != "cross_entropy" or self.level != "token"):
            raise ValueError(f"Task {self.name!r}: crf=True is a token-level model with its own likelihood; it "
                             f"needs level 'token' and loss 'cross_entropy'. Got {self.level!r}, {self.loss!r}.")

    def loss_terms(self, output: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, int]:
        if not self.crf:
            return super().loss_terms(output, target, mask)
        labelled = mask if mask is not None else torch.ones_like(target, dtype=torch.bool)
        return crf_log_likelihood_terms(self._potentials(output), target, labelled).sum(), int(labelled.sum())

    def entries(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        if self.crf:
            output = crf_marginals(self._potentials(output))  # log-probabilities: cross-entropy is -log P(y_i)
        return super().entries(output, target)

    def predictions(self, output: Tensor) -> Tensor:
        if self.crf and output.ndim == 4:  # whole sentences: the Viterbi path, one-hot
            return F.one_hot(viterbi(self._potentials(output)), self.num_classes).float()
        return super().predictions(output)

    def _potentials(self, output: Tensor) -> Tensor:
        if output.ndim != 4 or output.shape[-2:] != (self.num_classes, self.num_classes):
            raise ValueError(f"Task {self.name!r} has crf=True and needs CRF potentials [B, L, {self.num_classes}, "
                             f"{self.num_classes}] from its head; got shape {list(output.shape)}. Build the model "
                             "with make_head (every registered scheme does).")
        return output.float()

    def _check_target(self, target: Tensor, mask: Tensor) -> None:
        if target.ndim == 2 and mask.ndim == 1:
            raise self._fail(
                f"needs a mask of shape [batch, length] (False on padding), got one flag per sentence "
                f"{tuple(mask.shape)} (a TensorSource given no mask for it makes one)",
                f"Pass masks={{{self.name!r}: tokens != padding}} to the TensorSource.",
            )
        if target.ndim != 2 or mask.ndim != 2:
            raise self._fail(
                f"targets and masks must have shape [batch, length], got target "
                f"{tuple(target.shape)} and mask {tuple(mask.shape)}",
                "Pad sequences to a common length and set mask=False on padding.",
            )


@dataclass(frozen=True)
class BinaryClassification(Task):
    """Binary or multi-label classification: ``K`` logits per entry, targets in {0, 1}.

    With ``num_labels=1`` the target may leave out the label dimension (``[B]`` per sample).
    """

    num_labels: int = field(default=1, kw_only=True)
    kind: ClassVar[str] = "binary"
    uncertainty_form: ClassVar[UncertaintyForm] = "classification"
    default_loss: ClassVar[str] = "bce"

    @property
    def out_features(self) -> int:
        return self.num_labels

    @property
    def default_metrics(self) -> tuple[str, ...]:
        return ("auroc", "accuracy")

    def predictions(self, output: Tensor) -> Tensor:
        return output.sigmoid()

    def _check_target(self, target: Tensor, mask: Tensor) -> None:
        self._check_shape(target, "Pass one 0/1 value per label and set num_labels to the number of labels.")

    def _check_values(self, labelled: Tensor) -> None:
        if labelled.numel() and not bool(((labelled == 0) | (labelled == 1)).all()):
            raise self._fail("labelled targets must be 0 or 1",
                             "Binarise the labels, or mark missing ones with mask=False.")


@dataclass(frozen=True)
class Regression(Task):
    """Regression with ``K`` outputs per entry: output ``[B, K]`` (``[B, K, H, W]`` per pixel)."""

    num_outputs: int = field(default=1, kw_only=True)
    target_mean: tuple[float, ...] | None = field(default=None, kw_only=True)
    target_std: tuple[float, ...] | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "regression"
    uncertainty_form: ClassVar[UncertaintyForm] = "regression"
    default_loss: ClassVar[str] = "mse"

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.target_mean is None) != (self.target_std is None):
            raise ValueError(f"Task {self.name!r}: give both target_mean and target_std, or neither.")
        for stats in (self.target_mean, self.target_std):
            if stats is not None and len(stats) != self.num_outputs:
                raise ValueError(f"Task {self.name!r}: target_mean/target_std need {self.num_outputs} values "
                                 f"(one per output), got {len(stats)}.")
        if self.target_std is not None and not all(s > 0 for s in self.target_std):
            raise ValueError(f"Task {self.name!r}: target_std must be > 0, got {self.target_std}.")

    @property
    def out_features(self) -> int:
        return self.num_outputs

    def loss_target(self, target: Tensor) -> Tensor:
        """``(target - mean) / std`` when the task was standardised: the head predicts that."""
        if self.target_mean is None:
            return target
        mean, std = self._stats(target)
        return (target - mean) / std

    def stack_key(self) -> tuple[object, ...] | None:
        """As :meth:`Task.stack_key`; a standardised task (its own mean and std) has none."""
        return super().stack_key() if self.target_mean is None else None

    def predictions(self, output: Tensor) -> Tensor:
        """Values on the targets' original scale (the head predicts standardised ones)."""
        if self.target_mean is None:
            return output
        mean, std = self._stats(output)
        return output * std + mean

    @property
    def default_metrics(self) -> tuple[str, ...]:
        return ("rmse", "mae")

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std broadcastable over entry-first values ``[..., K]`` (or ``[...]`` if K = 1)."""
        mean = torch.tensor(self.target_mean, dtype=like.dtype, device=like.device)
        std = torch.tensor(self.target_std, dtype=like.dtype, device=like.device)
        return (mean.squeeze(0), std.squeeze(0)) if self.num_outputs == 1 else (mean, std)

    def _check_target(self, target: Tensor, mask: Tensor) -> None:
        if not target.is_floating_point():
            raise self._fail(f"targets must be floating point, got dtype {target.dtype}",
                             "Convert them with `.float()`.")
        self._check_shape(target, "Set num_outputs to the number of target columns.")

    def _check_values(self, labelled: Tensor) -> None:
        if labelled.numel() and not bool(torch.isfinite(labelled).all()):
            raise self._fail("labelled targets contain NaN or inf", "Mark missing values with mask=False.")
