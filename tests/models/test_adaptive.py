"""Fully-adaptive feature sharing (Lu et al. 2017): the affinity and grouping against hand and
brute-force computations, widening that changes no output, the tree through a run, resumes
around the widening rounds."""

from __future__ import annotations

import gc
import itertools
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from manytask.balancing import create_balancer
from manytask.config import parse_config
from manytask.data import TensorSource
from manytask.models import MLP, AdaptiveSharing, Backbone, FeatureInfo, HardSharing
from manytask.models._adaptive import branch_affinity, group_branches, per_example_errors, task_affinity
from manytask.runs import train
from manytask.tasks import Classification, Regression, SequenceLabelling
from manytask.training import BackwardEngine, build_optimizer

from ..training.helpers import make_trainer

TASKS = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2)]


def test_task_affinity_counts_examples_both_find_hard_or_easy() -> None:
    errors = torch.tensor([[1.0, 5.0, 0.0], [3.0, 1.0, 9.0], [2.0, 2.0, 9.0], [6.0, 0.0, 9.0]])
    labelled = torch.tensor([[True, True, True], [True, True, False], [True, False, False], [True, True, False]])
    # means over labelled: a 3.0, b 2.0, c 0.0 -> hard (>= mean): a [F, T, F, T], b [T, F, -, F], c [T, -, -, -]
    expected = torch.full((3, 3), 0.5, dtype=torch.float64)
    hard = {0: [False, True, False, True], 1: [True, False, None, False], 2: [True, None, None, None]}
    for i, j in itertools.product(range(3), repeat=2):
        pairs = [(hard[i][n], hard[j][n]) for n in range(4) if hard[i][n] is not None and hard[j][n] is not None]
        if pairs:
            expected[i, j] = sum(x == y for x, y in pairs) / len(pairs)
    torch.testing.assert_close(task_affinity(errors.double(), labelled), expected)
    assert expected[0, 1] == 0.0 and expected[0, 2] == 0.0 and expected[1, 2] == 1.0  # a hand check of the loop


