"""Every registered encoder (and plain modules) under every registered sharing scheme."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

from manytask.balancing import create_balancer
from manytask.cli import app
from manytask.models import (
    ENCODERS,
    MODELS,
    AdaptiveSharing,
    Backbone,
    HardSharing,
    Independent,
    MultiTaskModel,
    create_encoder,
    create_model,
)
from manytask.tasks import BinaryClassification, Classification, Regression, SequenceLabelling, Task
from manytask.training import BackwardEngine

from .helpers import absent_task_trainer

B, L = 3, 7


def tokens() -> Tensor:
    x = torch.randint(1, 30, (B, L))
    x[0, 5:] = 0
    x[2, 2:] = 0
    return x


@dataclass
class Case:
    """An encoder (registered name + options, or a plain-module factory), inputs, and the tasks
    its layout allows."""

    id: str
    inputs: Tensor
    tasks: list[Task]
    name: str = ""
    options: Mapping[str, object] = field(default_factory=dict)
    feature_dim: int | None = None

    def encoder(self) -> nn.Module:
        if self.name:
            return create_encoder(self.name, **self.options)
        if self.id == "plain-linear":
            return nn.Linear(5, 8)  # vector, out_features read from the module
        embedding = nn.Embedding(30, 8, padding_idx=0)  # a plain module with a sequence layout
        embedding.layout = "sequence"  # type: ignore[assignment]
        return embedding


def sample_tasks() -> list[Task]:
    return [Classification("cls", num_classes=3), Regression("reg", num_outputs=2),
            BinaryClassification("adv", num_labels=2, role="adversarial", reversal=0.5)]


def sequence_tasks() -> list[Task]:
    return [SequenceLabelling("pos", num_classes=5), Regression("tok", num_outputs=2, level="token"),
            Classification("sent", num_classes=2), Regression("adv", role="adversarial")]


def map_tasks() -> list[Task]:
    return [Classification("digit", num_classes=3), Regression("inpaint", level="pixel"),
            Classification("seg", num_classes=4, level="pixel", head_hidden=5), Regression("adv", role="adversarial")]


def cases() -> list[Case]:
    images = torch.randn(B, 1, 28, 28)
    return [
        Case("mlp", torch.randn(B, 5), sample_tasks(), "mlp", {"in_features": 5, "hidden": [8, 6]}),
        Case("cnn", images, map_tasks(), "cnn"),
        Case("cnn-vector", images, sample_tasks(), "cnn", {"out_features": 16}),
        Case("bilstm", tokens(), sequence_tasks(), "bilstm", {"vocab_size": 30, "embedding_dim": 8, "hidden": 4,
                                                              "layers": 2}),
        Case("transformer", tokens(), sequence_tasks(), "transformer",
             {"vocab_size": 30, "dim": 8, "heads": 2, "layers": 2, "feedforward": 16}),
        Case("plain-linear", torch.randn(B, 5), sample_tasks()),
        Case("plain-sequence", tokens(), sequence_tasks(), feature_dim=8),
    ]


CASES = cases()


def build(scheme: str, case: Case) -> MultiTaskModel:
    model = create_model(scheme, encoder=case.encoder(), tasks=case.tasks, feature_dim=case.feature_dim)
    if isinstance(model, AdaptiveSharing):  # split the top: the first task apart from the others
        affinity = torch.ones(len(case.tasks), len(case.tasks))
        affinity[0, 1:] = affinity[1:, 0] = 0.0
        assert model.widen(affinity)
    return model


def expected_shape(task: Task, inputs: Tensor) -> tuple[int, ...]:
    if task.level == "sample":
        return (B, task.out_features)
    if task.level == "token":
        return (B, L, task.out_features)
    return (B, task.out_features, *inputs.shape[-2:])


def test_every_registered_encoder_and_scheme_is_covered() -> None:
    assert {c.name for c in CASES if c.name} == set(ENCODERS.names())
    assert MODELS.names() == ["adaptive", "branching", "cgc", "cross_stitch", "dmtrl", "hps", "independent", "jmt", "low_supervision", "mmoe", "mtan", "ple", "relationship", "sluice", "soft"]


@pytest.mark.parametrize("scheme", MODELS.names())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_output_shapes_per_task(scheme: str, case: Case) -> None:
    model = build(scheme, case)
    out = model(case.inputs)
    assert list(out) == [t.name for t in case.tasks]
    for task in case.tasks:
        assert out[task.name].shape == expected_shape(task, case.inputs), task.name
    some = [case.tasks[-1].name, case.tasks[0].name]
    assert list(model(case.inputs, some)) == some


@pytest.mark.parametrize("scheme", MODELS.names())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradients_reach_every_parameter(scheme: str, case: Case) -> None:
    model = build(scheme, case)
    sum(o.sum() for o in model(case.inputs).values()).backward()
    spare = {id(p) for p in model.spare_parameters()}  # copies no task reads yet (adaptive)
    assert [n for n, p in model.named_parameters() if (p.grad is None) != (id(p) in spare)] == []


@pytest.mark.parametrize("scheme", MODELS.names())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_state_dict_round_trip(scheme: str, case: Case) -> None:
    model = build(scheme, case).eval()
    torch.manual_seed(123)
    fresh = build(scheme, case).eval()
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), fresh.parameters()))
    fresh.load_state_dict(copy.deepcopy(model.state_dict()))
    expected = model(case.inputs)
    for key, value in fresh(case.inputs).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


@pytest.mark.parametrize("scheme", MODELS.names())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_float64(scheme: str, case: Case) -> None:
    model = build(scheme, case).double()
    inputs = case.inputs.double() if case.inputs.is_floating_point() else case.inputs
    out = model(inputs)
    assert all(v.dtype == torch.float64 and torch.isfinite(v).all() for v in out.values())
    sum(o.sum() for o in out.values()).backward()
    spare = {id(p) for p in model.spare_parameters()}
    assert all(p.grad is not None and p.grad.dtype == torch.float64 for p in model.parameters() if id(p) not in spare)


@pytest.mark.parametrize("scheme", MODELS.names())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_shared_and_task_parameters_partition_the_model(scheme: str, case: Case) -> None:
    model = build(scheme, case)
    shared = model.shared_modules()
    for a in shared:  # none a child of another: torchjd's autogram engine hooks each once
        for b in shared:
            assert a is b or all(m is not b for m in a.modules())
    in_modules = {id(p) for m in shared for p in m.parameters()}
    if scheme == "adaptive":  # its partition changes as it widens (shared: the nodes two or more tasks read)
        assert in_modules and {id(p) for p in model.task_parameters(case.tasks[0].name)} > {
            id(p) for p in model.heads[case.tasks[0].name].parameters()}  # the split-off node is its own
    assert in_modules == {id(p) for p in model.shared_parameters()}
    per_task = [{id(p) for p in model.task_parameters(t.name)} for t in case.tasks]
    spare = {id(p) for p in model.spare_parameters()}
    everything = in_modules.union(*per_task, spare)
    assert everything == {id(p) for p in model.parameters()}
    assert sum(map(len, per_task)) + len(in_modules) + len(spare) == len(everything)  # disjoint
    if scheme == "adaptive":
        return
    if scheme in ("cgc", "ple"):  # shared experts and gates, and the per-task ones that reach other tasks
        assert model.shared in shared
        return
    if scheme == "branching":  # the nodes below the leaves, and the branching logits
        assert shared == [*model.nodes[:-1], model.parents]
        return
    expected = {"hps": ["encoder"], "low_supervision": ["encoder"], "jmt": ["encoder"], "cross_stitch": ["columns", "units"],
                "mmoe": ["experts"], "mtan": ["encoder", "carry"], "dmtrl": ["cores", "u1", "u2"], "sluice": ["columns", "alphas"],
                "relationship": ["shared"] if getattr(model, "shared", None) is not None else []}.get(scheme, [])
    assert shared == [getattr(model, name) for name in expected]
    assert bool(in_modules) == bool(expected)


@pytest.mark.parametrize("scheme", MODELS.names())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_tasks_gradient_reaches_only_shared_and_its_own_parameters(scheme: str, case: Case) -> None:
    """The partition is right: what one task's output reaches is shared or that task's own."""
    model = build(scheme, case)
    shared = {id(p) for p in model.shared_parameters()}
    out = model(case.inputs)
    reached_by: dict[str, int] = {}
    for task in case.tasks:
        params = [p for p in model.parameters()]
        grads = torch.autograd.grad(out[task.name].float().pow(2).sum(), params, retain_graph=True,
                                    allow_unused=True)
        own = {id(p) for p in model.task_parameters(task.name)}
        reached = [n for (n, p), g in zip(model.named_parameters(), grads) if g is not None and bool(g.ne(0).any())]
        assert [n for (n, p) in model.named_parameters() if n in reached and id(p) not in shared | own] == []
        for name in reached:
            reached_by[name] = reached_by.get(name, 0) + 1
    # and the converse: a shared parameter serves several tasks (one that serves one task alone is
    # that task's own: a gradient method must give it the task's plain gradient)
    assert [n for n, p in model.named_parameters() if id(p) in shared and reached_by.get(n, 0) == 1] == []


@pytest.mark.parametrize("case", [c for c in CASES if c.name], ids=[c.id for c in CASES if c.name])
def test_independent_copies_draw_fresh_weights(case: Case) -> None:
    """Each task's copy has weights of its own, drawn as a new encoder's are (a reinitialised
    transformer keeps its scaled embeddings; attention weights are redrawn too)."""
    model = Independent(case.encoder(), case.tasks, case.feature_dim)
    first, second = (model.encoders[t.name] for t in case.tasks[:2])
    assert isinstance(first, Backbone) and isinstance(second, Backbone)
    for (key, p), q in zip(first.named_parameters(), second.parameters()):
        constant = bool((p == p.flatten()[0]).all()) and bool((q == q.flatten()[0]).all())  # zero biases, norms
        assert constant or not torch.equal(p, q), key
        assert constant or p.std().item() == pytest.approx(q.std().item(), rel=0.5), key


def test_hard_sharing_keeps_a_plain_encoder_as_it_is() -> None:
    encoder = nn.Linear(5, 8)
    model = HardSharing(encoder, sample_tasks())
    assert model.encoder is encoder and list(model.state_dict())[:2] == ["encoder.weight", "encoder.bias"]
    with pytest.raises(ValueError, match="Cannot tell the feature size of encoder Sequential: pass feature_dim"):
        HardSharing(nn.Sequential(nn.Linear(5, 8)), sample_tasks())
    with pytest.raises(ValueError, match="'pos' is token-level .* Use a backbone whose last stage keeps that layout"):
        HardSharing(encoder, sequence_tasks())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_exact_gramian_through_every_encoder(case: Case) -> None:
    """Linear and convolutional trunks use the layer Gramian; torchjd's autogram engine hooks the shared
    modules of every other encoder but the LSTM's, where the engine falls back to the Jacobian and
    says so; all give MGDA's weights."""
    model = HardSharing(case.encoder(), case.tasks, case.feature_dim)
    engine = BackwardEngine(model, create_balancer("mgda", case.tasks))
    linear = case.id in ("mlp", "plain-linear", "cnn", "cnn-vector")
    assert (engine.linear_gramian is not None) == linear
    assert (engine.gramian_engine is None) == (case.name == "bilstm" or linear)
    engine.begin_step()
    out = engine.forward(case.inputs, [t.name for t in case.tasks])
    sums = torch.stack([out[t.name].float().pow(2).sum() for t in case.tasks])
    weights = engine.backward(sums, torch.ones(len(case.tasks)), step=0)[1]
    assert torch.isfinite(weights).all() and weights.sum().item() == pytest.approx(1.0)
    assert all(p.grad is not None for p in model.parameters())


