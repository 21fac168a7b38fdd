"""Every ``tasks.<name>`` key is applied or refused, before training: the defects an audit found
where a key was dropped silently or a mistake surfaced only mid-training."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from manytask.config import ConfigError, parse_config
from manytask.demos import DEMO_CONFIG
from manytask.models import GradientReversal
from manytask.runs import build_experiment, train
from manytask.tasks import Classification, SequenceLabelling
from manytask.views import create_view

AE = {"view": "reconstruct", "kind": "regression", "num_outputs": 20}


def build(tmp_path: Path, **sections: Any) -> Any:
    raw = copy.deepcopy(DEMO_CONFIG)
    raw["run_dir"] = str(tmp_path)
    raw["training"] = {"steps": 5, "eval_every": 5, "progress": False}
    raw.update(sections)
    return build_experiment(parse_config(raw))


def test_a_view_task_applies_its_reversal_and_head_grid_keys(tmp_path: Path) -> None:
    """Before the fix ``reversal``, ``reversal_schedule`` and ``head_grid`` of a view task were
    dropped: the head reversed with strength 1 on Ganin's ramp whatever the config said."""
    experiment = build(tmp_path, tasks={"ae": {**AE, "role": "adversarial", "reversal": 0.1,
                                               "reversal_schedule": "constant"}})
    task = next(t for t in experiment.tasks if t.name == "ae")
    assert (task.role, task.reversal, task.reversal_schedule) == ("adversarial", 0.1, "constant")
    reversal = experiment.model.heads["ae"][0]
    assert isinstance(reversal, GradientReversal) and reversal.scale == 0.1 and reversal.schedule == "constant"
    with pytest.raises(ConfigError, match="Task 'ae': head_grid applies to a sample-level head on a map"):
        build(tmp_path, tasks={"ae": {**AE, "head_grid": 2}})  # read, and refused on the demo's vectors


@pytest.mark.parametrize(("spec", "match"), [
    ({**AE, "crf": True}, r"tasks.ae': crf applies to sequence-labelling tasks"),
    ({**AE, "num_classes": 3}, r"tasks.ae': num_classes does not apply to a regression task; set its num_outputs"),
    ({"view": "reconstruct", "kind": "classification", "num_classes": 3, "num_outputs": 2},
     r"num_outputs does not apply to a classification task; set its num_classes"),
])
def test_a_view_task_key_that_does_not_apply_is_refused(tmp_path: Path, spec: dict[str, Any], match: str) -> None:
    """Before the fix these were accepted and ignored."""
    with pytest.raises(ConfigError, match=match):
        build(tmp_path, tasks={"ae": spec})


@pytest.mark.parametrize("key", [{"kind": "regression"}, {"num_classes": 3}, {"num_outputs": 2}])
def test_output_keys_on_a_dataset_task_are_refused(tmp_path: Path, key: dict[str, Any]) -> None:
    """Before the fix ``category: {kind: regression, num_classes: 3}`` left category an 8-class
    classifier, silently."""
    name = next(iter(key))
    with pytest.raises(ConfigError, match=rf"tasks.category': {name} define a task the config makes itself.*"
                                          rf"'category' is the dataset's classification task.*Remove {name}"):
        build(tmp_path, tasks={"category": key})


@pytest.mark.parametrize("spec", [{"reversal": 0.3}, {"role": "auxiliary", "reversal_schedule": "constant"}])
def test_reversal_keys_on_a_task_that_is_not_adversarial_are_refused(tmp_path: Path, spec: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"tasks.flag': reversal.* apply to adversarial tasks.*Set role: adversarial"):
        build(tmp_path, tasks={"flag": spec})


def test_a_metric_that_does_not_fit_the_task_is_refused_before_training(tmp_path: Path) -> None:
    """Before the fix ``flag: {metrics: [rmse]}`` trained until the first evaluation, then raised
    a traceback and left a half-written run directory."""
    run_dir = tmp_path / "run"
    raw = copy.deepcopy(DEMO_CONFIG) | {"tasks": {"flag": {"metrics": ["rmse"]}},
                                        "training": {"steps": 6, "eval_every": 3, "progress": False}}
    with pytest.raises(ConfigError, match=r"Task 'flag': metric 'rmse' does not apply to a binary task. Its metrics "
                                          r"can be: .*accuracy"):
        train(parse_config(raw), run_dir=run_dir)
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_a_start_after_the_last_step_is_refused(tmp_path: Path) -> None:
    """Before the fix the task never trained and its untrained head was scored."""
    with pytest.raises(ConfigError, match=r"tasks.flag': start: 50 is not before the last step \(training.steps: 5\)"):
        build(tmp_path, tasks={"flag": {"role": "auxiliary", "start": 50}})
    build(tmp_path, tasks={"flag": {"role": "auxiliary", "start": 4}})


def test_a_view_with_more_class_ids_than_the_task_has_classes_is_refused() -> None:
    """Two sample rows could not show it; the run crashed with 'Target 500 is out of bounds' later."""
    from manytask.runs._preflight import check_view_classes

    words = SequenceLabelling("words", num_classes=500, view="masked_words")
    info = {"vocab_size": 9000}
    with pytest.raises(ConfigError, match=r"tasks.words': view 'masked_words' makes targets with 520 class ids, "
                                          r"but the task has num_classes 500; set num_classes: 520 \(or lower"):
        check_view_classes({"masked_words": create_view("masked_words", predict=520)}, [words], info)
    with pytest.raises(ConfigError, match="9000 class ids"):  # every word is a target
        check_view_classes({"masked_words": create_view("masked_words")}, [words], info)
    check_view_classes({"masked_words": create_view("masked_words", predict=500)}, [words], info)
    check_view_classes({"masked_words": create_view("masked_words", predict=520)}, [words], {"vocab_size": 400})
    turns = Classification("turns", num_classes=2, view="rotation")
    with pytest.raises(ConfigError, match="4 class ids.*set num_classes: 4."):
        check_view_classes({"rotation": create_view("rotation")}, [turns], {})


def test_through_a_config_the_view_class_check_runs_before_training(tmp_path: Path,
                                                                    real_data: Callable[[str], Path]) -> None:
    run_dir = tmp_path / "run"
    config = parse_config({
        "data": {"name": "conll2000", "root": str(real_data("conll2000")), "vocab_order": "frequency"},
        "tasks": {"words": {"view": "next_word", "kind": "classification", "level": "token", "num_classes": 500}},
        "views": {"next_word": {"predict": 520}},
        "model": {"name": "hps", "encoder": {"name": "bilstm", "embedding_dim": 8, "hidden": 8}},
        "training": {"steps": 4, "eval_every": 4, "progress": False},
    })
    with pytest.raises(ConfigError, match="view 'next_word' makes targets with 520 class ids"):
        train(config, run_dir=run_dir)
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_an_aux_schedule_with_no_auxiliary_task_is_refused(tmp_path: Path) -> None:
    """Before the fix it trained as plain EW, silently."""
    with pytest.raises(ConfigError, match=r"aux-schedule weights the auxiliary tasks, and none of \['category', "
                                          r"'score', 'flag'\] is one"):
        build(tmp_path, balancer={"name": "aux-schedule", "steps": 10})
    build(tmp_path, balancer={"name": "aux-schedule", "steps": 10}, tasks={"flag": {"role": "auxiliary"}})
    build(tmp_path, balancer={"name": "aux-schedule", "steps": 10}, include_tasks=["score"])  # a baseline