def test_branch_affinity_is_the_symmetrised_mean_of_minima() -> None:
    affinity = torch.tensor([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    got = branch_affinity(affinity, [[0, 1], [2]])
    # k = {0, 1}, l = {2}: mean(min A(0, 2), min A(1, 2)) = 0.4; the other way: min(0.3, 0.5) = 0.3
    torch.testing.assert_close(got, torch.tensor([[0.8, 0.35], [0.35, 1.0]]))


def _partitions(items: list[int]) -> list[list[list[int]]]:
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    for part in _partitions(rest):
        out.append([[first], *part])
        for k in range(len(part)):
            out.append([*part[:k], [first, *part[k]], *part[k + 1:]])
    return out


def _loss(groups: list[list[int]], distance: torch.Tensor, cost: float) -> float:
    return (len(groups) - 1) * cost + sum(float(distance[g][:, g].max()) for g in groups) / len(groups)


@pytest.mark.parametrize("cost", [0.0, 0.05, 0.2, 0.5, 2.0])
def test_grouping_reaches_the_brute_force_minimum_on_clustered_tasks(cost: float) -> None:
    """Two tight pairs and a loner: the loss of the chosen groups is the minimum over every
    partition (52 of them for 5 branches)."""
    generator = torch.Generator().manual_seed(0)
    base = torch.tensor([0, 0, 1, 1, 2])
    affinity = torch.where(base[:, None] == base[None], 0.9, 0.3) + 0.02 * torch.rand(5, 5, generator=generator)
    affinity = (affinity + affinity.T) / 2
    affinity.fill_diagonal_(1.0)
    distance = 1 - affinity.double()
    distance.fill_diagonal_(0.0)
    groups = group_branches(affinity, cost)
    best = min(_loss(p, distance, cost) for p in _partitions(list(range(5))))
    assert _loss(groups, distance, cost) == pytest.approx(best, abs=1e-9)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4]


def test_two_branches_split_when_their_distance_exceeds_the_price() -> None:
    affinity = torch.tensor([[1.0, 0.75], [0.75, 1.0]])  # distance 0.25
    assert group_branches(affinity, 0.24) == [[0], [1]]
    assert group_branches(affinity, 0.26) == [[0, 1]]
    assert group_branches(affinity, 0.25) == [[0, 1]]  # a tie: fewer branches


def test_widening_copies_the_node_and_changes_no_output() -> None:
    """Right after a round, every task computes what it did (the new nodes are copies), the
    optimizer state was copied, and the partition moved the split-off node to its task."""
    torch.manual_seed(0)
    backbone = Backbone([nn.Sequential(nn.Linear(5, 8), nn.ReLU()), nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6))],
                        [FeatureInfo(8, "vector"), FeatureInfo(6, "vector")])
    model = AdaptiveSharing(backbone, TASKS)
    optimizer = build_optimizer(model, create_balancer("ew", TASKS), "adam", 0.01)
    x = torch.randn(16, 5)
    for _ in range(3):
        optimizer.zero_grad()
        sum(o.pow(2).mean() for o in model(x).values()).backward()
        optimizer.step()
    model.eval()
    before = model(x)
    affinity = torch.tensor([[1.0, 0.2, 0.9], [0.2, 1.0, 0.3], [0.9, 0.3, 1.0]])  # b apart from a and c
    assert model.widen(affinity, optimizer)
    assert model.assign.tolist() == [[0, 0, 0], [0, 1, 0]]
    for name, value in model(x).items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    old, new = model.nodes[1][0], model.nodes[1][1]
    for p, q in zip(old.parameters(), new.parameters()):
        assert p is not q and torch.equal(p, q)
        assert torch.equal(optimizer.state[p]["exp_avg"], optimizer.state[q]["exp_avg"])
        assert optimizer.state[p]["exp_avg"] is not optimizer.state[q]["exp_avg"]
    assert {id(p) for p in model.task_parameters("b")} == {id(p) for m in (new, model.heads["b"]) for p in m.parameters()}
    assert {id(p) for p in model.shared_parameters()} == {id(p) for m in (model.nodes[0][0], old) for p in m.parameters()}
    assert model.last_shared_parameters() == [old[0].weight]  # the shared top node's last matrix (not BatchNorm's gains)
    assert torch.equal(new[1].running_var, old[1].running_var) and not torch.equal(old[1].running_var, torch.ones(6))


def test_rounds_go_top_down_and_stop() -> None:
    torch.manual_seed(0)
    model = AdaptiveSharing(MLP(5, (8, 6, 4)), TASKS, branch_cost=0.1)  # prices 0.4, 0.2, 0.1 by stage
    affinity = torch.tensor([[1.0, 0.5, 0.85], [0.5, 1.0, 0.5], [0.85, 0.5, 1.0]])
    # stage 3: distances a-c 0.15, b 0.5 from both: {a, c}, {b} (0.1 + 0.075 < 0.5 and < 0.2)
    assert model.widen(affinity)
    # stage 2: branches {a, c} and {b}, distance 1 - 0.5 = 0.5 > 0.2: split
    assert model.widen(affinity)
    # stage 1: the same two branches, 0.5 > 0.4: split; then the first stage is done
    assert model.widen(affinity)
    assert not model.widen(affinity) and bool(model.finished)
    assert model.structure_report() == ("stage 1: n0 [a, c], n1 [b]\n"
                                        "stage 2: n0 [a, c] <- n0, n1 [b] <- n1\n"
                                        "stage 3: n0 [a, c] <- n0, n1 [b] <- n1")
    assert model.diagnostics() == {"branches/stage1": 2.0, "branches/stage2": 2.0, "branches/stage3": 2.0}


def test_a_round_that_splits_nothing_ends_the_widening() -> None:
    model = AdaptiveSharing(MLP(5, (8, 6)), TASKS, branch_cost=10.0)
    assert not model.widen(torch.eye(3)) and bool(model.finished)
    assert model.structure_report() == "stage 1: n0 [a, b, c]\nstage 2: n0 [a, b, c] <- n0"


