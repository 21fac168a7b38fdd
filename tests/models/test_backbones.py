"""Backbones with stages, heads by level and layout, and every encoder under every scheme."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import pytest
import torch
from torch import Tensor, nn

from manytask.balancing import create_balancer
from manytask.models import (
    ENCODERS,
    MLP,
    Backbone,
    BiLSTM,
    ConvNet,
    FeatureInfo,
    GradientReversal,
    HardSharing,
    Independent,
    Transformer,
    create_encoder,
    make_head,
)
from manytask.tasks import Classification, Regression, SequenceLabelling
from manytask.training import BackwardEngine


# ---- the registered encoders compute what they computed before they had stages ---------------
class OldConvNet(nn.Module):  # the pre-stage ConvNet (git 5f67cef), for an equal-numbers check
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 10, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
                                  nn.Conv2d(10, 20, 5, padding=2), nn.MaxPool2d(2), nn.ReLU())
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.0), nn.Linear(20 * 7 * 7, 50), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x))


class OldBiLSTM(nn.Module):
    def __init__(self, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(30, 8, padding_idx=0)
        self.lstm = nn.LSTM(8, 6, num_layers=layers, batch_first=True, bidirectional=True)

    def forward(self, tokens: Tensor) -> Tensor:
        lengths = (tokens != 0).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])[0]


def tokens() -> Tensor:
    x = torch.randint(1, 30, (3, 7))
    x[0, 5:] = 0
    x[2, 2:] = 0
    return x


def test_encoders_give_the_same_numbers_as_before_stages() -> None:
    x = torch.randn(4, 5)
    torch.manual_seed(0)
    old_mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())
    torch.manual_seed(0)
    torch.testing.assert_close(MLP(5, (8, 4))(x), old_mlp(x), rtol=0, atol=0)
    images = torch.randn(2, 1, 28, 28)
    torch.manual_seed(1)
    old_cnn = OldConvNet()
    torch.manual_seed(1)
    torch.testing.assert_close(ConvNet(out_features=50)(images), old_cnn(images), rtol=0, atol=0)
    ids = tokens()
    for layers in (1, 2):
        torch.manual_seed(2)
        old = OldBiLSTM(layers)
        torch.manual_seed(2)
        new = BiLSTM(30, embedding_dim=8, hidden=6, layers=layers)
        torch.testing.assert_close(new(ids), old(ids), rtol=0, atol=0)


@pytest.mark.parametrize("encoder, inputs", [
    (MLP(5, (8, 4)), torch.randn(2, 5)),
    (ConvNet(), torch.randn(2, 1, 28, 28)),
    (ConvNet(out_features=50), torch.randn(2, 1, 28, 28)),
    (BiLSTM(30, 8, 6, layers=2), tokens()[:2]),
    (Transformer(30, dim=8, heads=2, layers=2, feedforward=16), tokens()[:2]),
], ids=["mlp", "cnn-maps", "cnn-vector", "bilstm", "transformer"])
def test_stage_outputs_match_their_feature_info(encoder: Backbone, inputs: Tensor) -> None:
    outputs = encoder.forward_stages(inputs)
    assert len(outputs) == len(encoder.stages) == len(encoder.feature_info)
    for out, info in zip(outputs, encoder.feature_info):
        if info.layout == "vector":
            assert out.shape == (2, info.dim)
        elif info.layout == "sequence":
            assert out.shape == (2, 7, info.dim)
        else:
            assert out.shape == (2, info.dim, 28 // info.reduction, 28 // info.reduction)
    torch.testing.assert_close(outputs[-1], encoder(inputs))


def test_transformer_ignores_padding() -> None:
    torch.manual_seed(0)
    model = Transformer(30, dim=8, heads=2, layers=2, feedforward=16).eval()
    ids = tokens()
    other = ids.clone()
    out = model(ids)
    assert (out[0, 5:] == 0).all() and (out[2, 2:] == 0).all()  # padding stays zero
    other[1, :3] = torch.tensor([4, 5, 6])  # another sentence in the batch changes nothing here
    torch.testing.assert_close(model(other)[0], out[0])
    shorter = ids[:, :5]  # removing trailing padding changes nothing at the real tokens
    torch.testing.assert_close(model(shorter)[0, :5], out[0, :5], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="exceed the transformer's max_len=4"):
        Transformer(30, dim=8, heads=2, max_len=4)(ids)
    with pytest.raises(ValueError, match="multiple of 'heads'"):
        Transformer(30, dim=10, heads=4)


# ---- heads -----------------------------------------------------------------------------------
def test_heads_for_every_level_and_layout() -> None:
    vec, seq, grid = FeatureInfo(6, "vector"), FeatureInfo(6, "sequence"), FeatureInfo(6, "map", reduction=4)
    sample, token = Classification("c", num_classes=3), SequenceLabelling("t", num_classes=4)
    pixel = Regression("p", num_outputs=2, level="pixel")
    assert make_head(sample, vec)(torch.randn(2, 6)).shape == (2, 3)
    assert make_head(sample, seq)(torch.randn(2, 5, 6)).shape == (2, 3)
    assert make_head(sample, grid)(torch.randn(2, 6, 7, 7)).shape == (2, 3)
    assert make_head(token, seq)(torch.randn(2, 5, 6)).shape == (2, 5, 4)
    assert make_head(pixel, grid)(torch.randn(2, 6, 7, 7)).shape == (2, 2, 28, 28)
    with pytest.raises(ValueError, match="token-level and needs features laid out as a sequence"):
        make_head(token, vec)
    with pytest.raises(ValueError, match="pixel-level and needs features laid out as a map"):
        make_head(pixel, seq)


def test_sequence_pooling_is_the_mean_over_real_tokens() -> None:
    head = make_head(Regression("r"), FeatureInfo(2, "sequence"))
    linear = head[1]
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]])  # the last position is padding
    expected = linear(torch.tensor([[2.0, 3.0]]))
    torch.testing.assert_close(head(x), expected)
    maps = make_head(Regression("r"), FeatureInfo(2, "map"))
    grid = torch.arange(8.0).view(1, 2, 2, 2)
    torch.testing.assert_close(maps(grid), maps[1](grid.mean(dim=(2, 3))))


def test_gradient_reversal_is_minus_lambda_times_the_gradient() -> None:
    z = torch.randn(3, 4, requires_grad=True)
    task = Regression("adv", role="adversarial", reversal=0.3)
    head = make_head(task, FeatureInfo(4, "vector"))
    assert isinstance(head[0], GradientReversal)
    plain = torch.autograd.grad(head[1](z).sum(), z)[0]
    reversed_ = torch.autograd.grad(head(z).sum(), z)[0]
    torch.testing.assert_close(reversed_, -0.3 * plain)


# ---- every encoder under every scheme ----------------------------------------------------------
def cases() -> list[tuple[str, dict[str, object], object, list]]:
    images = torch.randn(3, 1, 28, 28)
    return [
        ("mlp", {"in_features": 5, "hidden": [8, 6]}, torch.randn(3, 5), [Classification("c", num_classes=3), Regression("r")]),
        ("cnn", {}, images, [Classification("c", num_classes=3), Regression("inpaint", level="pixel")]),
        ("bilstm", {"vocab_size": 30, "embedding_dim": 8, "hidden": 4}, tokens(),
         [SequenceLabelling("pos", num_classes=5), Classification("sent", num_classes=2)]),
        ("transformer", {"vocab_size": 30, "dim": 8, "heads": 2, "layers": 1, "feedforward": 16}, tokens(),
         [SequenceLabelling("pos", num_classes=5), Classification("sent", num_classes=2)]),
    ]


def test_every_registered_encoder_is_covered() -> None:
    assert {name for name, *_ in cases()} == set(ENCODERS.names())


@pytest.mark.parametrize("scheme", [HardSharing, Independent])
@pytest.mark.parametrize("name, options, inputs, tasks", cases(), ids=[c[0] for c in cases()])
def test_scheme_contract(scheme: type, name: str, options: Mapping[str, object], inputs: Tensor, tasks: list) -> None:
    torch.manual_seed(0)
    model = scheme(create_encoder(name, **options), tasks)
    out = model(inputs)
    for task in tasks:
        assert out[task.name].shape[-1 if task.level != "pixel" else 1] == task.out_features
    sum(o.sum() for o in out.values()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    fresh = scheme(create_encoder(name, **options), tasks)
    fresh.load_state_dict(copy.deepcopy(model.state_dict()))
    model.eval(), fresh.eval()
    for key, value in model(inputs).items():
        torch.testing.assert_close(fresh(inputs)[key], value, rtol=0, atol=0)
    double = scheme(create_encoder(name, **options), tasks).double()
    floats = inputs.double() if inputs.is_floating_point() else inputs
    assert all(v.dtype == torch.float64 for v in double(floats).values())


@pytest.mark.parametrize("name, options, inputs, tasks", cases(), ids=[c[0] for c in cases()])
def test_exact_gramian_through_every_encoder(name: str, options: Mapping[str, object], inputs: Tensor,
                                             tasks: list) -> None:
    """torchjd's autogram engine hooks every registered encoder but the LSTM, where the engine
    falls back to the Jacobian and says so; both give MGDA's weights."""
    torch.manual_seed(0)
    model = HardSharing(create_encoder(name, **options), tasks)
    engine = BackwardEngine(model, create_balancer("mgda", tasks))
    assert (engine.gramian_engine is None) == (name == "bilstm")
    engine.begin_step()
    out = engine.forward(inputs, [t.name for t in tasks])
    sums = torch.stack([out[t.name].float().pow(2).sum() for t in tasks])
    weights = engine.backward(sums, torch.ones(len(tasks)), step=0)[1]
    assert torch.isfinite(weights).all() and weights.sum().item() == pytest.approx(1.0)
    assert all(p.grad is not None for n, p in model.encoder.named_parameters() if "embedding" not in n)
