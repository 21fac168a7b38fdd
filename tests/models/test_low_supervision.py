"""Low supervision: heads read the stage they name; every head at the top is hard sharing; a low
task's gradient stops at its stage; the exact Gramian against per-task autograd; config errors."""

from __future__ import annotations

import copy
from typing import ClassVar

import pytest
import torch
from torch import Tensor

from manytask.balancing import GramianBalancer, create_balancer
from manytask.config import ConfigError, parse_config
from manytask.models import MLP, HardSharing, LowSupervision, create_encoder, create_model
from manytask.runs import build_experiment
from manytask.tasks import Classification, Regression, SequenceLabelling
from manytask.training import BackwardEngine


def tasks(low: int | None = 1) -> list:
    return [Classification("low", num_classes=3, attach_at=low), Regression("mid", attach_at=2),
            Regression("high", num_outputs=2)]


def test_heads_read_the_stage_they_name() -> None:
    torch.manual_seed(0)
    model = LowSupervision(MLP(5, (7, 6, 4)), tasks())
    x = torch.randn(4, 5)
    stages = model.encoder.forward_stages(x)
    out = model(x)
    torch.testing.assert_close(out["low"], model.heads["low"](stages[0]))
    torch.testing.assert_close(out["mid"], model.heads["mid"](stages[1]))
    torch.testing.assert_close(out["high"], model.heads["high"](stages[2]))
    assert not model.has_features


def test_every_head_at_the_top_is_hard_sharing() -> None:
    torch.manual_seed(0)
    top = [Classification("low", num_classes=3), Regression("mid", attach_at=2), Regression("high", num_outputs=2)]
    model = LowSupervision(MLP(5, (7, 4)), top)
    hard = HardSharing(copy.deepcopy(model.encoder), top)
    hard.heads.load_state_dict(model.heads.state_dict())
    x = torch.randn(4, 5)
    for name, value in model(x).items():
        torch.testing.assert_close(value, hard(x)[name], rtol=0, atol=0)
    assert model.has_features  # so representation-level balancing works as with hps
    BackwardEngine(model, create_balancer("mgda", top, level="representation"))


def test_a_low_task_stops_at_its_stage_and_runs_no_higher() -> None:
    torch.manual_seed(0)
    model = LowSupervision(MLP(5, (7, 6, 4)), tasks())
    calls = []
    model.encoder.stages[2].register_forward_hook(lambda *_: calls.append(1))
    model(torch.randn(4, 5), ["low"])["low"].sum().backward()
    assert calls == []
    assert all(p.grad is not None for p in model.encoder.stages[0].parameters())
    assert all(p.grad is None for s in (1, 2) for p in model.encoder.stages[s].parameters())


def test_pos_low_and_chunks_high_on_a_bilstm() -> None:
    """The paper's setting: POS tags from the first BiLSTM layer, chunks from the top one."""
    encoder = create_encoder("bilstm", vocab_size=30, embedding_dim=8, hidden=4, layers=2)
    model = LowSupervision(encoder, [SequenceLabelling("pos", num_classes=5, attach_at=2),
                                     SequenceLabelling("chunk", num_classes=7)])
    out = model(torch.randint(1, 30, (2, 6)))
    assert model.depths == {"pos": 2, "chunk": 3}
    assert out["pos"].shape == (2, 6, 5) and out["chunk"].shape == (2, 6, 7)


class Recorder(GramianBalancer):
    stateful: ClassVar[bool] = False

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        self.seen = gramian.detach().clone()
        return torch.ones(gramian.shape[0], dtype=gramian.dtype)


def test_exact_gramian_equals_per_task_autograd() -> None:
    torch.manual_seed(0)
    regression = [Regression("a", attach_at=1), Regression("b", attach_at=2), Regression("c")]
    model = LowSupervision(MLP(5, (6, 5, 4)), regression).double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    recorder = Recorder(regression)
    engine = BackwardEngine(model, recorder)
    engine.begin_step()
    out = engine.forward(x, ["a", "b", "c"])
    engine.backward(torch.stack([(out[n].squeeze(1) - y[:, i]).pow(2).sum() for i, n in enumerate("abc")]),
                    torch.full((3,), 6.0), step=0)
    shared = list(model.shared_parameters())
    out = model(x)
    rows = []
    for i, n in enumerate("abc"):
        grads = torch.autograd.grad((out[n].squeeze(1) - y[:, i]).pow(2).mean(), shared, retain_graph=True,
                                    allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, shared)]))
    jacobian = torch.stack(rows)
    torch.testing.assert_close(recorder.seen, jacobian @ jacobian.T, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="LowSupervision has none; use level='exact'"):
        BackwardEngine(model, create_balancer("mgda", regression, level="representation"))