def test_unwidened_it_is_hard_sharing() -> None:
    torch.manual_seed(0)
    adaptive = AdaptiveSharing(MLP(5, (8, 6)), TASKS)
    torch.manual_seed(0)
    hard = HardSharing(MLP(5, (8, 6)), TASKS)
    hard.load_state_dict({k.replace("nodes.0.0", "encoder.stages.0").replace("nodes.1.0", "encoder.stages.1"): v
                          for k, v in adaptive.state_dict().items()
                          if not k.startswith(("nodes.0.1", "nodes.0.2", "nodes.1.1", "nodes.1.2", "assign", "rounds",
                                               "finished"))})
    x = torch.randn(4, 5)
    for name, value in adaptive(x).items():
        torch.testing.assert_close(value, hard(x)[name], rtol=0, atol=0)


def test_per_example_errors_average_a_sentences_labelled_tokens() -> None:
    task = SequenceLabelling("tag", num_classes=3)
    model = AdaptiveSharing(Backbone([nn.Embedding(10, 3)], [FeatureInfo(3, "sequence")]), [task])
    tokens = torch.tensor([[1, 2, 3], [4, 5, 0]])
    target = torch.tensor([[0, 1, 2], [2, 0, 0]])
    mask = torch.tensor([[True, False, True], [True, True, False]])
    source = TensorSource(tokens, {"tag": target}, {"tag": mask})
    errors, labelled = per_example_errors(model, [task], source, batch_size=1)
    logits = model(tokens)["tag"]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), target.reshape(-1), reduction="none").view(2, 3)
    expected = torch.stack([(nll[0, 0] + nll[0, 2]) / 2, (nll[1, 0] + nll[1, 1]) / 2])
    torch.testing.assert_close(errors[:, 0], expected.double())
    assert labelled.tolist() == [[True], [True]]


def test_a_run_widens_saves_the_tree_and_logs_the_branches(tmp_path: Path) -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 128, "n_val": 32, "n_test": 16},
        "model": {"name": "adaptive", "encoder": {"name": "mlp", "hidden": [8, 6]}, "branch_cost": 0.0},
        "optimizer": {"name": "adam", "lr": 0.01},
        "training": {"steps": 9, "eval_every": 9, "progress": False},
    })
    result = train(config, run_dir=tmp_path / "run")
    text = (result.run_dir / "structure.txt").read_text()
    # free branches (price 0) and any disagreement: every task gets its own nodes, top first (steps 3, 6);
    # evaluated at the last step only, so the best checkpoint the run ends with is the widened one
    assert text == ("stage 1: n0 [category], n1 [score], n2 [flag]\n"
                    "stage 2: n0 [category] <- n0, n1 [score] <- n1, n2 [flag] <- n2\n")
    header, *rows = (result.run_dir / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("model/branches/stage1")
    assert [float(r.split(",")[column]) for r in rows] == [3.0]


def test_no_validation_data_is_refused_by_name(tmp_path: Path) -> None:
    trainer = make_trainer(None, 4, scheme="adaptive")
    trainer.val = None
    with pytest.raises(ValueError, match="measures task affinity on validation data"):
        trainer.fit()


@pytest.mark.parametrize("stop", [7, 8, 10])
def test_resume_around_a_widening_round_is_exact(tmp_path: Path, stop: int) -> None:
    """Rounds at steps 8 and 16 on a two-stage MLP under Adam with partial labels and MGDA;
    stopped just before, at and after the first round, the resumed run ends bitwise where the
    straight run does."""
    straight = make_trainer(tmp_path / "straight", 20, "mgda", eval_every=1, scheme="adaptive",
                            model_options={"widen_every": 8, "branch_cost": 0.0}, hidden=(16, 8))
    straight.fit()
    first = make_trainer(tmp_path / "split", 20, "mgda", eval_every=1, scheme="adaptive",
                         model_options={"widen_every": 8, "branch_cost": 0.0}, hidden=(16, 8))
    first.steps = stop
    first.fit()
    resumed = make_trainer(tmp_path / "split", 20, "mgda", eval_every=1, scheme="adaptive",
                           model_options={"widen_every": 8, "branch_cost": 0.0}, hidden=(16, 8))
    resumed.fit(resume="latest")
    assert int(straight.model.rounds) == 2
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_gradient_method_on_a_network_split_apart_backpropagates_each_loss_plainly() -> None:
    """Once every stage is split (one stage, price 0), MGDA has no shared parameter to combine
    gradients on: each task's loss goes to its own parameters with weight 1 (this raised in
    torch.cat before)."""
    torch.manual_seed(0)
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    model = AdaptiveSharing(MLP(5, (8,)), tasks, branch_cost=0.0)
    engine = BackwardEngine(model, create_balancer("mgda", tasks))
    assert model.widen(torch.eye(3)) and list(model.shared_parameters()) == []
    x, y = torch.randn(6, 5), torch.randn(6, 3)
    engine.begin_step()
    out = engine.forward(x, ["a", "b"])  # c is absent from the batch
    sums = torch.stack([*((out[n].squeeze(1) - y[:, i]).pow(2).sum() for i, n in enumerate("ab")), torch.zeros(())])
    losses, weights = engine.backward(sums, torch.tensor([6.0, 6.0, 0.0]), step=0)
    assert weights.tolist() == [1.0, 1.0, 0.0]
    expected = torch.autograd.grad((model(x)["a"].squeeze(1) - y[:, 0]).pow(2).mean(), list(model.task_parameters("a")))
    for p, g in zip(model.task_parameters("a"), expected):
        torch.testing.assert_close(p.grad, g)
    assert all(p.grad is None for p in model.task_parameters("c"))


def normed_mlp() -> Backbone:
    """Two stages with a LayerNorm: not linear layers alone (the exact Gramian from autogram)."""
    return Backbone([nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.ReLU()), nn.Sequential(nn.Linear(8, 6), nn.ReLU())],
                    [FeatureInfo(8, "vector"), FeatureInfo(6, "vector")])