def test_list_shows_the_encoders_and_their_layouts() -> None:
    result = CliRunner().invoke(app, ["list", "encoders"])
    assert result.exit_code == 0, result.output
    for name in ENCODERS.names():
        assert f"  {name} " in result.output
    assert "layout: sequence" in result.output and "Vaswani et al. 2017" in result.output
    assert "layout: map, or vector with out_features" in result.output
    models = CliRunner().invoke(app, ["list", "models"]).output
    assert "hps" in models and "independent" in models


GRADIENT_METHODS = [("mgda", {}), ("pcgrad", {}), ("upgrad", {}), ("cagrad", {}), ("graddrop", {"level": "exact"}),
                    ("gradnorm", {})]


@pytest.mark.parametrize("scheme", MODELS.names())
@pytest.mark.parametrize("method, options", GRADIENT_METHODS, ids=[m for m, _ in GRADIENT_METHODS])
def test_gradient_methods_work_exactly_on_every_scheme_that_shares(scheme: str, method: str,
                                                                    options: dict[str, object]) -> None:
    """Exact mode of the Gramian, Jacobian and last-shared-layer methods on every scheme with shared
    parameters (T = 3, one step): finite weights, a gradient on every shared parameter; schemes that
    share nothing are refused by name."""
    torch.manual_seed(0)
    case = CASES[0]  # the MLP
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    model = create_model(scheme, encoder=case.encoder(), tasks=tasks)
    balancer = create_balancer(method, tasks, **options)
    if not any(True for _ in model.shared_parameters()):
        with pytest.raises(ValueError, match="shares none"):
            BackwardEngine(model, balancer)
        return
    engine = BackwardEngine(model, balancer)
    engine.begin_step()
    out = engine.forward(case.inputs, ["a", "b", "c"])
    targets = torch.randn(B, 3)
    sums = torch.stack([(out[n].squeeze(1) - targets[:, i]).pow(2).sum() for i, n in enumerate("abc")])
    losses, weights = engine.backward(sums, torch.full((3,), float(B)), step=0)
    assert torch.isfinite(weights).all() and torch.isfinite(losses).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.shared_parameters())