def test_stages_that_do_not_exist_and_schemes_that_cannot_tap_are_named() -> None:
    with pytest.raises(ValueError, match="attach_at is a backbone stage, counted from 1"):
        Regression("a", attach_at=0)
    with pytest.raises(ValueError, match=r"ask for heads at stages the encoder does not have .* has 2 stage"):
        LowSupervision(MLP(5, (7, 4)), [Regression("a", attach_at=3)])
    with pytest.raises(ValueError, match="use model 'low_supervision'"):
        HardSharing(MLP(5, (7, 4)), [Regression("a", attach_at=1)])


def _config(model: str) -> dict:
    return {"data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
            "model": {"name": model, "encoder": {"name": "mlp", "hidden": [8, 6]}},
            "tasks": {"category": {"attach_at": 1}},
            "training": {"steps": 2, "progress": False}}


def test_from_a_config() -> None:
    model = build_experiment(parse_config(_config("low_supervision"))).model
    assert isinstance(model, LowSupervision) and model.depths["category"] == 1
    with pytest.raises(ConfigError, match="use model 'low_supervision'"):
        build_experiment(parse_config(_config("hps")))


def _reached_by(model: torch.nn.Module, outputs: dict[str, torch.Tensor]) -> dict[str, set[str]]:
    """Which tasks' outputs reach each parameter (a nonzero gradient), by autograd."""
    reached: dict[str, set[str]] = {n: set() for n, _ in model.named_parameters()}
    names, params = zip(*model.named_parameters())
    for task, out in outputs.items():
        grads = torch.autograd.grad(out.float().pow(2).sum(), params, retain_graph=True, allow_unused=True)
        for name, grad in zip(names, grads):
            if grad is not None and bool(grad.ne(0).any()):
                reached[name].add(task)
    return reached


@pytest.mark.parametrize("scheme", ["low_supervision", "jmt", "jmt-shortcuts"])
def test_a_stage_one_task_alone_reads_is_that_tasks_own(scheme: str) -> None:
    """Heads at stages 1, 2 and 3 of a four-stage MLP: stages 1-2 are shared, stage 3 only the top
    task reads (its own, as a head: a gradient method must give it the task's plain gradient, not
    w_t times it), stage 4 no task reads (spare); in jmt, the label embedding feeding stage 3 is
    the top task's own too. Checked against what autograd reaches."""
    torch.manual_seed(0)
    tasks = [Classification("low", num_classes=3, attach_at=1), Regression("mid", attach_at=2),
             Regression("top", attach_at=3)]
    options = {"shortcuts": True} if scheme == "jmt-shortcuts" else {}
    model = create_model(scheme.split("-")[0], encoder=MLP(5, (6, 6, 6, 6)), tasks=tasks, **options)
    reached = _reached_by(model, model(torch.randn(8, 5)))
    ids = {id(p): n for n, p in model.named_parameters()}
    shared = {ids[id(p)] for p in model.shared_parameters()}
    own = {t.name: {ids[id(p)] for p in model.task_parameters(t.name)} for t in tasks}
    spare = {ids[id(p)] for p in model.spare_parameters()}
    assert shared and all(len(reached[n]) >= 2 for n in shared)
    for task, names in own.items():
        assert all(reached[n] == {task} for n in names)
    assert spare == {n for n in reached if n.startswith(("encoder.stages.3.", "embeddings.top."))}
    assert {n for n in reached if n.startswith("encoder.stages.2.")} <= own["top"]
    assert shared | spare | set().union(*own.values()) == set(reached)
    if scheme.startswith("jmt"):
        assert {n for n in reached if n.startswith("embeddings.mid.")} <= own["top"]
        assert {n for n in reached if n.startswith("embeddings.low.")} <= shared
        assert {n for n in reached if n.startswith(("word_shortcuts.3.", "label_shortcuts.low@3."))} <= own["top"]
    hooked = {id(p) for m in model.shared_modules() for p in m.parameters()}
    assert hooked == {id(p) for p in model.shared_parameters()}