@pytest.mark.parametrize("trunk", ["linear layers", "autogram"])
def test_exact_gramian_engines_cover_the_shared_nodes_anew_after_each_widening(
        trunk: str, caplog: pytest.LogCaptureFixture) -> None:
    """The exact Gramian's engine — the linear-layer engine on an MLP, torchjd's autogram on a
    trunk with a LayerNorm — covers exactly the layers of the nodes two or more tasks read, and is
    set up anew when a widening changes which: its Gramian is the per-task gradients' over the
    shared parameters, computed here by autograd. Before, the model declared no shared modules
    and every exact Gramian came from the T x P Jacobian, with a log line saying so."""
    torch.manual_seed(0)
    tasks = [Regression(name) for name in "abcd"]
    encoder = MLP(5, (8, 6)) if trunk == "linear layers" else normed_mlp()
    model = AdaptiveSharing(encoder, tasks, branch_cost=0.2)  # prices 0.4 and 0.2 by stage
    x, y = torch.randn(6, 5), torch.randn(6, 4)
    pairs = torch.tensor([[1.0, 0.9, 0.1, 0.1], [0.9, 1.0, 0.1, 0.1], [0.1, 0.1, 1.0, 0.9], [0.1, 0.1, 0.9, 1.0]])

    def covered() -> set[int]:
        gc.collect()  # a dropped engine's hooks go with it
        if engine.linear_gramian is not None:
            assert engine.gramian_engine is None and trunk == "linear layers"
            return {id(m) for m in engine.linear_gramian.layers}
        assert engine.gramian_engine is not None and trunk == "autogram"
        return {id(m) for m in model.modules() if m._forward_hooks}

    def layers_of(*nodes: tuple[int, int]) -> set[int]:  # the modules that hold parameters
        return {id(m) for stage, node in nodes for m in model.nodes[stage][node].modules()
                if any(True for _ in m.parameters(recurse=False))}

    def gramian_against_autograd() -> None:
        engine.begin_step()
        out = engine.forward(x, list("abcd"))
        losses = torch.stack([(out[n].squeeze(1) - y[:, i]).pow(2).mean() for i, n in enumerate("abcd")])
        shared = list(model.shared_parameters())
        rows = torch.stack([torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(
            torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True), shared)]) for loss in losses])
        torch.testing.assert_close(engine._gramian_of_shared(losses), rows @ rows.T)

    with caplog.at_level(logging.INFO, logger="manytask"):
        engine = BackwardEngine(model, create_balancer("mgda", tasks, level="exact"))
        assert covered() == layers_of((0, 0), (1, 0))
        gramian_against_autograd()
        assert model.widen(pairs) and model.assign.tolist() == [[0, 0, 0, 0], [0, 0, 1, 1]]
        gramian_against_autograd()
        assert covered() == layers_of((0, 0), (1, 0), (1, 1))  # the new node, read by c and d
        assert model.widen(pairs) and model.assign.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]
        gramian_against_autograd()
        assert covered() == layers_of((0, 0), (0, 1), (1, 0), (1, 1))
    assert "from the Jacobian" not in caplog.text and "differs" not in caplog.text


