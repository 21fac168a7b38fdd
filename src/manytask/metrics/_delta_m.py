"""Δm%: the average relative change of a multi-task model over single-task baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["delta_m"]


def delta_m(
    multitask: Mapping[str, float],
    baseline: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
) -> float:
    r"""Δm% of Maninis, Radosavovic & Kokkinos (2019, "Attentive Single-Tasking of Multiple Tasks").

    .. math::
        \Delta_m = \frac{100}{K} \sum_{k=1}^{K} (-1)^{l_k} \frac{M_{m,k} - M_{b,k}}{|M_{b,k}|}

    where :math:`l_k = 1` when lower is better for metric :math:`k`. The paper divides by
    :math:`M_{b,k}`; its metrics are positive, and dividing by :math:`|M_{b,k}|` keeps the sign
    meaning "better" when a baseline is negative (e.g. a log-likelihood). Positive means the
    multi-task model is better on average. A baseline of 0 makes Δm undefined (``ZeroDivisionError``).

    Args:
        multitask: Metric value of the multi-task model, by key (e.g. ``"b/rmse"``).
        baseline: Metric value of the single-task baseline, same keys.
        higher_is_better: Direction of each key.

    Returns:
        Δm in percent.

    Examples:
        >>> delta_m({"a/acc": 0.9, "b/rmse": 1.0}, {"a/acc": 0.8, "b/rmse": 2.0},
        ...         {"a/acc": True, "b/rmse": False})
        31.25
    """
    keys: Sequence[str] = list(baseline)
    if not keys:
        raise ValueError("delta_m needs at least one metric.")
    missing = [k for k in keys if k not in multitask or k not in higher_is_better]
    if missing:
        raise KeyError(f"delta_m: no multi-task value or direction for {missing}.")
    total = 0.0
    for key in keys:
        base = baseline[key]
        if base == 0:
            raise ZeroDivisionError(f"delta_m: the baseline of {key!r} is 0; Δm is undefined.")
        sign = 1.0 if higher_is_better[key] else -1.0
        total += sign * (multitask[key] - base) / abs(base)
    return 100.0 * total / len(keys)
