"""Joint Many-Task model: label embeddings fed upwards against a hand computation, no lower task
as hard sharing, padding kept zero, and successive regularisation with its epoch snapshot."""

from __future__ import annotations

import copy

import pytest
import torch

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MLP, HardSharing, JointManyTask, create_encoder
from manytask.tasks import Classification, Regression, SequenceLabelling
from manytask.training import Trainer, build_optimizer


def test_the_next_stage_reads_the_lower_tasks_label_embedding() -> None:
    torch.manual_seed(0)
    tasks = [Classification("low", num_classes=3, attach_at=1), Regression("mid", attach_at=1),
             Regression("high", num_outputs=2)]
    model = JointManyTask(MLP(5, (6, 4)), tasks).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    h1 = model.encoder.stages[0](x)
    low, mid = model.heads["low"](h1), model.heads["mid"](h1)
    label_vectors = model.embeddings["low"].labels.weight  # [D, C]: column j is label j's vector
    h1_up = h1 + low.softmax(1) @ label_vectors.T + mid @ model.embeddings["mid"].labels.weight.T
    expected = model.heads["high"](model.encoder.stages[1](h1_up))
    out = model(x)
    torch.testing.assert_close(out["high"], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["low"], low)
    torch.testing.assert_close(model(x, ["high"])["high"], expected, rtol=1e-12, atol=1e-12)  # low still computed


def test_every_task_at_the_top_is_hard_sharing() -> None:
    torch.manual_seed(0)
    tasks = [Classification("a", num_classes=3), Regression("b")]
    model = JointManyTask(MLP(5, (6, 4)), tasks)
    hard = HardSharing(copy.deepcopy(model.encoder), tasks)
    hard.heads.load_state_dict(model.heads.state_dict())
    x = torch.randn(4, 5)
    for name, value in model(x).items():
        torch.testing.assert_close(value, hard(x)[name], rtol=0, atol=0)
    assert len(model.embeddings) == 0


def test_pos_below_chunks_keeps_padding_zero() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("bilstm", vocab_size=30, embedding_dim=8, hidden=4, layers=2)
    model = JointManyTask(encoder, [SequenceLabelling("pos", num_classes=5, attach_at=2),
                                    Classification("sentence", num_classes=2, attach_at=2),
                                    SequenceLabelling("chunk", num_classes=7)])
    tokens = torch.tensor([[4, 7, 9, 0, 0], [3, 3, 3, 3, 1]])
    h = model.encoder.stages[1](model.encoder.stages[0](tokens))
    for name in ("pos", "sentence"):
        added = model.embeddings[name](model.heads[name](h), h)
        assert added.shape == h.shape and torch.all(added[0, 3:] == 0) and bool(added[0, :3].ne(0).any())
    out = model(tokens)
    assert out["pos"].shape == (2, 5, 5) and out["chunk"].shape == (2, 5, 7)


def test_successive_regularisation_steps_towards_the_epoch_snapshot() -> None:
    """After each optimizer step every lower-stage parameter moves lr * 2δ (θ - θ') towards the
    snapshot θ' (the top stage is free); the snapshot is taken at each epoch's end."""
    torch.manual_seed(0)
    tasks = [Classification("low", num_classes=3, attach_at=1), Regression("high")]
    model = JointManyTask(MLP(5, (6, 4)), tasks, successive=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)  # away from the snapshot by 1 everywhere
    before = [p.detach().clone() for p in model.encoder.parameters()]
    model.on_after_optimizer_step(optimizer)
    lower = {id(p) for p in model.encoder.stages[0].parameters()}
    for p, b in zip(model.encoder.parameters(), before):
        expected = b - 0.1 * 2 * 0.5 * 1.0 if id(p) in lower else b  # θ - η 2δ (θ - θ'), θ - θ' = 1
        torch.testing.assert_close(p.detach(), expected)
    model.on_epoch_end(0)
    snapshot = [p.detach().clone() for p in model.encoder.stages[0].parameters()]
    model.on_after_optimizer_step(optimizer)  # at the snapshot: no pull
    assert all(torch.equal(p, s) for p, s in zip(model.encoder.stages[0].parameters(), snapshot))
    assert model.penalty() is None  # decoupled: nothing goes through the loss

    n = 64  # through the trainer: 4 steps per epoch, a snapshot at each epoch's end
    x = torch.randn(n, 5)
    data = TensorSource(x, {"low": (x[:, 0] > 0).long(), "high": x[:, 1].clone()})
    balancer = create_balancer("ew", tasks)
    trainer = Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-2),
                      MultiSourceLoader({"train": data}, 16, seed=0), steps=8, progress=False)
    seen = []
    original = model.on_epoch_end
    model.on_epoch_end = lambda epoch: (seen.append(epoch), original(epoch))  # type: ignore[method-assign]
    trainer.fit()
    assert seen == [0, 1]
    assert all(torch.equal(p, getattr(model, f"snapshot_{i}")) for i, p in enumerate(model._below))


