"""The backward engine: the one place that calls ``backward``.

It runs the model the way the balancer needs, turns the per-task loss sums and counts into
losses, computes what the balancer declares it needs (the losses, the Gramian of the per-task
gradients, or their Jacobian), and backpropagates once. It owns loss scaling (AMP) and the point
where per-task sums and counts would be reduced across ranks.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchjd.autogram import Engine as GramianEngine

from .._utils import index_tensor, one_blas_thread
from ..balancing import Balancer, GramianBalancer, JacobianBalancer, LossBalancer
from ..data import Inputs
from ..models import HardSharing, MultiTaskModel
from ..models._hard_sharing import linear_parameters
from ..tasks import Columns
from ._distributed import Ranks
from ._linear_gramian import LinearGramian, UnsupportedTrunk, linear_layers

__all__ = ["BackwardEngine", "NonFiniteError", "batched_vjps"]

log = logging.getLogger("manytask")

#: Modules left to the Jacobian path: functorch has no batching rule for the LSTM's backward
#: (autogram would run vmap's per-row fallback, with a warning, on every step).
_UNHOOKABLE = (nn.RNNBase,)

#: The autogram engine of each model, held weakly: it hooks the shared modules, so backward
#: engines alive at once share it (never hooked twice), and its hooks go with the last of them
#: (torchjd removes them when the engine is freed); otherwise every later forward of the model,
#: under any balancer, would run the hooks and keep their graph edges.
_GRAMIAN_ENGINES: weakref.WeakKeyDictionary[nn.Module, tuple[list[tuple[int, bool]], weakref.ref[GramianEngine]]] = (
    weakref.WeakKeyDictionary())


class NonFiniteError(FloatingPointError):
    """A loss, the weighted total or the gradient became NaN or infinite; nothing was applied."""


class BackwardEngine:
    """Runs the forward and the one backward of a training step for ``balancer``.

    - ``needs == "losses"``: one backward of the balancer's total ``sum_i w_i L_i (+ reg)``.
    - The model's ``penalty()`` (soft sharing), if any, is backpropagated after the balanced
      update, under the same loss scale, and checked with it.
    - ``needs == "gramian"``: the Gramian of the present tasks' gradients — exact (w.r.t. all
      shared parameters, never the ``T x P`` Jacobian: for trunks of ``nn.Linear``/``nn.Conv2d`` layers from
      their inputs and per-task output gradients, which also give the update without a second
      trunk backward (:mod:`._linear_gramian`); otherwise from torchjd's autogram engine),
      at the shared representation, or over the last shared layer's weight — then one ordinary
      backward. Aggregators give each head the plain gradient of its own loss: the heads read a
      detached copy of the features per task, so one ordinary backward through the heads gives
      every head its gradient and leaves the per-task feature gradients ``J_z [T', *z]`` (on
      hard sharing with plain ``nn.Linear`` heads and no hooks: the heads as one matmul on one
      copy, and ``J_z,i = C_i W_i`` from the joint output's gradient, one batched matmul); the
      exact Gramian is that of ``v_i = <J_z,i, z>`` (whose gradient w.r.t. the shared parameters
      is task i's), so autogram's batched pass runs through the trunk only; finally the trunk
      gets ``z.backward(sum_i w_i J_z,i)``. At the representation level with linear heads on
      vector features, the Gramian and the trunk's update come from ``C`` and the heads' weights
      and ``J_z`` is never formed. The T×T solves run on one BLAS thread (:func:`one_blas_thread`).
    - ``needs == "jacobian"``: the Jacobian ``[T', P]`` of the shared parameters (one vmapped
      backward, :func:`_jacobian`), the balancer's update written to their ``.grad``, the heads'
      plain gradients; at ``level="representation"`` the Jacobian ``[T', B·D]`` w.r.t. the shared
      features, whose update is backpropagated through the trunk.

    Where neither engine can follow the model's shared modules (none declared, a parameter
    outside those layers and a module autogram does not support, a layer output changed in
    place), the exact Gramian comes from the Jacobian instead; each fallback logs one line.

    Across data-parallel ``ranks`` (see :mod:`._distributed`) the losses are means over the
    global batch (sums and counts all-reduced; each rank backpropagates its own share), the
    model's gradients are summed over the ranks, a gradient method's Gramian is the global
    batch's — at the representation level the sum of the ranks' ``[T, T]`` Gramians, at the
    exact and last-shared levels ``J Jᵀ`` of the all-reduced per-task gradients ``J`` ``[T, P]`` —
    and the model's penalty is averaged. Every rank then holds the same gradients as one
    process on the union of the ranks' batches. Jacobian methods at the representation level
    are refused across ranks.

    Args:
        model: The model being trained.
        balancer: The balancing method.
        scaler: An AMP gradient scaler (float16), or None.
        ranks: The data-parallel ranks, or None in one process.
    """

    def __init__(self, model: MultiTaskModel, balancer: Balancer,
                 scaler: torch.amp.GradScaler | None = None, ranks: Ranks | None = None) -> None:
        self.model = model
        self.balancer = balancer
        self.scaler = scaler
        self.ranks = ranks
        self.gramian_engine: GramianEngine | None = None
        self.linear_gramian: LinearGramian | None = None
        self._last_layer: LinearGramian | None = None  # last_shared level: W's Gramian, no update
        self._hook_next_step = False
        # what the exact Gramian's route was chosen for: the shared modules' ids, their parameters and
        # which of those train (None: not planned, or the run fell back to the Jacobian for good)
        self._planned: tuple[list[int], list[nn.Parameter], list[bool]] | None = None
        self._verified = False  # the linear-layer engine is checked against autograd on the first step
        self._checked_engine: GramianEngine | None = None  # the autogram engine checked against the Jacobian
        self._forward_dtype: torch.dtype | None = None  # the autocast dtype of the step's forward, if any
        self._nothing_shared_logged = False
        self._global_grads: set[int] = set()  # this step: parameters whose gradient is global already
        self.present = torch.zeros(0, dtype=torch.bool)  # the last step's present tasks, over every rank
        self.overflowed = False  # the last step's per-task gradients overflowed float16 (see _overflow)
        aggregating = balancer.needs != "losses"
        if aggregating and not any(p.requires_grad for p in model.shared_parameters()):
            raise ValueError(f"{balancer} combines the gradients of shared parameters, but "
                             f"{type(model).__name__} shares none; use a loss weighting such as 'ew'.")
        if balancer.level == "representation" and not model.has_features:
            raise ValueError(f"{balancer} needs the model's shared features, but {type(model).__name__} "
                             "has none; use level='exact'.")
        if isinstance(balancer, JacobianBalancer) and scaler is not None:
            raise ValueError(f"{balancer} writes its update past the loss scaler; train it in float32 "
                             "or bfloat16 (precision: '32' or 'bf16'), not '16'.")
        if ranks is not None and isinstance(balancer, JacobianBalancer) and balancer.level == "representation":
            raise ValueError(f"{balancer} needs the whole batch's feature Jacobian, which is spread over the "
                             f"{ranks.world} ranks; use level='exact' (its per-task gradients are all-reduced).")
        self.split_heads = aggregating and model.has_features
        # across ranks the Gramian comes from all-reduced per-task gradients instead (see above)
        if ranks is None and balancer.needs == "gramian" and balancer.level == "exact":
            self._plan_exact_gramian(model.shared_modules())
        if balancer.level == "last_shared" and self.split_heads and ranks is None:
            self._last_layer = self._last_linear_layer()
        self._position = {name: i for i, name in enumerate(balancer.task_names)}
        # (tasks, features, a detached leaf per task, or one for all linear heads)
        self._groups: list[tuple[list[str], Tensor, list[Tensor]]] = []
        # per group read by linear heads as one map: their joint output [..., ΣK], whose gradient is
        # C = [C_1 … C_T], their stacked weight [ΣK, D] and the heads (None: a detached copy per head)
        self._linear: list[tuple[Tensor, Tensor, list[nn.Linear]] | None] = []
        self._blocks: dict[tuple[tuple[int, ...], torch.dtype, torch.device], tuple[Tensor, Tensor | None]] = {}
        # Gradient methods on hard sharing: a step whose heads are all plain nn.Linear maps (checked
        # every step) runs them as one matmul on one detached copy of the features; at the
        # representation level the Gramian then comes from their output gradients and weights, never
        # the [T', B, D] feature gradients (_linear_heads_step)
        linear_route = self.split_heads and isinstance(model, HardSharing)
        self._hard_sharing: HardSharing | None = model if linear_route else None  # type: ignore[assignment]
        self._factorised = (isinstance(balancer, GramianBalancer) and balancer.level == "representation"
                            and ranks is None)
        # the model's parameters, listed once (a walk of a School model's 280 takes ~290 µs a step)
        self.model_parameters = list(model.parameters())
        self._parameters = [*self.model_parameters, *balancer.parameters()]
        # Losses are checked before a balancer that keeps state or reads gradients sees them; for a
        # stateless loss weighting the one check after the backward covers them too.
        self._check_first = balancer.stateful or balancer.needs != "losses"
        self._counts_seen: tuple[Tensor, int] | None = None  # (counts, their version) of the last step
        self._flag: tuple[Tensor, Tensor] | None = None  # the non-finite check's (found, scale 1)
        self._present_divisor = (torch.zeros(0, dtype=torch.bool), torch.zeros(0))

    def _plan_exact_gramian(self, modules: list[nn.Module], *, again: bool = False) -> None:
        """Choose the exact Gramian's route for the shared ``modules`` as they are now: the
        linear-layer engine, else torchjd's autogram, else the Jacobian (each fallback logged).
        Chosen ``again`` by :meth:`begin_step` when the modules or which of their parameters train
        change: autogram hooks only the layers that train, and the linear-layer engine covers only
        them, so either would otherwise leave a newly shared or unfrozen layer out of the Gramian.
        The engine chosen is checked against autograd on its first step, as at the start."""
        params = [p for m in modules for p in m.parameters()]
        self._planned = ([id(m) for m in modules], params, [p.requires_grad for p in params])
        self.gramian_engine = self._checked_engine = self.linear_gramian = None  # (unhooks the old modules)
        self._verified = False
        if again and not any(self._planned[2]):  # nothing shared trains any more: no Gramian (backward says so)
            return
        layers, reason = linear_layers(modules)
        if reason is None:
            self.linear_gramian = LinearGramian(layers)
            return
        log.info("manytask: exact Gramian of %s on %s without the linear-layer engine (%s).",
                 self.balancer, type(self.model).__name__, reason)
        self.gramian_engine = self._make_gramian_engine()

    def _plan_is_stale(self) -> bool:
        """The shared modules, or which of their parameters train, changed since the route was chosen."""
        if self._planned is None:
            return False
        ids, params, trains = self._planned
        return ids != [id(m) for m in self.model.shared_modules()] or trains != [p.requires_grad for p in params]

    def _make_gramian_engine(self) -> GramianEngine | None:
        modules = self.model.shared_modules()
        reason = "it declares no shared_modules()"
        unhookable = [m for root in modules for m in root.modules() if isinstance(m, _UNHOOKABLE)]
        if unhookable:
            reason = f"it contains {type(unhookable[0]).__name__}, whose backward vmap cannot batch"
        elif not self.model.hookable:
            reason = "its shared parameters are used outside their modules' forward"
        elif modules:
            key = [(id(p), p.requires_grad) for m in modules for p in m.parameters()]  # autogram hooks what trains
            cached = _GRAMIAN_ENGINES.get(self.model)
            shared = cached[1]() if cached is not None and cached[0] == key else None
            if shared is not None:
                return shared  # its hooks are on the modules already: never hook twice
            try:
                engine = GramianEngine(*modules, batch_dim=None)
                _GRAMIAN_ENGINES[self.model] = (key, weakref.ref(engine))
                return engine
            except (ValueError, TypeError) as error:
                reason = str(error).split(". ")[0]
        log.info("manytask: exact Gramian of %s from the Jacobian (autogram cannot hook %s: %s).",
                 self.balancer, type(self.model).__name__, reason)
        return None

    def _last_linear_layer(self) -> LinearGramian | None:
        """The Gramian engine of the last shared layer when that is one ``nn.Linear`` weight."""
        weights = self.model.last_shared_parameters()
        layers = [m for root in self.model.shared_modules() for m in root.modules()
                  if isinstance(m, nn.Linear) and len(weights) == 1 and m.weight is weights[0]]
        return LinearGramian(layers[:1], with_bias=False) if layers else None

    # -----------------------------------------------------------------------------------------
    def begin_step(self) -> None:
        """Forget the previous step's forward, and any forward since (a user's probe)."""
        self._groups, self._linear = [], []
        for engine in (self.linear_gramian, self._last_layer):
            if engine is not None:
                engine.clear()
        if self.gramian_engine is not None:
            _forget_recorded_forwards(self.gramian_engine)
        if self._hook_next_step:
            self._hook_next_step = False
            self.gramian_engine = self._make_gramian_engine()
        elif self._plan_is_stale():  # adaptive sharing widened, a resume loaded a wider tree, a layer was unfrozen
            self._plan_exact_gramian(self.model.shared_modules(), again=True)

    def forward(self, inputs: Inputs, tasks: Sequence[str]) -> dict[str, Tensor]:
        """Outputs of ``tasks``, computed the way the balancer needs them (call once per input
        group of a step, after :meth:`begin_step`)."""
        for engine in (self.linear_gramian, self._last_layer):
            if engine is not None:
                engine.record()
        device = self.model_parameters[0].device.type if self.model_parameters else "cpu"
        self._forward_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        level_needs_features = self.balancer.needs != "losses" and self.balancer.level == "representation"
        if not (self.split_heads or level_needs_features):
            return self.model(inputs, tasks)
        features = self.model.features(inputs)
        names = sorted(tasks, key=self._position.__getitem__)
        heads = self._plain_linear_heads(names)
        if heads is not None:  # the heads as one matmul on one detached copy of the features
            leaves = [features.detach().requires_grad_()]
            joint, weight, outputs = _linear_heads(leaves[0], names, heads)
            self._linear.append((joint, weight, heads))
        else:  # a copy per head: one backward gives each task's own feature gradient
            leaves = [features.detach().requires_grad_() for _ in names]  # views of z: no copy
            outputs = {t: self.model.forward_heads(z, [t])[t] for t, z in zip(names, leaves)}
            self._linear.append(None)
        self._groups.append((names, features, leaves))
        return outputs

    def _plain_linear_heads(self, names: list[str]) -> list[nn.Linear] | None:
        """The heads of ``names`` where the linear-head route applies to them: every one a plain
        ``nn.Linear`` (``y = z Wᵀ + b`` exactly) with no hooks to run; else None."""
        if self._hard_sharing is None:
            return None
        heads = self._hard_sharing.heads_of(names)
        linear = [h for h in heads if type(h) is nn.Linear]
        return linear if len(linear) == len(heads) and not _calls_hooks(heads) else None

    def task_gradients(self, losses: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
        """``[k, *p.shape]`` per tensor ``p`` of ``params``: each of the ``k`` losses' gradient
        through this step's graph (zeros where a loss does not reach ``p``), ``.grad`` untouched
        and the graph kept for the step's backward. Where the heads read detached copies of the
        shared features (gradient methods), it goes on through the features by the chain rule."""
        if not self._groups:
            return batched_vjps([losses], [torch.eye(len(losses), device=losses.device)], params)
        per_group = self.task_feature_gradients(losses)
        return batched_vjps([z for _, z, _ in self._groups], per_group, params)

    def task_feature_gradients(self, losses: Tensor) -> list[Tensor]:
        """Per input group, ``[k, *z]``: each loss's gradient w.r.t. the group's shared features,
        where the heads read detached copies of them (empty list otherwise)."""
        if not self._groups:
            return []
        leaves = [leaf for _, _, group in self._groups for leaf in group]
        grads = iter(batched_vjps([losses], [torch.eye(len(losses), device=losses.device)], leaves))
        return [torch.stack([next(grads) for _ in group]).sum(0) for _, _, group in self._groups]

    # -----------------------------------------------------------------------------------------
    def backward(self, sums: Tensor, counts: Tensor, *, step: int) -> tuple[Tensor, Tensor]:
        """Backpropagate the losses ``sums / counts`` (``[T]``; count 0 = task absent).

        Returns ``(losses, weights)``, both ``[T]`` and detached (absent tasks: loss 0, weight 0).
        Raises :class:`NonFiniteError` before anything is applied if a loss, the weighted total
        or the gradient is not finite.
        """
        sums, counts = self.reduce(sums, counts)
        present, divisor = self._present_and_divisor(counts)
        self.present = present
        self.overflowed = False
        losses = sums / divisor
        if self._check_first and not bool(torch.isfinite(losses.detach()).all()):
            self._check_finite(losses.detach(), present, torch.zeros_like(losses))
        # The model's penalty comes first where it can: it may read this step's activations (a
        # sluice network's subspaces), whose graph the losses' backward frees. On the split-heads
        # route it comes last, since that route rescales the heads' gradients by the weights.
        penalty = self.model.penalty()
        if penalty is not None and self.ranks is not None:  # every rank adds its own: their mean
            penalty = penalty / self.ranks.world
        penalty_first = penalty is not None and not self.split_heads
        self._global_grads = set()
        if penalty_first:
            self._backward(penalty, retain_graph=True)  # type: ignore[arg-type]
        balancer = self.balancer
        if isinstance(balancer, LossBalancer):
            total, weights = balancer.total(losses, present, step=step)
            self._backward(total)
        elif not any(p.requires_grad for p in self.model.shared_parameters()):
            # a growing scheme split every stage (adaptive sharing): nothing to combine
            if not self._nothing_shared_logged:
                log.info("manytask: %s shares no parameter any more; %s backpropagates each task's loss "
                         "with weight 1.", type(self.model).__name__, balancer)
                self._nothing_shared_logged = True
            weights = present.to(losses.dtype)
            self._backward((weights * losses).sum())
        else:
            index = present.nonzero().flatten()
            if isinstance(balancer, JacobianBalancer):
                weights = self._jacobian_step(balancer, losses, present, index, step)
            elif (self._factorised and len(self._linear) == 1 and self._linear[0] is not None
                  and self._groups[0][1].ndim == 2):
                assert isinstance(balancer, GramianBalancer)
                weights = self._linear_heads_step(balancer, losses, present, index, step)
            elif self.split_heads:
                assert isinstance(balancer, GramianBalancer)
                feature_grads = self._heads_backward(losses[index])  # per group: [T'_g, *z]
                gramian, direct = self._split_gramian(feature_grads)
                if self._overflow(gramian):  # (the linear-layer engine forgets the step at the next begin_step)
                    weights = torch.zeros_like(losses)
                else:
                    present_weights = self._solve(balancer, gramian, losses, present, step)
                    weights = torch.zeros_like(losses).index_put((index,), present_weights.detach().to(losses))
                    if direct:  # the linear-layer engine writes the trunk's update from what it kept
                        assert self.linear_gramian is not None
                        scale = self.scaler.get_scale() if self.scaler is not None else 1.0
                        self.linear_gramian.apply(self.linear_gramian.updates(present_weights.detach(), scale))
                    else:
                        self._trunk_backward(feature_grads, weights)
                    if balancer.scales_heads:  # each head had its own loss's plain gradient: now w_i times it
                        self._scale_heads(index, present_weights.detach())
            else:
                assert isinstance(balancer, GramianBalancer)
                gramian = self._gramian(losses[index])
                weights = torch.zeros_like(losses)
                if not self._overflow(gramian):
                    present_weights = self._solve(balancer, gramian, losses, present, step)
                    weights = weights.index_put((index,), present_weights.detach().to(losses))
                    self._weighted_backward(losses, weights)
        if penalty is not None and not penalty_first:  # under the same loss scale as the losses
            self._backward(penalty)
        if self.ranks is not None:
            self.ranks.reduce_gradients([p for p in self.model_parameters
                                         if p.requires_grad and id(p) not in self._global_grads])
        self._check_finite(losses.detach(), present, weights.detach(), penalty)
        return losses.detach(), weights.detach()

    def _present_and_divisor(self, counts: Tensor) -> tuple[Tensor, Tensor]:
        """``counts > 0`` and ``counts`` clamped to at least 1, kept while the same counts tensor
        comes back unchanged (the trainer hands the same one whenever the layout repeats)."""
        seen = self._counts_seen
        if seen is None or seen[0] is not counts or seen[1] != counts._version:
            self._counts_seen = counts, counts._version
            self._present_divisor = counts > 0, counts.clamp(min=1)
        return self._present_divisor

    @staticmethod
    def _solve(balancer: GramianBalancer, gramian: Tensor, losses: Tensor, present: Tensor, step: int) -> Tensor:
        """The balancer's weights ``[T']`` from the present tasks' Gramian, its NumPy/SciPy solves
        on one BLAS thread (:func:`one_blas_thread`)."""
        with one_blas_thread():
            return balancer.gramian_weights(gramian, losses.detach(), present, step=step)

    def _overflow(self, gramian: Tensor) -> bool:
        """Under the float16 loss scaler, whether the per-task gradients overflowed (the Gramian is
        not finite). Then the balancer is not asked (its state stays), nothing reaches the trunk, and
        the trainer skips the step and lowers the scale, as the scaler does for overflowing gradients."""
        self.overflowed = self.scaler is not None and not bool(torch.isfinite(gramian).all())
        return self.overflowed

    def reduce(self, sums: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """Per-task loss sums and counts summed over the ranks (identity in one process). The
        returned sums hold the global values but carry the gradient of this rank's own sums, so
        that ``sums / counts`` backpropagates this rank's share of the global mean."""
        if self.ranks is None:
            return sums, counts
        both = torch.stack([sums.detach().float(), counts.float()])
        self.ranks.all_reduce(both)
        # the global value exactly (x - x is 0), so every rank holds the same losses bit for bit
        # (sums + (global - sums) rounds differently on each rank)
        return both[0].to(sums.dtype) + (sums - sums.detach()), both[1].to(counts.dtype)

    def _backward(self, total: Tensor, retain_graph: bool = False, inputs: Sequence[Tensor] | None = None) -> None:
        if not total.requires_grad:  # a rank whose share of the batch trains nothing this step
            return
        (self.scaler.scale(total) if self.scaler is not None else total).backward(retain_graph=retain_graph,
                                                                                  inputs=inputs)

    def _weighted_backward(self, losses: Tensor, weights: Tensor) -> None:
        """The shared parameters get ``Σ_i w_i ∇L_i``; every other parameter (a task's head,
        attention or gate) the plain gradient of its own loss, as on the split-heads route, unless
        the balancer scales the heads (GradNorm): then everything gets the weighted sum."""
        if self.balancer.scales_heads:
            self._backward((weights * losses).sum())
            return
        shared_ids = {id(p) for p in self.model.shared_parameters()}
        trainable = [p for p in self.model_parameters if p.requires_grad]
        shared = [p for p in trainable if id(p) in shared_ids]
        own = [p for p in trainable if id(p) not in shared_ids]
        self._backward((weights * losses).sum(), retain_graph=bool(own), inputs=shared)
        if own:
            self._backward(losses.sum(), inputs=own)

    def _global_gramian(self, values: Tensor) -> Tensor:
        """``J Jᵀ`` of the all-reduced Jacobian ``J`` of ``values`` (this rank's share of each
        present task's loss, or of its probe) w.r.t. the shared parameters (the last shared ones
        for GradNorm's level): the global batch's Gramian."""
        assert self.ranks is not None
        params = self.model.last_shared_parameters() if self.balancer.level == "last_shared" else self._shared()
        rows = len(values)
        if values.requires_grad:
            jacobian = _jacobian(values, params)
        else:
            jacobian = values.new_zeros(rows, sum(p.numel() for p in params))
        self.ranks.all_reduce(jacobian)
        return jacobian @ jacobian.T

    def _heads_backward(self, losses: Tensor) -> list[Tensor]:
        """One ordinary backward through the heads: each head's plain gradient into ``.grad``,
        and per input group the per-task gradients w.r.t. its features ``[T'_g, *z]`` (where the
        linear heads read one copy of them: ``C_t W_t`` from each head's output gradient ``C_t``)."""
        inputs = [leaf for (_, _, leaves), linear in zip(self._groups, self._linear) if linear is None
                  for leaf in leaves]
        inputs += [linear[0] for linear in self._linear if linear is not None]
        total = losses.sum()
        (self.scaler.scale(total) if self.scaler is not None else total).backward(
            inputs=inputs + self._head_parameters())
        grads = []
        for (_, z, leaves), linear in zip(self._groups, self._linear):
            if linear is None:
                grads.append(torch.stack([leaf.grad if leaf.grad is not None else torch.zeros_like(z)
                                          for leaf in leaves]))
                continue
            grads.append(_head_feature_gradients(_grad_of(linear[0]), linear[1].detach(), linear[2]).to(z.dtype))
        if self.scaler is None:
            return grads
        scale = 1.0 / self.scaler.get_scale()
        return [g.mul_(scale) for g in grads]

    def _linear_heads_step(self, balancer: GramianBalancer, losses: Tensor, present: Tensor, index: Tensor,
                           step: int) -> Tensor:
        r"""Representation level with linear heads ``y_t = z W_tᵀ + b_t``: no feature gradients.

        Task ``t``'s gradient w.r.t. the features is ``C_t W_t`` (``C_t = ∂L_t/∂y_t`` ``[B, K_t]``), so

        .. math::
            G_{ts} = \sum_b C_{t,b} (W_t W_s^\top) C_{s,b}^\top, \qquad
            \frac{\partial}{\partial z} \sum_t w_t L_t = \sum_t w_t C_t W_t ,

        computed from ``[C_1 … C_T]`` ``[B, ΣK]`` and ``[W_1; …; W_T]`` ``[ΣK, D]`` in
        ``O((B + D)(ΣK)²)`` instead of the ``O(T'² B D)`` of the ``[T', B·D]`` feature gradients,
        which are never formed. The heads get their plain gradients from the same backward."""
        (_, z, _), linear = self._groups[0], self._linear[0]  # the group of the present tasks, in run order
        assert linear is not None
        joint, weight, heads = linear
        total = losses[index].sum()
        (self.scaler.scale(total) if self.scaler is not None else total).backward(
            inputs=[joint, *self._head_parameters()])  # heads: their plain gradients; the joint output: [C_1 … C_T]
        scale = self.scaler.get_scale() if self.scaler is not None else 1.0
        out_grads = _grad_of(joint) / scale  # [B, ΣK]
        stacked = weight.detach()  # [ΣK, D]
        dtype = torch.promote_types(out_grads.dtype, stacked.dtype)  # bf16 autocast outputs, float32 weights
        out_grads, stacked = out_grads.to(dtype), stacked.to(dtype)
        pairs = (out_grads.T @ out_grads) * (stacked @ stacked.T)  # [ΣK, ΣK]
        block, indicator = self._head_blocks(tuple(h.out_features for h in heads), pairs)
        gramian = pairs if indicator is None else indicator @ pairs @ indicator.T
        if self._overflow(gramian):
            return torch.zeros_like(losses)
        present_weights = self._solve(balancer, gramian, losses, present, step).detach()
        combined = (out_grads * present_weights.to(out_grads)[block]) @ stacked  # [B, D]
        z.backward((combined * scale).to(z.dtype))
        return torch.zeros_like(losses).index_put((index,), present_weights.to(losses))

    def _head_blocks(self, sizes: tuple[int, ...], like: Tensor) -> tuple[Tensor, Tensor | None]:
        """For heads with ``sizes`` outputs: the head of each output ``[ΣK]``, and the ``[T', ΣK]``
        indicator that sums each head's outputs (None when every head has one output); cached."""
        key = (sizes, like.dtype, like.device)
        cached = self._blocks.get(key)
        if cached is None:
            block = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)).to(like.device)
            indicator = None
            if len(block) > len(sizes):
                indicator = torch.zeros(len(sizes), len(block), dtype=like.dtype, device=like.device)
                indicator[block, torch.arange(len(block), device=like.device)] = 1.0
            if len(self._blocks) >= 256:  # present sets that change every step: no reuse
                self._blocks.clear()
            cached = self._blocks[key] = (block, indicator)
        return cached

    def _scale_heads(self, index: Tensor, weights: Tensor) -> None:
        """Multiply each present task's head gradients by its weight (one fused call)."""
        grads, factors = [], []
        for i, w in zip(index.tolist(), weights.tolist()):
            for p in self.model.task_parameters(self.balancer.task_names[i]):
                if p.grad is not None:
                    grads.append(p.grad)
                    factors.append(w)
        if grads:
            torch._foreach_mul_(grads, factors)

    def _head_parameters(self) -> list[Tensor]:
        """The trainable parameters of this step's heads (on the linear route, the heads it kept)."""
        params: list[Tensor] = []
        for (names, _, _), linear in zip(self._groups, self._linear):
            every = (p for n in names for p in self.model.task_parameters(n)) if linear is None else (
                p for pair in linear_parameters(linear[2]) for p in pair if p is not None)
            params += [p for p in every if p.requires_grad]
        return params

    def _split_gramian(self, feature_grads: list[Tensor]) -> tuple[Tensor, bool]:
        """Gramian ``[T', T']`` (present tasks in run order) from the per-task feature gradients,
        and whether the linear-layer engine computed it (and so will write the trunk's update)."""
        if self.balancer.level == "representation":
            flat = feature_grads[0].flatten(1)  # one input group: views are refused at this level
            order = self._run_order()
            local = (flat @ flat.T)[order][:, order]
            return (local if self.ranks is None else self.ranks.all_reduce(local)), False
        if self.ranks is not None:
            return self._global_gramian(self._probes(feature_grads)), False
        if self.balancer.level == "last_shared":  # a batched backward through the last stage only
            if self._last_layer is not None:
                try:
                    return self._last_layer.gramian([z for _, z, _ in self._groups], self._cotangents(feature_grads),
                                                    retain_graph=True), False
                except UnsupportedTrunk:
                    pass  # changed in place: this step's from the Jacobian below
                finally:
                    self._last_layer.clear()
            return _gramian_of(self._probes(feature_grads), self.model.last_shared_parameters()), False
        if self.linear_gramian is not None:  # the graph is kept on the first step, to check the update
            gramian = self._gramian_from_layers([z for _, z, _ in self._groups], self._cotangents(feature_grads),
                                                retain_graph=not self._verified)
            if gramian is not None and (self._verified or self._layer_engine_agrees(feature_grads)):
                return gramian, True
        probes = self._probes(feature_grads)
        return self._gramian_of_shared(probes), False

    def _layer_engine_agrees(self, feature_grads: list[Tensor]) -> bool:
        """First step only: the linear-layer engine's gradient of the plain sum of the losses against
        autograd's (a layer weight also used outside its module's call would make the engine wrong).
        On a mismatch the engine is dropped, with one log line (autogram from the next step on)."""
        assert self.linear_gramian is not None
        self._verified = True
        count = sum(len(tasks) for tasks, _, _ in self._groups)
        updates = self.linear_gramian.updates(feature_grads[0].new_ones(count))
        reference = torch.autograd.grad([z for _, z, _ in self._groups], [p for p, _ in updates],
                                        [g.sum(0) for g in feature_grads], retain_graph=True, allow_unused=True)
        tolerance = max(1e-3, 8 * torch.finfo(feature_grads[0].dtype).eps)  # float32: rounding ~1e-6; bf16 ~1e-2
        for (p, mine), ref in zip(updates, reference):
            ref = torch.zeros_like(p) if ref is None else ref
            if float((mine - ref).norm()) > tolerance * float(torch.maximum(mine.norm(), ref.norm())):
                self._drop_linear_layer_engine(f"its gradient differs from autograd's for a parameter of shape "
                                               f"{list(p.shape)}: a layer weight is used outside its module's call")
                return False
        return True

    def _cotangents(self, feature_grads: list[Tensor]) -> list[Tensor]:
        """Per input group, ``[T', *z]``: row ``i`` (run order) is task ``i``'s gradient w.r.t. the
        group's features, zero for the tasks of other groups."""
        order = self._run_order()
        if len(feature_grads) == 1:
            grads = feature_grads[0]
            return [grads if torch.equal(order, torch.arange(len(order))) else grads[order]]
        rank = order.argsort()  # forwarded position -> run position
        out, start = [], 0
        for (tasks, z, _), g in zip(self._groups, feature_grads):
            full = g.new_zeros(len(order), *z.shape)
            full[rank[start:start + len(tasks)]] = g
            out.append(full)
            start += len(tasks)
        return out

    def _gramian_from_layers(self, roots: list[Tensor], cotangents: list[Tensor] | None = None, *,
                             retain_graph: bool = False) -> Tensor | None:
        """The linear-layer engine's Gramian, or None: no such engine, or the trunk defeated it (then
        this step's Gramian comes from the Jacobian, and autogram's from the next step on)."""
        if self.linear_gramian is None:
            return None
        try:
            return self.linear_gramian.gramian(roots, cotangents, retain_graph=retain_graph)
        except UnsupportedTrunk as error:
            self._drop_linear_layer_engine(str(error))
            return None

    def _probes(self, feature_grads: list[Tensor]) -> Tensor:
        """``v_i = <J_z,i, z>`` for the present tasks in run order: the gradient of ``v_i`` w.r.t.
        the shared parameters is task ``i``'s gradient (``J_z`` is held constant)."""
        probes = torch.cat([torch.tensordot(g, z, dims=z.ndim) for (_, z, _), g in zip(self._groups, feature_grads)])
        return probes[self._run_order()]

    def _run_order(self) -> Tensor:
        """Positions that put the forwarded tasks (group after group) in the run's task order."""
        names = [t for tasks, _, _ in self._groups for t in tasks]
        return index_tensor(sorted(range(len(names)), key=lambda i: self._position[names[i]]))

    def _trunk_backward(self, feature_grads: list[Tensor], weights: Tensor) -> None:
        """The shared parameters get ``sum_i w_i dL_i/dtheta`` through one backward per input group."""
        outputs, grads = [], []
        for (tasks, z, _), g in zip(self._groups, feature_grads):
            w = weights[index_tensor(list(map(self._position.__getitem__, tasks)), weights.device)]
            combined = torch.tensordot(w.to(g.dtype), g, dims=1)
            outputs.append(z)
            grads.append(combined * self.scaler.get_scale() if self.scaler is not None else combined)
        torch.autograd.backward(outputs, grads)

    def _gramian(self, losses: Tensor) -> Tensor:
        """Gramian ``[T', T']`` of the present losses' gradients, heads not split off."""
        if self.ranks is not None:
            return self._global_gramian(losses)
        if self.balancer.level == "last_shared":
            return _gramian_of(losses, self.model.last_shared_parameters())
        return self._gramian_of_shared(losses)

    def _gramian_of_shared(self, values: Tensor) -> Tensor:
        """Gramian of ``values``' gradients w.r.t. the shared parameters: torchjd's autogram where
        it hooked the trunk, else the Jacobian. Autogram's first Gramian is checked against the
        Jacobian's (a shared weight also used outside its module's call, which no flag of a user's
        trunk says, makes it wrong), and an error inside it (vmap cannot batch the backward; a
        module called twice) switches the run to the Jacobian; each says so in one log line."""
        if self.linear_gramian is not None:
            gramian = self._linear_layer_gramian(values)
            if gramian is not None:
                return gramian
        engine = self.gramian_engine
        if engine is None:
            return _gramian_of(values, self._shared())
        try:
            gramian = engine.compute_gramian(values)
        except (RuntimeError, ValueError) as error:
            log.warning("manytask: exact Gramian of %s from the Jacobian from now on (torchjd's autogram "
                        "failed on %s: %s).", self.balancer, type(self.model).__name__, str(error).splitlines()[0])
            self._drop_gramian_engine()
            return _gramian_of(values, self._shared())
        if self._checked_engine is engine:  # every step after the first: no walk over the parameters
            return gramian
        self._checked_engine = engine
        if self._agrees_with_autograd(gramian, values):
            return gramian
        log.warning("manytask: exact Gramian of %s from the Jacobian from now on (torchjd's autogram differs from "
                    "autograd's on %s: a shared weight is used outside its module's call).",
                    self.balancer, type(self.model).__name__)
        self._drop_gramian_engine()
        return _gramian_of(values, self._shared())

    def _linear_layer_gramian(self, values: Tensor) -> Tensor | None:
        """The linear-layer engine's Gramian of ``values``' gradients (heads not split off: one
        batched backward from the ``T'`` losses to the layers' outputs; the update then comes from
        the ordinary weighted backward), or None: the trunk defeated the engine. Its first Gramian
        is checked as autogram's is; a mismatch (a layer weight also used outside its call) sends
        the run to autogram from the next step on, with a log line."""
        assert self.linear_gramian is not None
        gramian = self._gramian_from_layers([values], retain_graph=True)
        if self.linear_gramian is not None:
            self.linear_gramian.clear()  # (its per-layer gradients: the update is the weighted backward's)
        if gramian is None or self._verified:
            return gramian
        self._verified = True
        if self._agrees_with_autograd(gramian, values):
            return gramian
        self._drop_linear_layer_engine("its Gramian differs from autograd's: a layer weight is used outside its "
                                       "module's call")
        return None

    def _agrees_with_autograd(self, gramian: Tensor, values: Tensor) -> bool:
        """The first-Gramian check of either engine (:func:`_quadratic_forms_agree`, to the
        rounding of the forward's dtype)."""
        return _quadratic_forms_agree(gramian, values, self._shared(), self._forward_dtype or gramian.dtype)

    def _drop_linear_layer_engine(self, reason: str) -> None:
        """Stop using the linear-layer engine, with one log line naming ``reason``: autogram hooks
        the shared modules from the next step's forward on."""
        log.info("manytask: exact Gramian of %s on %s from now on without the linear-layer engine (%s).",
                 self.balancer, type(self.model).__name__, reason)
        if self.linear_gramian is not None:
            self.linear_gramian.clear()
        self.linear_gramian = None
        self._hook_next_step = True

    def _drop_gramian_engine(self) -> None:
        """Stop using autogram: with the last references to its engine gone, torchjd removes its
        hooks (kept, they would record every later forward's graph and never release it). The
        model defeated autogram: the Jacobian, which follows any change of the shared parameters,
        from now on."""
        self.gramian_engine = self._checked_engine = self._planned = None

    def _shared(self) -> list[nn.Parameter]:
        """The shared parameters that train."""
        return [p for p in self.model.shared_parameters() if p.requires_grad]

    def _jacobian_step(self, balancer: JacobianBalancer, losses: Tensor, present: Tensor, index: Tensor,
                       step: int) -> Tensor:
        if self.balancer.level == "representation":  # rows: per-task gradients w.r.t. the features
            feature_grads = self._heads_backward(losses[index])
            (_, z, _), = self._groups  # one input group: views are refused at this level
            jacobian = feature_grads[0].flatten(1)[self._run_order()]
            update = balancer.aggregate(jacobian, losses.detach(), present, step=step)
            z.backward(update.view_as(z).to(z.dtype))
            return self._least_squares_weights(jacobian, update, losses, index)
        shared = self._shared()
        if self.split_heads:  # heads get their plain gradients; rows are the probes' gradients
            values = self._probes(self._heads_backward(losses[index]))
        else:
            values = losses[index]
            heads = [p for n in self.model.task_names for p in self.model.task_parameters(n) if p.requires_grad]
            if heads and values.requires_grad:
                values.sum().backward(inputs=heads, retain_graph=True)
        if values.requires_grad:
            jacobian = _jacobian(values, shared)
        else:  # a rank whose share of the batch trains nothing this step
            jacobian = values.new_zeros(len(values), sum(p.numel() for p in shared))
        if self.ranks is not None:  # the global per-task gradients; the update is then global already
            self.ranks.all_reduce(jacobian)
            self._global_grads.update(id(p) for p in shared)
        update = balancer.aggregate(jacobian, losses.detach(), present, step=step)
        offset = 0
        for p in shared:
            grad = update[offset:offset + p.numel()].view_as(p)
            p.grad = grad.clone() if p.grad is None else p.grad + grad
            offset += p.numel()
        return self._least_squares_weights(jacobian, update, losses, index)

    @staticmethod
    def _least_squares_weights(jacobian: Tensor, update: Tensor, losses: Tensor, index: Tensor) -> Tensor:
        """Weights ``[T]`` whose combination of the rows comes closest to the update (for logging),
        from the normal equations ``J Jᵀ w = J u`` (a T x T solve, not a P x T least squares): the
        minimum-norm solution (SVD, float64 on the CPU), singular values of ``J Jᵀ`` below
        ``T · eps(J's dtype)`` of the largest dropped, so that a zero gradient or two equal ones
        (``J Jᵀ`` singular up to ``J``'s rounding) still give weights that reproduce the update."""
        gramian, projection = jacobian @ jacobian.T, jacobian @ update
        rcond = len(gramian) * torch.finfo(jacobian.dtype).eps
        weights = torch.linalg.lstsq(gramian.double().cpu(), projection.double().cpu()[:, None], rcond=rcond,
                                     driver="gelsd").solution.flatten()
        return torch.zeros_like(losses).index_put((index,), weights.to(losses))

    def _check_finite(self, losses: Tensor, present: Tensor, weights: Tensor, penalty: Tensor | None = None) -> None:
        """One fused check of the losses, the weights, the penalty and the gradients.

        The fast path is one call of torch's fused non-finite check (the one ``GradScaler`` runs;
        with a scale of 1 it leaves every value as it is) over all of them, and one sync; only
        when it finds a NaN or an infinity does :meth:`_explain_non_finite` look closer and raise."""
        grads = [] if self.scaler is not None else [  # (float16: the scaler skips inf gradients itself)
            _values(p.grad) for p in self._parameters if p.grad is not None]
        scalars = [losses, weights] + ([] if penalty is None else [penalty.detach().reshape(1).to(losses.dtype)])
        found, one = self._found_flag(losses.device)
        torch._amp_foreach_non_finite_check_and_unscale_([*scalars, *grads], found, one)
        if found.item():
            found.zero_()  # (kept for the next check: it is 0 whenever a check passes)
            self._explain_non_finite(losses, present, weights, penalty)

    def _found_flag(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The fused check's flag (0: all finite) and its scale of 1, float32 on ``device``, made
        once: two allocations less in every step."""
        if self._flag is None or self._flag[0].device != device:
            self._flag = (torch.zeros(1, dtype=torch.float32, device=device),  # (the fused check takes float32,
                          torch.ones(1, dtype=torch.float32, device=device))   # whatever the default dtype)
        return self._flag

    def _explain_non_finite(self, losses: Tensor, present: Tensor, weights: Tensor, penalty: Tensor | None) -> None:
        """Raise :class:`NonFiniteError` naming the first non-finite quantity, if there is one."""
        bad = [n for n, v, p in zip(self.balancer.task_names, losses.tolist(), present.tolist())
               if p and not math.isfinite(v)]
        if bad:
            values = {n: losses[self.balancer.task_names.index(n)].item() for n in bad}
            raise NonFiniteError(f"The loss of task {bad[0]!r} is {values[bad[0]]} (all bad: {values})")
        if penalty is not None and not bool(torch.isfinite(penalty.detach())):
            raise NonFiniteError(f"The penalty of {type(self.model).__name__} is {penalty.item()} (the model's "
                                 "penalty(): soft sharing's regulariser); lower its strength or the learning rate")
        if not bool(torch.isfinite(weights).all()):
            raise NonFiniteError(f"{self.balancer} gave non-finite weights {weights.tolist()} from finite losses")
        names = {id(p): n for n, p in [*self.model.named_parameters(), *self.balancer.named_parameters()]}
        broken = [names.get(id(p), "?") for p in self._parameters
                  if p.grad is not None and not bool(torch.isfinite(_values(p.grad)).all())]
        if broken and self.scaler is None:
            raise NonFiniteError(f"The gradient is not finite in {len(broken)} parameter tensor(s) (first: "
                                 f"{broken[0]!r}) although every loss is finite (losses {losses.tolist()}, "
                                 f"weights {weights.tolist()})")


def batched_vjps(outputs: Sequence[Tensor], cotangents: Sequence[Tensor], inputs: Sequence[Tensor]) -> list[Tensor]:
    """``[k, *x.shape]`` per input ``x``: the vector-Jacobian products of ``outputs`` with the
    ``k`` rows of ``cotangents`` (one ``[k, *output]`` per output), zeros where an output does
    not reach ``x``; one batched backward, or one per row where an operation cannot be batched
    (the same numbers, slower). The graph is kept."""
    count = len(cotangents[0])
    try:
        grads = torch.autograd.grad(list(outputs), list(inputs), list(cotangents), retain_graph=True,
                                    allow_unused=True, is_grads_batched=True)
    except RuntimeError:
        rows = [torch.autograd.grad(list(outputs), list(inputs), [c[r] for c in cotangents], retain_graph=True,
                                    allow_unused=True) for r in range(count)]
        return [torch.stack([row[k] if row[k] is not None else torch.zeros_like(x) for row in rows])
                for k, x in enumerate(inputs)]
    return [g if g is not None else x.new_zeros(count, *x.shape) for g, x in zip(grads, inputs)]


def _forget_recorded_forwards(engine: GramianEngine) -> None:
    """Clear what torchjd's autogram recorded since its last Gramian (the resets it runs after
    each Gramian; torchjd 0.18's internals). A forward with gradients and no backward since (a
    user's probe after a step, or the forward of a step that raised before its Gramian) would
    otherwise make the next Gramian raise, a module's Jacobian pending, and hold its graph till
    then. A probe inside a step, before its Gramian, still makes autogram raise, and the run goes
    on with the Jacobian, with a warning: autogram's one flag both gates its forward hooks and
    turns its backward nodes on, so it cannot be lowered for a user's forward alone."""
    engine._gramian_accumulator.reset()
    engine._target_edges.reset()
    for computer in engine._gramian_computers.values():
        computer.reset()


def _values(grad: Tensor) -> Tensor:
    """The stored values of ``grad`` (a sparse gradient's nonzero entries, e.g. an
    ``nn.Embedding(sparse=True)``'s)."""
    return grad._values() if grad.is_sparse else grad


def _grad_of(output: Tensor) -> Tensor:
    """``output.grad``, zeros where the loss did not reach it."""
    return output.grad if output.grad is not None else torch.zeros_like(output)


def _linear_heads(leaf: Tensor, names: list[str], heads: list[nn.Linear]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """``heads`` (of ``names``) as one map on ``leaf``: the joint output ``[..., ΣK]``, the stacked
    weight ``[ΣK, D]`` and each head's output (a slice: the numbers calling the head gives; heads
    of one size on ``[B, D]`` give :class:`~manytask.tasks.Columns` of one block)."""
    pairs = linear_parameters(heads)
    weight = torch.cat([w for w, _ in pairs])
    bias = torch.cat([b if b is not None else w.new_zeros(len(w)) for w, b in pairs])
    joint = F.linear(leaf, weight, bias)
    sizes = [h.out_features for h in heads]
    if leaf.ndim == 2 and len(set(sizes)) == 1:  # [B, T', K]: its columns, read back as one block by the losses
        return joint, weight, Columns({}, [(names, joint.unflatten(1, (len(sizes), sizes[0])))])
    return joint, weight, dict(zip(names, joint.split(sizes, dim=-1)))


def _head_feature_gradients(out_grads: Tensor, weight: Tensor, heads: list[nn.Linear]) -> Tensor:
    """``[T', *z]``: each linear head's gradient w.r.t. the features it read, ``C_t W_t``, from the
    joint output's gradient ``[..., ΣK]`` and the stacked weight ``[ΣK, D]`` (one batched matmul
    when the heads have the same number of outputs)."""
    sizes = [h.out_features for h in heads]
    out_grads = out_grads.to(weight.dtype)
    if len(set(sizes)) == 1:
        count, k = len(sizes), sizes[0]
        per_head = out_grads.unflatten(-1, (count, k)).movedim(-2, 0)  # [T', ..., K]
        return (per_head.reshape(count, -1, k) @ weight.view(count, k, -1)).view(*per_head.shape[:-1], -1)
    return torch.stack([c @ w for c, w in zip(out_grads.split(sizes, dim=-1), weight.split(sizes))])


def _calls_hooks(modules: Sequence[nn.Module]) -> bool:
    """Whether calling ``modules`` would run hooks (their own or global ones), which computing
    them as one matmul would skip (and which may change what ``y = z Wᵀ + b`` assumes)."""
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    every = nn.modules.module
    if any(getattr(every, f"_global{name}", None) for name in hooks):
        return True
    return any(getattr(m, name, None) for m in modules for name in hooks)


def _jacobian(values: Tensor, params: Sequence[nn.Parameter] | Sequence[Tensor]) -> Tensor:
    """``[k, P]``: the gradients of the ``k`` entries of ``values`` w.r.t. ``params``, flattened
    (one vmapped backward, or one backward per entry where vmap cannot batch the graph, as under
    bf16 autocast through cross-stitch units: :func:`batched_vjps`). The graph is kept."""
    eye = torch.eye(len(values), dtype=values.dtype, device=values.device)
    return torch.cat([j.flatten(1) for j in batched_vjps([values], [eye], list(params))], dim=1)


def _quadratic_forms_agree(gramian: Tensor, values: Tensor, params: Sequence[Tensor], dtype: torch.dtype,
                           probes: int = 3) -> bool:
    """Whether ``wᵀ G w = ||∇(wᵀ values)||²`` for a few sign vectors ``w`` (a fixed seed: the run's
    random state is not drawn), to ``max(1e-3, 8 eps)`` of ``Σ|G_ij|`` (``eps`` of ``dtype``, the
    forward's: bf16 autocast rounds each path's activations differently, ~1e-2): a check of a Gramian
    from one ordinary backward per probe, without the ``T x P`` Jacobian (the graph is kept)."""
    generator = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (probes, len(values)), generator=generator).to(values) * 2 - 1
    scale = float(gramian.abs().sum())
    tolerance = max(1e-3, 8 * torch.finfo(dtype).eps) * scale
    for w in signs:
        grads = torch.autograd.grad(values, params, w, retain_graph=True, allow_unused=True)
        squared = sum(float(g.double().square().sum()) for g in grads if g is not None)
        if abs(squared - float(w.double() @ gramian.double() @ w.double())) > tolerance:
            return False
    return True


def _gramian_of(losses: Tensor, params: Sequence[nn.Parameter] | Sequence[Tensor]) -> Tensor:
    """``J Jᵀ`` from the Jacobian of ``losses`` w.r.t. ``params`` (:func:`_jacobian`)."""
    flat = _jacobian(losses, params)
    return flat @ flat.T
