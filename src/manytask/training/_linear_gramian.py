"""The exact Gramian of per-task gradients for trunks made of ``nn.Linear`` layers, from their
inputs and the per-task gradients of their outputs — never the ``T x P`` Jacobian, and no
per-parameter Jacobian either.

For a linear layer ``y_r = W a_r + b`` applied to rows ``r`` (batch, and positions for sequence
inputs; every call of the layer in the step, so weight reuse is covered), task ``t``'s gradient is
``dW_t = sum_r g_tr a_rᵀ`` and ``db_t = sum_r g_tr`` with ``g_tr = dL_t/dy_r``. Its contribution
to the Gramian is

    ``<dW_t, dW_s> + <db_t, db_s> = sum_{r,c} (a_r·a_c + 1) (g_tr·g_sc) = <K G_t, G_s>``,

with ``K = A Aᵀ + 1`` (``[R, R]``), or equally ``<[dW_t, db_t], [dW_s, db_s]>`` from the per-task
weight gradients (``[T, out, in]``); each layer takes whichever costs fewer operations
(``R²(in + T·out)`` against ``T·R·out·in + T²·out·in``). The ``G`` of every layer come from one
vmapped backward of the ``T`` roots to the layer outputs (activation gradients only: no weight
gradient is formed), and the balanced update is written from them directly:
``dW = (sum_t w_t G_t)ᵀ A`` — no second backward through the trunk.

A 2-d convolution (one group, zero padding) has many rows (``B·H'·W'`` patches), so it takes the
per-task-gradient route: the ``T`` tasks' output gradients enter one weight-gradient convolution
as ``T·C_out`` output channels, which gives every task's ``dW_t`` at once (``[T, P]``, small for a
convolution), their Gramian, and the update ``sum_t w_t dW_t``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.grad import conv2d_weight
from torch.utils.hooks import RemovableHandle

__all__ = ["LinearGramian", "UnsupportedTrunk"]


class UnsupportedTrunk(RuntimeError):
    """The trunk did something the linear Gramian cannot follow (an in-place change of a layer's
    input or output); the caller falls back to another engine."""


Layer = nn.Linear | nn.Conv2d

#: Fewest layer outputs per task (over the batch) from which the Gramian may come from one backward
#: per task (:meth:`LinearGramian._per_task_route`).
PER_TASK_FROM = 2**15


def linear_layers(modules: Sequence[nn.Module]) -> tuple[list[Layer], str | None]:
    """The ``nn.Linear`` and ``nn.Conv2d`` layers of ``modules``, and why they are not enough (None
    when they are): every trainable parameter of the modules must belong to one of them, and each
    convolution must have one group and zero (or no) numeric padding."""
    layers: list[Layer] = [m for root in modules for m in root.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for m in layers:
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or m.padding == "same"):
            return layers, f"{m} is grouped, padded with {m.padding_mode!r} or uses padding='same'"
    covered = {id(p) for m in layers for p in m.parameters(recurse=False)}
    for root in modules:
        for name, p in root.named_parameters():
            if p.requires_grad and id(p) not in covered:
                return layers, f"its parameter {name!r} is not in an nn.Linear or nn.Conv2d layer"
    if not modules:
        return layers, "it declares no shared_modules()"
    return layers, None


def _conv_task_grads(layer: nn.Conv2d, calls: list[tuple[Tensor, Tensor]], count: int, dtype: torch.dtype) -> Tensor:
    """Per-task gradients ``[T, P]`` of a convolution's trainable weight (and bias), summed over its
    calls: the ``T`` tasks' output gradients enter as ``T·C_out`` channels of one weight-gradient
    convolution (PyTorch's own kernel; no unfolded patches)."""
    padding: int | tuple[int, ...] = 0 if isinstance(layer.padding, str) else layer.padding  # "valid"
    total: Tensor | None = None
    for inputs, grads in calls:  # grads: [T, B, C_out, H', W']
        parts = []
        if layer.weight.requires_grad:
            channels = grads.transpose(0, 1).reshape(grads.shape[1], -1, *grads.shape[3:])
            size = [count * layer.out_channels, *layer.weight.shape[1:]]
            weight = conv2d_weight(inputs.to(grads.dtype), size, channels, layer.stride, padding,
                                                 layer.dilation)
            parts.append(weight.reshape(count, -1))
        if layer.bias is not None and layer.bias.requires_grad:
            parts.append(grads.sum(dim=(1, 3, 4)))
        flat = torch.cat(parts, dim=1).to(dtype)
        total = flat if total is None else total + flat
    assert total is not None
    return total


class LinearGramian:
    """Records the calls of ``layers`` in a step, then gives the Gramian and writes the update.

    Use: :meth:`record` before the forward, :meth:`gramian` with the per-task roots (a ``[T]``
    tensor whose entry ``t``'s gradient is task ``t``'s), :meth:`apply` with :meth:`updates` of the
    weights, and :meth:`clear` (also on error). ``with_bias=False``: the Gramian over the weight matrices only
    (GradNorm's ``W``); :meth:`apply` then must not be used.
    """

    def __init__(self, layers: Sequence[Layer], *, with_bias: bool = True) -> None:
        self.layers = list(layers)
        self.with_bias = with_bias
        self._index = {id(m): i for i, m in enumerate(self.layers)}
        self._calls: list[tuple[int, Tensor, Tensor, int, int]] = []  # (layer, input, output, versions)
        self._handles: list[RemovableHandle] = []
        # (layer, rows of A [R, in], G [T, R, out]) for a linear layer; (layer, None, per-task grads [T, P]) for a conv
        self._grads: list[tuple[int, Tensor | None, Tensor]] = []

    def record(self) -> None:
        """Hook the layers (once per step) until :meth:`gramian` or :meth:`clear`: every call of the
        coming forward passes is recorded."""
        if not self._handles:
            self._handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        if torch.is_grad_enabled():
            rows = args[0].detach()  # shares the version counter, not the graph
            self._calls.append((self._index[id(module)], rows, output, rows._version, output._version))

    def clear(self) -> None:
        """Unhook the layers and forget the step."""
        for handle in self._handles:
            handle.remove()
        self._handles, self._calls, self._grads = [], [], []

    def gramian(self, roots: Sequence[Tensor], cotangents: Sequence[Tensor] | None = None, *,
                retain_graph: bool = False) -> Tensor:
        """``[T, T]`` Gramian of the ``T`` per-task gradients w.r.t. the layers' parameters, where task
        ``t``'s gradient is that of ``sum_k <cotangents[k][t], roots[k]>`` (default: ``roots`` is one
        ``[T]`` tensor and the cotangents the identity, i.e. task ``t``'s gradient is that of ``roots[t]``)."""
        for _, a, y, va, vy in self._calls:
            if a._version != va or y._version != vy:
                raise UnsupportedTrunk("a linear layer's input or output was changed in place after the layer")
        calls = [c for c in self._calls if c[2].requires_grad]
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if cotangents is None:
            (root,) = roots
            cotangents = [torch.eye(root.shape[0], dtype=root.dtype, device=root.device)]
        count, device = cotangents[0].shape[0], cotangents[0].device
        dtype = torch.float32  # at least: float16/bfloat16 activations are summed in float32
        for p in (p for m in self.layers for p in m.parameters()):
            dtype = torch.promote_types(dtype, p.dtype)
        gramian = torch.zeros(count, count, dtype=dtype, device=device)
        self._grads = []
        if not calls:
            return gramian
        if self._per_task_route(count, calls):
            return self._gramian_per_task(roots, cotangents, count, dtype, retain_graph)
        grads = torch.autograd.grad(list(roots), [y for _, _, y, _, _ in calls], list(cotangents),
                                    retain_graph=retain_graph, is_grads_batched=True, allow_unused=True)
        # a call no root reaches (a forward in the step that no loss reads) adds nothing
        reached = [(j, a, g) for (j, a, _, _, _), g in zip(calls, grads) if g is not None]
        for i, layer in enumerate(self.layers):
            mine = [(a, g) for j, a, g in reached if j == i]
            if not mine:
                continue
            if isinstance(layer, nn.Conv2d):
                per_task = _conv_task_grads(layer, mine, count, dtype)
                self._grads.append((i, None, per_task))
                gramian += per_task @ per_task.T
                continue
            rows = _cat([a.reshape(-1, a.shape[-1]) for a, _ in mine], dim=0).to(dtype)
            g = _cat([g.reshape(count, -1, g.shape[-1]) for _, g in mine], dim=1).to(dtype)
            self._grads.append((i, rows, g))
            gramian += _layer_gramian(rows, g, layer.weight.requires_grad,
                                      self.with_bias and layer.bias is not None and layer.bias.requires_grad)
        return gramian

    def _trainable(self, i: int) -> list[Tensor]:
        """Layer ``i``'s parameters in the Gramian: the weight, and the bias unless ``with_bias=False``."""
        layer = self.layers[i]
        bias = layer.bias if self.with_bias else None
        return [p for p in (layer.weight, bias) if p is not None and p.requires_grad]

    def _per_task_route(self, count: int, calls: list[tuple[int, Tensor, Tensor, int, int]]) -> bool:
        """Whether to take :meth:`_gramian_per_task` (one backward per task) instead of the ``T``
        per-task gradients of the layers' outputs (one batched backward): where the per-task
        parameter gradients take less memory and the outputs are large, at least
        ``PER_TASK_FROM`` entries per task (a CNN's maps, a narrow MLP on a batch of thousands).
        Then the batched gradients are the biggest thing in memory and moving them costs more
        than a backward call per task; below that (School's 139 heads on a 28→64 trunk, batch
        256: 16k outputs) the ``T`` calls cost more (exact PCGrad 30 → 17 ms a step)."""
        params = [p for i in range(len(self.layers)) for p in self._trainable(i)]
        if not params or len({id(p) for p in params}) != len(params):  # a parameter in two layers: not per layer
            return False
        outputs = sum(y.numel() for _, _, y, _, _ in calls)
        return outputs >= PER_TASK_FROM and sum(p.numel() for p in params) < outputs

    def _gramian_per_task(self, roots: Sequence[Tensor], cotangents: Sequence[Tensor], count: int,
                          dtype: torch.dtype, retain_graph: bool) -> Tensor:
        """The Gramian from each task's gradient w.r.t. the layers' parameters, one ordinary backward
        per task (kept per layer, as a convolution's batched gradients are, for :meth:`updates`)."""
        used = [i for i in range(len(self.layers)) if any(j == i for j, *_ in self._calls)]
        params = [p for i in used for p in self._trainable(i)]
        if not params:  # the layers that ran are all frozen
            return torch.zeros(count, count, dtype=dtype, device=cotangents[0].device)
        rows = []
        for t in range(count):
            grads = torch.autograd.grad(list(roots), params, [c[t] for c in cotangents], allow_unused=True,
                                        retain_graph=retain_graph or t < count - 1, materialize_grads=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]).to(dtype))
        jacobian = torch.stack(rows)  # [T, P]: fewer entries than the per-task output gradients
        offset = 0
        for i in used:
            size = sum(p.numel() for p in self._trainable(i))
            self._grads.append((i, None, jacobian[:, offset:offset + size]))
            offset += size
        return jacobian @ jacobian.T

    def updates(self, weights: Tensor, scale: float = 1.0) -> list[tuple[Tensor, Tensor]]:
        """``scale * sum_t w_t dL_t/dθ`` for each trainable parameter of the recorded layers."""
        out: list[tuple[Tensor, Tensor]] = []
        for i, rows, g in self._grads:
            layer = self.layers[i]
            if rows is None:  # per-task parameter gradients [T, P_i] (a convolution's), weight then bias
                trainable = self._trainable(i)
                combined = (weights.to(g) * scale) @ g
                sizes = [p.numel() for p in trainable]
                out += [(p, u.view_as(p).to(p.dtype)) for p, u in zip(trainable, combined.split(sizes))]
                continue
            combined = torch.tensordot(weights.to(g) * scale, g, dims=1)  # [R, out]
            if layer.weight.requires_grad:
                out.append((layer.weight, (combined.T @ rows).to(layer.weight.dtype)))
            if layer.bias is not None and layer.bias.requires_grad:
                out.append((layer.bias, combined.sum(0).to(layer.bias.dtype)))
        return out

    def apply(self, updates: list[tuple[Tensor, Tensor]]) -> None:
        """Add :meth:`updates` to the parameters' ``.grad`` and forget the step."""
        for p, update in updates:
            p.grad = update if p.grad is None else p.grad.add_(update)
        self.clear()


def _cat(tensors: list[Tensor], dim: int) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=dim)


def _layer_gramian(rows: Tensor, g: Tensor, weight: bool, bias: bool) -> Tensor:
    """One layer's Gramian from its input rows ``A [R, in]`` and output gradients ``G [T, R, out]``."""
    count, r, out = g.shape
    width = rows.shape[1]
    if not weight:  # only the bias trains: <sum_r g_tr, sum_r g_sr>
        summed = g.sum(1)
        return summed @ summed.T if bias else g.new_zeros(count, count)
    by_rows = r * r * (width + count * out) + count * count * r * out
    by_weights = count * r * out * width + count * count * out * width
    if by_rows <= by_weights:
        kernel = rows @ rows.T
        if bias:
            kernel += 1.0
        return (kernel @ g).flatten(1) @ g.flatten(1).T
    if bias:
        rows = torch.cat([rows, rows.new_ones(r, 1)], dim=1)
    by_row = g.transpose(0, 1).reshape(r, count * out)  # [R, T * out]
    per_input = (rows.T @ by_row).view(-1, count, out)  # row i: [T, out], task t's dW[:, i]
    return (per_input @ per_input.transpose(1, 2)).sum(0)