def test_bad_setups_are_named() -> None:
    with pytest.raises(ValueError, match="cannot embed the predictions of pixel-level task 'seg'"):
        JointManyTask(create_encoder("cnn"), [Classification("seg", num_classes=2, level="pixel", attach_at=1),
                                            Classification("digit", num_classes=10)])
    with pytest.raises(ValueError, match="successive must be >= 0"):
        JointManyTask(MLP(5, (4,)), [Regression("a")], successive=-1.0)
    with pytest.raises(ValueError, match="ask for heads at stages the encoder does not have"):
        JointManyTask(MLP(5, (4,)), [Regression("a", attach_at=2)])


def test_a_lower_tasks_head_is_shared_because_the_tasks_above_read_it() -> None:
    """The label embedding reads the lower head's prediction, so the higher task's loss reaches
    that head (Hashimoto et al. 2017, Sec. 2): it is a shared parameter, not the lower task's own
    (as its own it got the plain sum of both losses' gradients under MGDA or PCGrad). A head at
    the top is its task's own; every parameter is in exactly one group."""
    torch.manual_seed(0)
    tasks = [Classification("low", num_classes=3, attach_at=1), Regression("mid", attach_at=1),
             Regression("high")]
    model = JointManyTask(MLP(5, (6, 4)), tasks)
    shared = {id(p) for p in model.shared_parameters()}
    x = torch.randn(7, 5)
    for name in ("low", "mid"):
        reached = torch.autograd.grad(model(x)["high"].sum(), list(model.heads[name].parameters()))
        assert all(float(g.abs().sum()) > 0 for g in reached)  # the task above reaches it
        assert all(id(p) in shared for p in model.heads[name].parameters())
        assert list(model.task_parameters(name)) == []
    # the top stage and the label embeddings feeding it reach "high" alone: its own, with its head
    alone = [*model.encoder.stages[1].parameters(), *model.embeddings.parameters(), *model.heads["high"].parameters()]
    assert {id(p) for p in model.task_parameters("high")} == {id(p) for p in alone}
    owned = [id(p) for n in ("low", "mid", "high") for p in model.task_parameters(n)]
    everything = [id(p) for p in model.parameters()]
    assert sorted(owned + list(shared)) == sorted(everything)


def test_successive_regularisation_covers_the_lower_tasks_heads() -> None:
    """Hashimoto et al.'s δ||θ_POS - θ'_POS||² holds the lower task's classifier (W_POS, b_POS)
    with the lower layers."""
    tasks = [Classification("low", num_classes=3, attach_at=1), Regression("high")]
    model = JointManyTask(MLP(5, (6, 4)), tasks, successive=0.5)
    with torch.no_grad():
        for p in model.heads.parameters():
            p.add_(1.0)
    before = {name: [p.detach().clone() for p in model.heads[name].parameters()] for name in ("low", "high")}
    model.on_after_optimizer_step(torch.optim.SGD(model.parameters(), lr=0.1))
    for p, b in zip(model.heads["low"].parameters(), before["low"]):
        torch.testing.assert_close(p.detach(), b - 0.1 * 2 * 0.5 * 1.0)
    for p, b in zip(model.heads["high"].parameters(), before["high"]):
        assert torch.equal(p, b)


def test_the_exact_gramian_covers_the_shared_lower_heads() -> None:
    """The lower tasks' heads are shared parameters (the tasks above read their predictions), so
    the exact Gramian the engine gives MGDA/UPGrad must be J Jᵀ over all of shared_parameters(),
    heads included; the autogram engine hooks shared_modules(), which left the heads out."""
    from manytask.training._engine import BackwardEngine, _gramian_of

    torch.manual_seed(0)
    tasks = [Classification("low", num_classes=3, attach_at=1), Regression("mid", attach_at=1), Regression("high")]
    model = JointManyTask(MLP(5, (6, 4)), tasks)
    hooked = {id(p) for module in model.shared_modules() for p in module.parameters()}
    assert all(id(p) in hooked for p in model.shared_parameters())
    engine = BackwardEngine(model, create_balancer("mgda", tasks, level="exact"))
    x, y = torch.randn(16, 5), torch.randn(16, 3)
    engine.begin_step()
    out = engine.forward(x, list(model.task_names))
    losses = torch.stack([out["low"].logsumexp(1).mean(), (out["mid"][:, 0] - y[:, 1]).pow(2).mean(),
                          (out["high"][:, 0] - y[:, 2]).pow(2).mean()])
    torch.testing.assert_close(engine._gramian(losses), _gramian_of(losses, list(model.shared_parameters())),
                               rtol=1e-4, atol=1e-6)


