"""TaskAffinity against a closed form: identical tasks pull together, an adversarial one conflicts;
training with the probe is training without it; a resume between evaluations is exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from manytask import HardSharing, MultiSourceLoader, Regression, TensorSource, Trainer, create_balancer
from manytask.config import parse_config
from manytask.relatedness import TaskAffinity, load_matrices
from manytask.runs import train
from manytask.training import Evaluation


def _problem(n: int = 64, d: int = 5, lr: float = 0.1, every: int = 1, steps: int = 1,  # type: ignore[no-untyped-def]
             level: str = "exact"):
    """Three tasks on one shared linear map w (starting at 0) with heads frozen at 1: ``same``
    has a's targets, ``opposite`` their negation."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=generator)
    y = x @ torch.randn(d, generator=generator)
    tasks = [Regression("a"), Regression("same"), Regression("opposite")]
    encoder = torch.nn.Linear(d, 1, bias=False)
    torch.nn.init.zeros_(encoder.weight)
    model = HardSharing(encoder, tasks, feature_dim=1)
    for head in model.heads.values():
        torch.nn.init.ones_(head.weight)
        torch.nn.init.zeros_(head.bias)
        head.requires_grad_(False)
    source = TensorSource(x, {"a": y, "same": y, "opposite": -y})
    balancer = create_balancer("ew", tasks)
    optimizer = torch.optim.SGD(model.encoder.parameters(), lr=lr)
    probe = TaskAffinity(every=every, level=level)
    trainer = Trainer(model, tasks, balancer, optimizer, MultiSourceLoader({"train": source}, batch_size=n, seed=0),
                      steps=steps, evaluation=Evaluation(None, every=steps), progress=False, callbacks=[probe])
    return trainer, probe, x.double().numpy(), y.double().numpy()


def test_identical_tasks_agree_and_an_adversarial_one_conflicts_by_the_closed_form() -> None:
    """At w = 0: g_a = g_same = -(2/n) X^T y = -g_opposite, so the cosines are +1 and -1; a step
    of size lr on task a moves w to (2 lr / n) X^T y, and Z[a, j] = 1 - L_j(w') / L_j(0), computed
    here with numpy."""
    trainer, probe, x, y = _problem()
    trainer.fit()
    cosine, conflict, _, affinity = (m.values for m in probe.matrices())
    np.testing.assert_allclose(cosine[0, 1], 1.0, atol=1e-6)
    np.testing.assert_allclose(cosine[0, 2], -1.0, atol=1e-6)
    assert conflict[0, 1] == 0 and conflict[0, 2] == 1 and conflict[1, 2] == 1
    n = len(y)
    w = (2 * 0.1 / n) * x.T @ y  # the lookahead step on task a (or same)
    base = np.mean(y ** 2)
    expected_same = 1 - np.mean((x @ w - y) ** 2) / base
    expected_opposite = 1 - np.mean((x @ w + y) ** 2) / base
    np.testing.assert_allclose(affinity[0, 1], expected_same, rtol=1e-4)
    np.testing.assert_allclose(affinity[0, 2], expected_opposite, rtol=1e-4)
    np.testing.assert_allclose(affinity[2, 0], expected_opposite, rtol=1e-4)  # -g_a on a: symmetric here
    assert affinity[0, 1] > 0 > affinity[0, 2]


def test_at_the_representation_the_same_signs_by_the_closed_form() -> None:
    """z = Xw = 0: the gradient of a's mean loss on z is -(2/n) y, the same for ``same`` and
    +(2/n) y for ``opposite``: cosines +1 and -1, norms equal (ratio 1)."""
    trainer, probe, _, _ = _problem(level="representation")
    trainer.fit()
    cosine, conflict, ratio, _ = (m.values for m in probe.matrices())
    np.testing.assert_allclose([cosine[0, 1], cosine[0, 2], ratio[0, 2]], [1.0, -1.0, 1.0], atol=1e-6)
    assert conflict[1, 2] == 1


