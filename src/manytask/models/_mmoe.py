"""Multi-gate mixture of experts (Ma et al., 2018): shared experts, one softmax gate per task."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import as_backbone, last_weights, output_info, task_columns
from ._base import MultiTaskModel
from ._dselect import DSelectK
from ._heads import make_head

__all__ = ["MMoE", "gate_summary"]


def _tokens(inputs: Inputs) -> Tensor:
    if isinstance(inputs, Mapping):
        if "tokens" not in inputs:
            raise ValueError(f"MMoE's gates read the token ids: dict inputs need a 'tokens' entry; got {list(inputs)}.")
        return inputs["tokens"]
    return inputs


def gate_summary(encoder: nn.Module, width: int, gate_in: int | None = None) -> nn.Module:
    r"""What a gate computes from the inputs, :math:`W x` with ``width`` outputs.

    Ma et al. (2018) gate on the input features ``x``: here the flattened inputs (size ``gate_in``,
    else the encoder's ``input_size`` or ``in_features``). When the encoder starts with an
    embedding (token ids), ``x`` is the sequence's bag of tokens, so :math:`W x` is the mean of
    the tokens' columns of ``W`` (padding left out): an ``EmbeddingBag``.
    """
    embedding = next((m for m in encoder.modules() if isinstance(m, nn.Embedding)), None)
    if embedding is not None and gate_in is None:
        return _BagGate(embedding.num_embeddings, width, embedding.padding_idx)
    size = gate_in or getattr(encoder, "input_size", None) or getattr(encoder, "in_features", None)
    if not isinstance(size, int):
        raise ValueError(f"MMoE's gates read the flattened inputs, and {type(encoder).__name__} does not say their "
                         "size: pass gate_in=<number of input features after flattening>.")
    return nn.Sequential(nn.Flatten(), nn.Linear(size, width))


class _BagGate(nn.Module):
    def __init__(self, vocab_size: int, width: int, padding_idx: int | None) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab_size, width, mode="mean", padding_idx=padding_idx)

    def forward(self, inputs: Inputs) -> Tensor:
        return self.bag(_tokens(inputs))


class MMoE(MultiTaskModel):
    r"""Multi-gate Mixture-of-Experts: shared experts mixed by one softmax gate per task.

    Ma, Zhao, Yi, Chen, Hong & Chi (2018), "Modeling Task Relationships in Multi-task Learning
    with Multi-gate Mixture-of-Experts", Eqs. 5–6:

    .. math::
        f^t(x) = \sum_{e=1}^{E} g^t(x)_e \, f_e(x), \qquad g^t(x) = \operatorname{softmax}(W_{g^t} x + b_{g^t}),

    then task ``t``'s head reads :math:`f^t(x)`. The gates have a bias :math:`b_{g^t}` (a learned
    prior over the experts) that Eq. 6 does not write; PLE's gates have one too. The experts
    :math:`f_e` are copies of the backbone (any layout: vectors, sequences, maps are mixed alike);
    the paper's are MLPs. With one expert every gate is 1 and the model is :class:`HardSharing`.

    The experts serve every task (shared parameters); gate ``t`` and head ``t`` belong to task
    ``t``. There is no single shared representation, so representation-level balancing raises;
    exact mode works. In training mode the model keeps each task's mean gate weight per expert
    (:meth:`expert_utilisation`, a buffer: it resumes with the run).

    Args:
        encoder: The backbone each expert copies (the first keeps its weights).
        tasks: The tasks; one gate and one head each.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        num_experts: ``E``.
        gate_in: Number of input features after flattening, for encoders that do not say it
            (see :func:`gate_summary`).
        gate: ``"softmax"`` (the paper's) or ``"dselect"``: :class:`DSelectK`, which selects at most
            ``k`` of the experts (Hazimeh et al. 2021; ``num_experts`` a power of 2).
        k: DSelect-k's number of selectors (default 2; refused with the softmax gate).
        gamma: DSelect-k's smooth-step width (default 1.0; refused with the softmax gate).
        entropy: DSelect-k's entropy regulariser weight (0: none); the gates of this step's tasks
            give :meth:`penalty`.

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = MMoE(MLP(4, (8,)), [Regression("a"), Regression("b")], num_experts=3)
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'a': (5, 1), 'b': (5, 1)}
        >>> tuple(model.expert_utilisation().shape)
        (2, 3)
    """

    gate_sums: Tensor  # [T, E] buffers: the sum of each task's gate weights, and
    gated_samples: Tensor  # [T] the samples they were summed over

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 num_experts: int = 4, gate_in: int | None = None, gate: str = "softmax",
                 k: int | None = None, gamma: float | None = None, entropy: float = 0.0) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("MMoE needs at least one task.")
        if num_experts < 1:
            raise ValueError(f"MMoE needs num_experts >= 1. Got {num_experts}.")
        self._heads_at_the_top(tasks, encoder)
        self.task_names = tuple(t.name for t in tasks)
        backbone = as_backbone(encoder, output_info(encoder, feature_dim))
        self.experts = task_columns(backbone, [f"expert{e}" for e in range(num_experts)])
        if gate not in ("softmax", "dselect"):
            raise ValueError(f"MMoE gate must be 'softmax' or 'dselect'. Got {gate!r}.")
        self.gate_kind = gate
        if entropy and gate != "dselect":
            raise ValueError("MMoE's entropy regulariser is DSelect-k's: set gate: dselect, or leave entropy at 0.")
        if gate != "dselect" and (k is not None or gamma is not None):
            raise ValueError("MMoE's k and gamma are DSelect-k's options: set gate: dselect, or leave them out.")
        if gate == "softmax":
            self.gates = nn.ModuleDict({t.name: gate_summary(encoder, num_experts, gate_in) for t in tasks})
        else:
            k, gamma = 2 if k is None else k, 1.0 if gamma is None else gamma
            width = DSelectK.width(num_experts, k)
            self.gates = nn.ModuleDict({t.name: DSelectK(gate_summary(encoder, width, gate_in), num_experts, k, gamma,
                                                         entropy) for t in tasks})
        self._entropy: dict[tuple[str, ...], Tensor] = {}  # DSelect-k's entropy per input group since penalty()
        self.heads = nn.ModuleDict({t.name: make_head(t, backbone.out_info) for t in tasks})
        self.register_buffer("gate_sums", torch.zeros(len(tasks), num_experts, dtype=torch.float64))
        self.register_buffer("gated_samples", torch.zeros(len(tasks), dtype=torch.float64))

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        experts = torch.stack([expert(inputs) for expert in self.experts.values()])  # [E, B, ...]
        gated = torch.stack([self.gates[t](inputs) for t in tasks], dim=1)  # [B, T', E]: logits, or DSelect-k weights
        # A training forward (with gradients: not a balancer's no-grad recompute after the step)
        # keeps its entropy term and adds to the utilisation statistics. A trainer step runs one
        # forward per input group (the batch's tasks, each view's): each group keeps its own term.
        learning = self.training and torch.is_grad_enabled()
        if learning:
            ran = [self.gates[t] for t in tasks]
            terms = [g.regulariser for g in ran if isinstance(g, DSelectK) and g.regulariser is not None]
            if terms:
                self._entropy[tuple(tasks)] = torch.stack(terms).sum()
        if self.gate_kind == "softmax":
            gated = torch.softmax(gated, dim=-1, dtype=torch.promote_types(gated.dtype, torch.float32))
        gates = gated.to(experts.dtype)
        if learning:
            rows = [self.task_names.index(t) for t in tasks]
            self.gate_sums[rows] += gates.detach().sum(0).double()
            self.gated_samples[rows] += gates.shape[0]
        flat = experts.transpose(0, 1).flatten(2)  # [B, E, F]
        mixed = torch.bmm(gates, flat).transpose(0, 1).reshape(len(tasks), *experts.shape[1:])
        return {t: self.heads[t](mixed[i]) for i, t in enumerate(tasks)}

    def penalty(self) -> Tensor | None:
        """DSelect-k's entropy term of the gates the training forwards since the last call ran,
        summed over their input groups (None without one); taken once, as the sluice network's
        constraint is. A group forwarded again before the call replaces its own term."""
        terms, self._entropy = list(self._entropy.values()), {}
        return torch.stack(terms).sum() if terms else None

    def expert_utilisation(self) -> Tensor:
        """``[T, E]``: each task's mean gate weight on each expert over the training forwards so far."""
        return (self.gate_sums / self.gated_samples.clamp(min=1)[:, None]).float()

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices of every expert's last layer (:func:`last_weights`)."""
        return [p for expert in self.experts.values() for p in last_weights(expert)]

    def diagnostics(self) -> dict[str, float]:
        """The utilisation of every expert averaged over the tasks (``expert<e>``) and, up to 64
        numbers, per task (``<task>/expert<e>``)."""
        used = self.expert_utilisation()
        out = {f"expert{e}": float(v) for e, v in enumerate(used.mean(0).tolist())}
        if used.numel() <= 64:
            out.update({f"{t}/expert{e}": float(v) for t, row in zip(self.task_names, used.tolist())
                        for e, v in enumerate(row)})
        return out

    def shared_modules(self) -> list[nn.Module]:
        return [self.experts]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.experts.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        name = self._check_tasks([name])[0]
        yield from self.gates[name].parameters()
        yield from self.heads[name].parameters()
