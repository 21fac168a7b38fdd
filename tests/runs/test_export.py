"""torch.export programs of trained models: a round trip gives the same outputs, for every scheme
that exports, at another batch size; a scheme that cannot is named."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from manytask.models import MLP, MODELS, create_model
from manytask.runs import ExportError, export_model
from manytask.tasks import BinaryClassification, Classification, Regression

TASKS = [Regression("a", target_mean=(3.0,), target_std=(2.0,)), Classification("b", num_classes=3),
         BinaryClassification("c")]
NOT_EXPORTABLE = {"adaptive"}  # its routing caches are Python state


@pytest.mark.parametrize("scheme", sorted(set(MODELS.names()) - NOT_EXPORTABLE))
def test_an_exported_model_gives_the_models_predictions(scheme: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(scheme, encoder=MLP(6, (8, 8)), tasks=TASKS).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = export_model(model, TASKS, torch.zeros(2, 6))
        torch.export.save(program, str(tmp_path / "m.pt2"))
        loaded = torch.export.load(str(tmp_path / "m.pt2")).module()
    x = torch.randn(9, 6)
    with torch.no_grad():
        outputs = model(x, [t.name for t in TASKS])
        expected = [t.predictions(outputs[t.name]) for t in TASKS]
    for got, want in zip(loaded(x), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(expected[1].sum(1), torch.ones(9))  # probabilities, not logits


def test_a_model_that_cannot_be_traced_is_named() -> None:
    model = create_model("adaptive", encoder=MLP(6, (8, 8)), tasks=TASKS)
    with pytest.raises(ExportError, match="torch.export cannot trace AdaptiveSharing"):
        export_model(model, TASKS, torch.zeros(2, 6))
