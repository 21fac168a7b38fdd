"""Δm%: the average relative change of a multi-task model over single-task baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["delta_m"]


def delta_m(
    multitask: Mapping[str, float],
    baseline: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
) -> float:
    r"""Δm% of Maninis, Radosavovic & Kokkinos (2019, "Attentive Single-Tasking of Multiple Tasks",
    CVPR, arXiv:1904.08918): the average relative change of a multi-task model over its baselines.

    The paper defines it, for a multi-task model :math:`m`, single-task baselines :math:`b` and
    :math:`T` tasks, as

    .. math::
        \Delta_m = \frac{1}{T} \sum_{i=1}^{T} (-1)^{l_i} \frac{M_{m,i} - M_{b,i}}{M_{b,i}}

    where :math:`M_{m,i}` and :math:`M_{b,i}` are the two models' values of the measure of task
    :math:`i`, and :math:`l_i = 1` if a lower value means better performance for that measure,
    :math:`0` otherwise. This function returns, in percent, over the :math:`K` keys of
    ``baseline`` (one per task for the paper's Δm):

    .. math::
        \Delta_m = \frac{100}{K} \sum_{k=1}^{K} (-1)^{l_k} \frac{M_{m,k} - M_{b,k}}{|M_{b,k}|}

    It divides by :math:`|M_{b,k}|` where the paper divides by :math:`M_{b,k}`. The two agree on
    the paper's measures, which are positive; on a negative baseline (a log-likelihood, say) the
    paper's form flips the sign, counting a better model as worse. Positive means the multi-task
    model is better on average. A baseline of 0 makes Δm undefined (``ZeroDivisionError``); a
    NaN value makes it NaN.

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
        >>> delta_m({"t/nll": -3.0}, {"t/nll": -2.0}, {"t/nll": False})  # lower is better: -3 beats -2
        50.0
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
