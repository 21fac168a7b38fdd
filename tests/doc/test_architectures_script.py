"""``benchmarks/architectures.py`` builds every scheme on both backbones and times a step."""

from __future__ import annotations

from .benchmark_scripts import load_script

script = load_script("architectures")


def test_every_scheme_builds_and_steps_on_both_backbones() -> None:
    cases = script.backbones()
    encoder, x, tasks, targets, batch = cases["MLP 64→256→256, T = 4, batch 128"]
    # 64*256 + 256 + 256*256 + 256 trunk weights and biases, four 256 -> 1 heads
    assert script.step("hps", encoder, x, tasks, targets, batch)[1] == 82_432 + 4 * 257
    for encoder, x, tasks, targets, batch in cases.values():
        for scheme in script.MODELS.names():
            train_step, params = script.step(scheme, encoder, x, tasks, targets, batch)
            train_step()
            assert params > 0
