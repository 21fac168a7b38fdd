"""The report's figures (matplotlib's object API: no pyplot, no global state, no display)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["Series", "bars", "heatmap", "pareto", "pareto_front", "panels"]

#: One line of a panel: x values and y values (NaN where the line has no value).
Series = tuple[Sequence[float], Sequence[float]]


def panels(named: Mapping[str, Mapping[str, Series]], *, columns: int = 3, mark_x: float | None = None,
           log_y: bool = False, mark_label: str = "best step") -> Figure:
    """A grid of line plots, one panel per entry of ``named`` (its lines keyed by label);
    ``mark_x`` draws a dashed vertical line in every panel (e.g. the best checkpoint's step)."""
    count = max(1, len(named))
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, lines) in zip(axes, named.items()):
        drawn = 0
        for label, (xs, ys) in lines.items():
            points = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
            if points:
                ax.plot(*zip(*points), marker="o" if len(points) < 12 else None, markersize=3, label=label)
                drawn += 1
        if not drawn:  # an empty panel would read as a plotting failure
            ax.text(0.5, 0.5, "no finite value", transform=ax.transAxes, ha="center", va="center", color="#555555")
        if log_y and all(y > 0 for _, ys in lines.values() for y in ys if math.isfinite(y)):
            ax.set_yscale("log")
        if mark_x is not None:
            ax.axvline(mark_x, color="grey", linestyle="--", linewidth=1, label=mark_label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if (len(lines) > 1 and drawn) or mark_x is not None:
            ax.legend(fontsize=7)
    for ax in axes[count:]:
        ax.set_visible(False)
    return figure


def bars(labels: Sequence[str], values: Sequence[float], errors: Sequence[float] | None = None, *,
         ylabel: str, signed: bool = True) -> Figure:
    """Horizontal bars (with ± ``errors``); ``signed`` colours gains green and losses red."""
    figure = Figure(figsize=(7, 0.45 * len(labels) + 1.2), layout="constrained")
    ax = figure.subplots()
    shown = [v if math.isfinite(v) else 0.0 for v in values]
    colours = [("#2a9d55" if v >= 0 else "#c0392b") if signed else "#3b75af" for v in shown]
    ax.barh(range(len(labels)), shown, xerr=errors, color=colours, capsize=3)
    for row, value in enumerate(values):
        if not math.isfinite(value):  # no bar of length 0, which would read as "no change"
            ax.text(0, row, " undefined", va="center", ha="left", fontsize=8, color="#555555")
    ax.set_yticks(range(len(labels)), [f"{label} (undefined)" if not math.isfinite(value) else label
                                       for label, value in zip(labels, values)])
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    if signed:
        ax.axvline(0, color="black", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    return figure


def pareto_front(points: Mapping[str, tuple[float, float]], x_higher: bool, y_higher: bool) -> list[str]:
    """The labels of the points no other point dominates (at least as good on both axes and
    better on one), in ``points``' order."""
    sx, sy = (1 if x_higher else -1), (1 if y_higher else -1)

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        ge = sx * a[0] >= sx * b[0] and sy * a[1] >= sy * b[1]
        return ge and (sx * a[0] > sx * b[0] or sy * a[1] > sy * b[1])

    finite = {k: p for k, p in points.items() if all(map(math.isfinite, p))}
    return [k for k, p in finite.items() if not any(dominates(q, p) for j, q in finite.items() if j != k)]


def pareto(points: Mapping[str, tuple[float, float]], errors: Mapping[str, tuple[float, float]], *,
           xlabel: str, ylabel: str, x_higher: bool, y_higher: bool) -> Figure:
    """Two main tasks' metrics, one point per method (± std), the non-dominated ones joined."""
    figure = Figure(figsize=(6.5, 5), layout="constrained")
    ax = figure.subplots()
    front = pareto_front(points, x_higher, y_higher)
    for label, (x, y) in points.items():
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        ex, ey = errors.get(label, (0.0, 0.0))
        ax.errorbar(x, y, xerr=ex, yerr=ey, fmt="o", color="#c0392b" if label in front else "#3b75af", capsize=2)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    line = sorted(points[k] for k in front)
    if len(line) > 1:
        ax.plot(*zip(*line), color="#c0392b", linewidth=1, linestyle="--", label="Pareto front")
        ax.legend(fontsize=8)
    ax.set_xlabel(f"{xlabel} ({'higher' if x_higher else 'lower'} is better)")
    ax.set_ylabel(f"{ylabel} ({'higher' if y_higher else 'lower'} is better)")
    ax.grid(alpha=0.3)
    return figure


def heatmap(values: np.ndarray, labels: Sequence[str], *, signed: bool, colorbar: str) -> Figure:
    """A task-by-task matrix (rows: the task acting, columns: the task affected); a diverging
    scale centred on 0 when ``signed``; the values written in the cells for up to 12 tasks; at most
    12 inches and 40 task names a side (every k-th name beyond)."""
    size = min(max(4.0, 0.55 * len(labels) + 2.5), 12.0)  # 139 School tasks: 12 inches, not 79
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = figure.subplots()
    off = values[~np.eye(len(values), dtype=bool) & np.isfinite(values)]  # a task on itself would swamp the scale
    if signed:
        bound = float(np.abs(off).max()) if off.size and np.abs(off).max() > 0 else 1.0
        low, high, cmap = -bound, bound, "RdBu"
    else:
        low, high = (float(off.min()), float(off.max())) if off.size else (0.0, 1.0)
        cmap = "viridis"
    image = ax.imshow(values, cmap=cmap, vmin=low, vmax=high if high > low else low + 1)
    every = max(1, math.ceil(len(labels) / 40))  # at most 40 names per axis, so they do not overlap
    ticks = range(0, len(labels), every)
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=45, ha="right", fontsize=8 if every == 1 else 6)
    ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=8 if every == 1 else 6)
    ax.set_xlabel("affected task")
    ax.set_ylabel("acting task")
    if len(labels) <= 12:
        for (i, j), value in np.ndenumerate(values):
            if math.isfinite(value):
                level = (value - low) / ((high - low) or 1.0)  # where the colour is dark, write in white
                dark = abs(2 * level - 1) > 0.6 if signed else level < 0.45
                ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    figure.colorbar(image, ax=ax, label=colorbar, shrink=0.8)
    return figure
