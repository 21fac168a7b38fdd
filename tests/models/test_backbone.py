"""The Backbone contract: ordered stages with one FeatureInfo each; any module is one stage."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from manytask.models import Backbone, FeatureInfo, as_backbone, output_info


def two_stages() -> Backbone:
    return Backbone([nn.Linear(4, 8), nn.Sequential(nn.ReLU(), nn.Linear(8, 3))],
                    [FeatureInfo(8, "vector"), FeatureInfo(3, "vector")])


def test_forward_runs_the_stages_in_turn() -> None:
    net = two_stages()
    x = torch.randn(2, 4)
    first, last = net.forward_stages(x)
    torch.testing.assert_close(first, net.stages[0](x))
    torch.testing.assert_close(last, net.stages[1](first))
    torch.testing.assert_close(net(x), last)
    assert net.out_info == FeatureInfo(3, "vector") and net.out_features == 3 and net.layout == "vector"


@pytest.mark.parametrize("stages, infos, match", [
    ([], [], "A Backbone needs at least one stage"),
    ([nn.Linear(4, 8)], [], "one FeatureInfo per stage: got 1 stages and 0 FeatureInfo"),
])
def test_bad_backbones_raise(stages: list[nn.Module], infos: list[FeatureInfo], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Backbone(stages, infos)


@pytest.mark.parametrize("dim, layout, reduction, match", [
    (8, "grid", 1, "layout must be 'vector', 'sequence' or 'map'. Got 'grid'"),
    (0, "vector", 1, "needs dim >= 1 and reduction >= 1. Got 0, 1"),
    (8, "map", 0, "needs dim >= 1 and reduction >= 1. Got 8, 0"),
])
def test_bad_feature_info_raises(dim: int, layout: str, reduction: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FeatureInfo(dim, layout, reduction)  # type: ignore[arg-type]


def test_any_module_is_a_one_stage_backbone() -> None:
    linear = nn.Linear(4, 8)
    wrapped = as_backbone(linear)
    assert list(wrapped.stages) == [linear] and wrapped.out_info == FeatureInfo(8, "vector")
    net = two_stages()
    assert as_backbone(net) is net
    with pytest.raises(ValueError, match="The backbone's last stage is"):
        as_backbone(net, FeatureInfo(5, "vector"))
    conv = nn.Conv2d(1, 6, 3)
    assert as_backbone(conv, FeatureInfo(6, "map")).layout == "map"


def test_output_info_reads_the_module() -> None:
    assert output_info(two_stages()) == FeatureInfo(3, "vector")
    assert output_info(two_stages(), dim=5) == FeatureInfo(5, "vector")
    embedding = nn.Embedding(10, 4)
    embedding.layout = "sequence"  # type: ignore[assignment]
    assert output_info(embedding, 4) == FeatureInfo(4, "sequence")
    with pytest.raises(ValueError, match="Cannot tell the feature size of encoder Embedding: pass feature_dim"):
        output_info(embedding)


def test_reset_parameters_redraws_every_stage() -> None:
    net = two_stages()
    before = [p.clone() for p in net.parameters()]
    net.reset_parameters()
    assert all(not torch.equal(p, q) for p, q in zip(net.parameters(), before))