def test_successive_regularisation_keeps_only_the_layers_below_the_highest_task() -> None:
    """With every task at one depth there is no lower task: successive regularisation pulls nothing
    (the model is hard sharing); with tasks at stages 1 and 2 of three, the highest task's own
    stage 2 is not pulled towards its snapshot."""
    torch.manual_seed(0)
    flat = JointManyTask(MLP(5, (6, 4)), [Regression("a"), Regression("b")], successive=0.5)
    assert flat._below == []
    deep = JointManyTask(MLP(5, (6, 4, 3)), [Classification("low", num_classes=3, attach_at=1),
                                             Regression("high", attach_at=2)], successive=0.5)
    kept = {id(p) for p in deep._below}
    assert all(id(p) in kept for p in deep.encoder.stages[0].parameters())
    assert not any(id(p) in kept for p in deep.encoder.stages[1].parameters())
    assert all(id(p) in kept for p in deep.heads["low"].parameters())


def test_shortcuts_feed_the_word_representations_and_every_lower_task_up() -> None:
    """Hashimoto et al.'s shortcut connections: a stage from the third on also reads the first
    stage's output and the label embeddings of every task two or more stages down."""
    torch.manual_seed(0)
    tasks = [Classification("low", num_classes=3, attach_at=1), Regression("mid", attach_at=2), Regression("top")]
    model = JointManyTask(MLP(5, (6, 6, 4)), tasks, shortcuts=True).double()
    assert list(model.word_shortcuts) == ["3"] and list(model.label_shortcuts) == ["low@3"]
    x = torch.randn(7, 5, dtype=torch.float64)
    stages = model.encoder.stages
    h1 = stages[0](x)
    low = model.heads["low"](h1)
    h2 = stages[1](h1 + low.softmax(1) @ model.embeddings["low"].labels.weight.T)
    mid = model.heads["mid"](h2)
    into3 = (h2 + mid @ model.embeddings["mid"].labels.weight.T + h1 @ model.word_shortcuts["3"].weight.T
             + low.softmax(1) @ model.label_shortcuts["low@3"].labels.weight.T)
    out = model(x)
    torch.testing.assert_close(out["top"], model.heads["top"](stages[2](into3)), rtol=1e-12, atol=1e-12)
    plain = JointManyTask(MLP(5, (6, 6, 4)), tasks)
    assert len(plain.word_shortcuts) == 0 and len(plain.label_shortcuts) == 0


def test_shortcuts_keep_padding_out_and_refuse_maps() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("bilstm", vocab_size=30, embedding_dim=8, hidden=4, layers=2)
    model = JointManyTask(encoder, [SequenceLabelling("pos", num_classes=5, attach_at=2),
                                    SequenceLabelling("chunk", num_classes=7)], shortcuts=True).eval()
    assert list(model.word_shortcuts) == ["3"]  # embedding (1), first BiLSTM layer (2), top layer (3)
    short, padded = torch.tensor([[4, 7, 9]]), torch.tensor([[4, 7, 9, 0, 0]])
    for name, value in model(short).items():
        torch.testing.assert_close(model(padded)[name][:, :3], value, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="use shortcuts=False"):
        JointManyTask(create_encoder("cnn"), [Classification("a", num_classes=2, attach_at=1),
                                              Classification("b", num_classes=2)], shortcuts=True)


def test_shortcuts_from_a_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from manytask.config import parse_config
    from manytask.runs import build_experiment

    config = parse_config({"data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
                           "tasks": {"category": {"attach_at": 1}},
                           "model": {"name": "jmt", "shortcuts": True, "encoder": {"name": "mlp", "hidden": [8, 8, 8]}},
                           "training": {"steps": 2, "progress": False}, "logging": {"report": False}})
    model = build_experiment(config, run_dir=tmp_path).model
    assert isinstance(model, JointManyTask) and list(model.label_shortcuts) == ["category@3"]