def test_the_probe_leaves_training_as_it_was() -> None:
    """The lookahead moves the shared parameters and puts them back exactly: ten steps with the
    probe give the parameters of ten steps without it."""
    with_probe, _, _, _ = _problem(steps=10, every=2)
    with_probe.fit()
    without, _, _, _ = _problem(steps=10, every=2)
    without.callbacks = []
    without.fit()
    for a, b in zip(with_probe.model.parameters(), without.model.parameters()):
        assert torch.equal(a, b)


CONFIG = {"data": {"name": "demo", "n_train": 300, "n_val": 60, "n_test": 60},
          "model": {"encoder": {"hidden": [32], "dropout": 0.3}}, "balancer": {"name": "uw"},
          "training": {"steps": 20, "eval_every": 10, "checkpoint_every": 5, "progress": False},
          "relatedness": {"every": 3}}


def test_through_the_trainer_with_dropout_and_a_resume_between_evaluations(tmp_path: Path) -> None:
    """As a user runs it (dropout, UW, Adam, partial labels): the metrics.csv columns and the
    matrices of a run resumed at step 15 are those of the straight run."""
    train(parse_config(CONFIG), run_dir=tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "split")
    shutil.rmtree(tmp_path / "split" / "relatedness")
    train(parse_config(CONFIG), run_dir=tmp_path / "split",
          resume=tmp_path / "split" / "checkpoints" / "step-000000015.safetensors")
    straight, split = load_matrices(tmp_path / "straight"), load_matrices(tmp_path / "split")
    assert [m.name for m in straight] == ["gradient_conflict", "gradient_cosine", "gradient_norm_ratio",
                                          "tag_affinity"]
    for a, b in zip(straight, split):
        np.testing.assert_array_equal(a.values, b.values)
    rows = [(tmp_path / run / "metrics.csv").read_text().splitlines() for run in ("straight", "split")]
    header = rows[0][0].split(",")
    picked = [k for k, name in enumerate(header) if name.startswith(("grad/", "grad_norm/"))]
    assert len(picked) == 4  # grad/conflict and one norm per task
    assert [[r.split(",")[k] for k in picked] for r in rows[0]] == [[r.split(",")[k] for k in picked] for r in rows[1]]


def test_a_model_that_shares_nothing_is_refused(tmp_path: Path) -> None:
    config = {**CONFIG, "model": {"name": "independent"}}
    with pytest.raises(ValueError, match="needs shared parameters"):
        train(parse_config(config), run_dir=tmp_path / "run")
    config = {**CONFIG, "model": {"name": "cross_stitch"}, "relatedness": {"every": 2, "level": "representation"}}
    with pytest.raises(ValueError, match="needs one shared representation; CrossStitch"):
        train(parse_config(config), run_dir=tmp_path / "other")


def test_a_lookahead_that_blows_a_loss_up_is_said_not_hidden(caplog: pytest.LogCaptureFixture) -> None:
    """A task on a 1e11 scale: the lookahead step on it sends the other task's loss to inf. That
    measurement was left out of the mean without a word, so the damage read as "not measured"
    (NaN, which grouping counts as 0); it is still left out, but the log names the step and tasks."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=generator)
    y = {"big": 1e11 * (x @ torch.randn(4, generator=generator)), "small": x @ torch.randn(4, generator=generator)}
    tasks = [Regression("big"), Regression("small")]
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 8))
    model = HardSharing(trunk, tasks, feature_dim=8)
    probe = TaskAffinity(every=1)
    trainer = Trainer(model, tasks, create_balancer("ew", tasks), torch.optim.Adam(model.parameters(), lr=0.01),
                      MultiSourceLoader({"train": TensorSource(x, y)}, batch_size=32, seed=0), steps=3,
                      evaluation=Evaluation(None, every=3), progress=False, callbacks=[probe])
    with caplog.at_level("WARNING", logger="manytask"):
        trainer.fit()
    assert "the lookahead step on 'big' sent the loss of ['big', 'small'] to inf or NaN" in caplog.text
    assert "left out of tag_affinity" in caplog.text
