"""Devices by name, and the precision names."""

from __future__ import annotations

import pytest
import torch

from manytask.config import parse_config
from manytask.runs._build import build_experiment
from manytask.training import resolve_device


def test_auto_is_the_cpu_on_a_machine_without_accelerators() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: auto is a GPU there")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(("name", "match"), [
    ("gpu", "Unknown device 'gpu'; use auto, cpu, cuda, cuda:K or mps"),
    ("cuda:7", "cuda" if not torch.cuda.is_available() else "CUDA device"),
])
def test_a_device_this_machine_lacks_is_named(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_device(name)


def test_fp16_needs_cuda_and_bf16_runs_on_the_cpu(tmp_path: object) -> None:
    config = {"data": {"name": "demo", "n_train": 100, "n_val": 20, "n_test": 20},
              "training": {"steps": 2, "eval_every": 2, "progress": False, "device": "cpu"}}
    bf16 = build_experiment(parse_config({**config, "training": {**config["training"], "precision": "bf16"}}),
                            run_dir=f"{tmp_path}/a")
    assert bf16.trainer.precision == "bf16" and bf16.trainer.fit().steps_run == 2
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="precision 'fp16' .* needs a CUDA device"):
            build_experiment(parse_config({**config, "training": {**config["training"], "precision": "fp16"}}),
                             run_dir=f"{tmp_path}/b")


def test_a_step_the_loss_scaler_skips_is_said_and_moves_nothing(tmp_path: object,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Gradients that overflowed (inf, as float16 gives): the loss scaler skips the step; the
    trainer says so, and neither the model, the learning-rate schedule nor FAMO's after-step update
    (its logits' step) moves."""
    config = {"data": {"name": "demo", "n_train": 100, "n_val": 20, "n_test": 20},
              "balancer": {"name": "famo"}, "optimizer": {"scheduler": "cosine"},
              "training": {"steps": 3, "eval_every": 3, "progress": False, "device": "cpu"}}
    trainer = build_experiment(parse_config(config), run_dir=f"{tmp_path}/s").trainer
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=10**6)
    trainer.scaler = trainer.engine.scaler = scaler
    first = next(trainer.model.parameters())
    first.register_hook(lambda grad: torch.full_like(grad, float("inf")))  # what float16 overflow gives
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    lr = trainer.optimizer.param_groups[0]["lr"]
    balancer = {k: v.clone() for k, v in trainer.balancer.state_dict().items() if isinstance(v, torch.Tensor)}
    with caplog.at_level("WARNING", logger="manytask"):
        trainer._train_step()
    assert trainer.skipped_steps == 1 and "step 1 skipped: its float16 gradients overflowed" in caplog.text
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in before.items())
    assert trainer.optimizer.param_groups[0]["lr"] == lr
    assert all(torch.equal(v.nan_to_num(), trainer.balancer.state_dict()[k].nan_to_num()) for k, v in balancer.items())
    assert scaler.get_scale() == 2.0**15


@pytest.mark.parametrize("balancer", [
    {"name": "mgda", "level": "exact"}, {"name": "mgda", "level": "representation"},
    {"name": "pcgrad", "level": "representation"}, {"name": "imtl-g", "level": "exact"},
    {"name": "gradvac", "level": "exact"}, {"name": "nash-mtl", "level": "representation"},
])
def test_a_gramian_that_overflowed_float16_skips_the_step(tmp_path: object, balancer: dict[str, str],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Per-task gradients that overflowed (inf, as float16 gives at a loss scale of 2^16) make the
    Gramian infinite: the step is skipped and the scale lowered, as the loss scaler does for a loss
    weighting, and the balancer's state does not move (MGDA and IMTL-G raised on the infinite
    Gramian, PCGrad and Nash-MTL gave NaN weights). The next step trains."""
    config = {"data": {"name": "demo", "n_train": 100, "n_val": 20, "n_test": 20}, "balancer": balancer,
              "training": {"steps": 3, "eval_every": 3, "progress": False, "device": "cpu"}}
    trainer = build_experiment(parse_config(config), run_dir=f"{tmp_path}/s").trainer
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=10**6)
    trainer.scaler = trainer.engine.scaler = scaler
    calls = [0]

    def overflow_once(module: torch.nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        calls[0] += 1
        if calls[0] == 1:  # the first forward: the gradient w.r.t. the "score" head's output
            output.register_hook(lambda grad: torch.full_like(grad, float("inf")))

    trainer.model.heads["score"].register_forward_hook(overflow_once)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    state = {k: v.clone() for k, v in trainer.balancer.state_dict().items() if isinstance(v, torch.Tensor)}
    with caplog.at_level("WARNING", logger="manytask"):
        trainer._train_step()
    assert trainer.skipped_steps == 1 and "step 1 skipped: its float16 gradients overflowed" in caplog.text
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in before.items())
    assert all(torch.equal(v.nan_to_num(), trainer.balancer.state_dict()[k].nan_to_num()) for k, v in state.items())
    assert scaler.get_scale() == 2.0**15
    trainer._train_step()
    assert trainer.skipped_steps == 1 and not torch.equal(before["heads.score.weight"],
                                                          trainer.model.state_dict()["heads.score.weight"])


@pytest.mark.parametrize("balancer", ["mgda", "moco"])
def test_bf16_cross_stitch_on_a_transformer_trains_exactly_and_says_how(balancer: str,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Under bf16 autocast, vmap cannot batch the backward through cross-stitch units on a
    transformer ("expected scalar type BFloat16 but found Float" at the first step): the Gramian
    and the Jacobian then come from one backward per task, and the log says so."""
    import logging

    from manytask.balancing import create_balancer
    from manytask.data import MultiSourceLoader, TensorSource
    from manytask.models import Transformer, create_model
    from manytask.tasks import Classification, Regression
    from manytask.training import Trainer, build_optimizer

    torch.manual_seed(0)
    x = torch.randint(1, 20, (32, 7))
    x[:, 5:] = 0
    tasks = [Regression("a"), Classification("b", num_classes=3), Regression("c")]
    data = TensorSource(x, {"a": x[:, 0].float(), "b": x[:, 1] % 3, "c": x[:, 2].float()})
    model = create_model("cross_stitch", encoder=Transformer(20, dim=8, heads=2, layers=2, feedforward=16,
                                                             max_length=8), tasks=tasks)
    bal = create_balancer(balancer, tasks)
    trainer = Trainer(model, tasks, bal, build_optimizer(model, bal, "adam", 1e-2), MultiSourceLoader({"t": data}, 8),
                      steps=3, progress=False, precision="bf16")
    with caplog.at_level(logging.INFO, logger="manytask"):
        assert trainer.fit().steps_run == 3
    assert trainer.last_weights is not None and bool(torch.isfinite(trainer.last_weights).all())
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    if balancer == "mgda":
        assert "from the Jacobian from now on (torchjd's autogram failed on CrossStitch" in caplog.text
        assert not any(m._forward_hooks for m in model.modules())  # autogram's hooks went with it