@pytest.mark.parametrize("balancer", ["moco", "db-mtl"])
def test_balancers_that_track_shared_gradients_restart_them_at_a_widening(tmp_path: Path, balancer: str) -> None:
    """Before the fix the first widening stopped the run: 'MoCo keeps gradients of 608 shared
    parameters, but got 336: the model changed. Call reset()', which a config cannot do."""
    from manytask.runs._build import build_experiment

    config = parse_config({"seed": 0, "data": {"name": "demo", "n_train": 300, "n_val": 60, "n_test": 60},
                           "model": {"name": "adaptive", "widen_every": 8, "encoder": {"name": "mlp",
                                                                                       "hidden": [16, 16]}},
                           "balancer": {"name": balancer},
                           "training": {"steps": 30, "eval_every": 10, "progress": False}})
    experiment = build_experiment(config, run_dir=tmp_path)
    before = sum(p.numel() for p in experiment.model.shared_parameters() if p.requires_grad)
    experiment.trainer.fit()
    after = sum(p.numel() for p in experiment.model.shared_parameters() if p.requires_grad)
    tracked = experiment.balancer.tracked  # type: ignore[attr-defined]
    assert after < before and tracked is not None and tracked.shape[1] == after


def test_a_frozen_node_splits_into_frozen_copies() -> None:
    """freeze: shared freezes the nodes in use at the start; a widening copies a node into a
    spare one, which must stay frozen as well (before, one group's copy trained and the other's not)."""
    torch.manual_seed(0)
    model = AdaptiveSharing(MLP(5, (8, 6)), TASKS, branch_cost=0.0)
    for p in model.shared_parameters():
        p.requires_grad_(False)
    assert model.widen(torch.eye(3))
    assert all(not p.requires_grad for level in range(2) for node in model.owners(level)
               for p in model._stage(level)[node].parameters())


def test_the_route_cache_stays_bounded_when_the_tasks_present_change_every_step() -> None:
    """The defect: each distinct set of tasks a forward asked for kept its route for the rest of
    the run (cleared only by a widening or a load); with many partially labelled tasks (School:
    one school a row) nearly every batch's set is new, ~3 objects a step, never released."""
    tasks = [Regression(f"t{i}") for i in range(24)]
    model = AdaptiveSharing(MLP(10, (16, 16)), tasks)
    affinity = torch.ones(24, 24)
    affinity[:12, 12:] = affinity[12:, :12] = 0.0
    model.widen(affinity)
    x, generator = torch.randn(4, 10), torch.Generator().manual_seed(0)

    def forwards(count: int) -> None:
        for _ in range(count):
            picked = torch.randperm(24, generator=generator)[:5].sort().values.tolist()
            model(x, [f"t{i}" for i in picked])

    forwards(50)
    gc.collect()
    before = len(gc.get_objects())
    forwards(1500)
    gc.collect()
    assert len(gc.get_objects()) - before < 1000
