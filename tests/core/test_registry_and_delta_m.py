"""Registries (strict names and options) and Δm% against hand-computed values."""

from __future__ import annotations

import pytest

from manytask._registry import OptionsError, Registry
from manytask.catalogue import REGISTRIES
from manytask.metrics import delta_m, higher_is_better


def test_duplicate_names_raise() -> None:
    registry: Registry[int] = Registry("thing")
    registry.register("x")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x")(lambda: 2)


def test_options_are_validated_against_the_signature() -> None:
    registry: Registry[float] = Registry("thing")

    @registry.register("scale")
    def scale(factor: float = 1.0, name: str = "s") -> float:
        return factor

    assert registry.validate("scale", {"factor": "2.5"}) == {"factor": 2.5}
    with pytest.raises(OptionsError, match="Unknown option 'factr'.*Did you mean 'factor'"):
        registry.validate("scale", {"factr": 2})
    with pytest.raises(OptionsError, match="Option 'factor'.*valid number"):
        registry.validate("scale", {"factor": "big"})
    assert registry.validate("scale", {"factor": None}) == {}


def test_a_missing_required_option_and_a_flag_for_a_number_are_named() -> None:
    """Before the fix ``aux-schedule`` without ``steps`` ended in a TypeError traceback from its
    constructor, and ``steps: true`` trained with steps = 1."""
    registry: Registry[float] = Registry("thing")

    @registry.register("decay")
    def decay(tasks: list[str], steps: int, rate: float | None = None, on: bool = True) -> float:
        return 1.0

    with pytest.raises(OptionsError, match=r"Thing 'decay' needs option\(s\) 'steps' \(`manytask explain decay`"):
        registry.validate("decay", {}, ("tasks",), complete=True)
    assert registry.validate("decay", {}, ("tasks",)) == {}  # the caller supplies more than the config
    with pytest.raises(OptionsError, match="Option 'steps' of thing 'decay' is a number; got True"):
        registry.validate("decay", {"steps": True}, ("tasks",))
    with pytest.raises(OptionsError, match="Option 'rate' of thing 'decay' is a number; got False"):
        registry.validate("decay", {"steps": 3, "rate": False}, ("tasks",))
    assert registry.validate("decay", {"steps": 3, "on": False}, ("tasks",)) == {"steps": 3, "on": False}


def test_every_kind_is_listed_and_populated() -> None:
    assert set(REGISTRIES) == {"models", "encoders", "balancers", "samplers", "datasets", "metrics", "views",
                               "auxiliary", "linear"}
    assert {"ew", "uw", "dwa", "gradnorm", "mgda", "pcgrad"} <= set(REGISTRIES["balancers"].names())
    assert {"uniform", "proportional", "temperature", "annealed", "round_robin"} <= set(REGISTRIES["samplers"].names())
    assert "hps" in REGISTRIES["models"] and "demo" in REGISTRIES["datasets"]


def test_delta_m_by_hand() -> None:
    # accuracy 0.8 -> 0.9 is +12.5 %; rmse 2.0 -> 1.5 is +25 % (lower is better); mean 18.75 %.
    value = delta_m({"a/accuracy": 0.9, "b/rmse": 1.5}, {"a/accuracy": 0.8, "b/rmse": 2.0},
                    {"a/accuracy": True, "b/rmse": False})
    assert value == pytest.approx(18.75)
    assert higher_is_better("accuracy") and not higher_is_better("rmse")


def test_delta_m_errors() -> None:
    with pytest.raises(ZeroDivisionError, match="baseline of 'a/x' is 0"):
        delta_m({"a/x": 1.0}, {"a/x": 0.0}, {"a/x": True})
    with pytest.raises(KeyError, match="no multi-task value"):
        delta_m({}, {"a/x": 1.0}, {"a/x": True})


def test_delta_m_with_negative_baselines_by_hand() -> None:
    # a/ll (higher is better): -2 -> -1 is +(-1 - -2)/|-2| = +50 %;
    # b/nll (lower is better): -4 -> -3 is -(-3 - -4)/|-4| = -25 %; mean (50 - 25)/2 = 12.5 %.
    # The paper's M_b denominator would give (1/-2 = -50 % and +25 %) -12.5 %: the opposite sign.
    value = delta_m({"a/ll": -1.0, "b/nll": -3.0}, {"a/ll": -2.0, "b/nll": -4.0}, {"a/ll": True, "b/nll": False})
    assert value == pytest.approx(12.5)


def test_a_broken_annotation_is_an_error_not_unchecked_options() -> None:
    """The defect: any failure to read a factory's annotations (``except Exception``) turned option
    validation off; only an unresolvable name may leave its own parameter unchecked."""
    registry: Registry[object] = Registry("thing")

    def factory(size: int | 3 = 3) -> object:  # type: ignore[valid-type]  # read only by the registry
        return size

    registry.register("broken")(factory)
    with pytest.raises(TypeError, match=r"annotations of thing 'broken' .*unsupported operand"):
        registry.validate("broken", {"size": "many"})
