"""DSelect-k starts every selector bit inside the smooth step's ramp (Hazimeh et al.'s code draws
the z layer from U(-gamma/100, gamma/100)): a bit past ±gamma/2 has S' = 0 and gets no gradient."""

from __future__ import annotations

import pytest
import torch

from manytask.models import MMoE, create_encoder
from manytask.tasks import Regression, SequenceLabelling


@pytest.mark.parametrize("gate_reads", ["features", "tokens"])
def test_selectors_start_inside_the_ramp(gate_reads: str) -> None:
    torch.manual_seed(0)
    if gate_reads == "features":
        tasks = [Regression("a"), Regression("b"), Regression("c")]
        model = MMoE(create_encoder("mlp", in_features=20, hidden=(8,)), tasks, num_experts=4, gate="dselect")
        x = torch.randn(512, 20)
    else:
        tasks = [SequenceLabelling(n, num_classes=3) for n in "abc"]
        model = MMoE(create_encoder("bilstm", vocab_size=1000, embedding_dim=8, hidden=4), tasks, num_experts=4,
                     gate="dselect")
        x = torch.randint(1, 1000, (512, 3))
    for name in model.task_names:
        gate = model.gates[name]
        z = gate.summary(x)[:, : gate.k * gate.bits]
        assert float((z.abs() >= gate.gamma / 2).float().mean()) == 0.0
        grad = torch.autograd.grad(gate(x).pow(2).sum(), list(gate.parameters()))
        assert all(bool(torch.isfinite(g).all()) for g in grad)
