"""``StrictModel`` and ``validation_messages``: unknown keys are errors that name the fix."""

from __future__ import annotations

from typing import Literal

import pydantic
import pytest

from manytask._utils import StrictModel, validation_messages


class Inner(StrictModel):
    steps: int = 1
    seed: int = 0


class Outer(StrictModel):
    training: Inner = Inner()
    tasks: dict[str, Inner] = {}
    maybe: Inner | None = None
    kind: Literal["a", "b"] = "a"


def _messages(raw: dict, **kwargs: str) -> list[str]:
    with pytest.raises(pydantic.ValidationError) as info:
        Outer.model_validate(raw)
    return validation_messages(info.value, Outer, **kwargs)


def test_strict_model_forbids_unknown_keys() -> None:
    assert Outer.model_config["extra"] == "forbid"
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        Inner.model_validate({"stepz": 1})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"trainig": {}},
            "Unknown key 'trainig'. Did you mean 'training'? Valid keys here: training, tasks, "
            "maybe, kind.",
        ),
        (
            {"training": {"stepz": 2}},
            "Unknown key 'training.stepz'. Did you mean 'training.steps'? Valid keys here: "
            "steps, seed.",
        ),
        (  # through a dict of models and an optional model
            {"tasks": {"t": {"seedd": 1}}},
            "Unknown key 'tasks.t.seedd'. Did you mean 'tasks.t.seed'? Valid keys here: steps, "
            "seed.",
        ),
        ({"maybe": {"zzz": 1}}, "Unknown key 'maybe.zzz'. Valid keys here: steps, seed."),
        (
            {"training": {"steps": "many"}},
            "Key 'training.steps': Input should be a valid integer, unable to parse string as an "
            "integer (got 'many').",
        ),
        ({"kind": "c"}, "Key 'kind': Input should be 'a' or 'b' (got 'c')."),
    ],
)
def test_one_sentence_per_problem(raw: dict, expected: str) -> None:
    assert _messages(raw) == [expected]


def test_every_problem_is_listed_and_the_noun_is_configurable() -> None:
    lines = _messages({"kind": "c", "trainig": {}}, noun="option", where=" of model 'm'")
    assert lines == [
        "Option 'kind' of model 'm': Input should be 'a' or 'b' (got 'c').",
        "Unknown option 'trainig' of model 'm'. Did you mean 'training'? Valid options here: "
        "training, tasks, maybe, kind.",
    ]


def test_missing_key_and_no_model() -> None:
    class Needs(StrictModel):
        name: str

    with pytest.raises(pydantic.ValidationError) as info:
        Needs.model_validate({"nme": "x"})
    assert validation_messages(info.value) == [
        "Key 'name': Field required.",
        "Unknown key 'nme'.",  # without the model there is nothing to suggest
    ]