@pytest.mark.parametrize("scheme", MODELS.names())
@pytest.mark.parametrize("balancer", ["ew", "mgda"])
def test_a_task_absent_for_several_steps_keeps_its_own_parameters(scheme: str, balancer: str) -> None:
    """T = 3 under Adam on a 3-stage MLP, task ``c`` labelled at the first step, then unlabelled
    for three: its own parameters do not move while it is absent (no gradient, so Adam, whose
    momentum it has from the first step, leaves them alone; a zero gradient would move them) while
    the shared ones do; then it trains again. (A penalty that couples the tasks' columns, soft
    sharing's or the relationship prior, moves them by design: it is off here.)"""
    tasks = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2)]
    torch.manual_seed(0)
    options = {"strength": 0.0} if scheme in ("soft", "relationship") else {}
    model = create_model(scheme, encoder=create_encoder("mlp", in_features=5, hidden=[8, 8, 6]), tasks=tasks,
                         **options)
    shared = list(model.shared_parameters())
    if balancer == "mgda" and not shared:
        return  # nothing shared: gradient methods are refused (tested above)
    trainer = absent_task_trainer(model, tasks, balancer, present_at=(0, 4, 5, 6, 7))
    trainer._train_step()
    assert bool(trainer.engine.present[2])
    own = [p.detach().clone() for p in model.task_parameters("c")]
    before = [p.detach().clone() for p in shared]
    for _ in range(3):
        trainer._train_step()
        assert not bool(trainer.engine.present[2])
    names = {id(p): n for n, p in model.named_parameters()}
    moved = [names[id(p)] for p, q in zip(model.task_parameters("c"), own) if not torch.equal(p, q)]
    assert not moved, f"absent task c's own parameters moved: {moved}"
    assert not shared or not all(torch.equal(p, q) for p, q in zip(shared, before))
    for _ in range(4):
        trainer._train_step()
    assert not all(torch.equal(p, q) for p, q in zip(model.task_parameters("c"), own))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("scheme", MODELS.names())
def test_representation_level_works_or_says_why(scheme: str) -> None:
    """A scheme with one representation every head reads takes representation-level balancing;
    the others refuse it by name and point to the exact level."""
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    model = create_model(scheme, encoder=create_encoder("mlp", in_features=5, hidden=[8, 6]), tasks=tasks)
    balancer = create_balancer("mgda", tasks, level="representation")
    shares = any(True for _ in model.shared_parameters())
    if model.has_features:
        engine = BackwardEngine(model, balancer)
        engine.begin_step()
        out = engine.forward(torch.randn(B, 5), ["a", "b", "c"])
        weights = engine.backward(torch.stack([out[n].pow(2).sum() for n in "abc"]), torch.full((3,), float(B)),
                                  step=0)[1]
        assert torch.isfinite(weights).all()
    else:
        match = "has none; use level='exact'" if shares else "shares none"
        with pytest.raises(ValueError, match=match):
            BackwardEngine(model, balancer)
