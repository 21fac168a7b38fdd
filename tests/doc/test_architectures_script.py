"""``benchmarks/architectures.py`` builds every scheme on both backbones, times a step, and
names the route of exact MGDA's Gramian."""

from __future__ import annotations

from .benchmark_scripts import load_script

script = load_script("architectures")


def test_every_scheme_builds_and_steps_on_both_backbones() -> None:
    cases = script.backbones()
    spec = cases["MLP 64→256→256, T = 4, batch 128"]
    # 64*256 + 256 + 256*256 + 256 trunk weights and biases, four 256 -> 1 heads
    assert sum(p.numel() for p in script.trainer("hps", *spec).model.parameters()) == 82_432 + 4 * 257
    for spec in cases.values():
        for scheme in script.MODELS.names():
            trainer = script.trainer(scheme, *spec)
            trainer._train_step()
            assert sum(p.numel() for p in trainer.model.parameters()) > 0


def test_exact_mgda_routes() -> None:
    spec = script.backbones()["MLP 64→256→256, T = 4, batch 128"]
    routes = {}
    for scheme in ("hps", "adaptive", "cross_stitch", "dmtrl"):
        trainer = script.trainer(scheme, *spec, method="mgda", split="last")
        trainer._train_step()
        routes[scheme] = script.route(trainer)
    assert routes == {"hps": "linear layers", "adaptive": "linear layers", "cross_stitch": "autogram",
                      "dmtrl": "Jacobian"}
