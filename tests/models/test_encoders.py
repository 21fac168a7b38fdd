"""The registered encoders: their stages and FeatureInfo, the same numbers as before they had
stages, fresh weights on reinitialisation, and a transformer that ignores padding."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from manytask.models import (
    ENCODERS,
    MLP,
    Backbone,
    BiLSTM,
    ConvNet,
    FeatureInfo,
    Transformer,
    create_encoder,
    padding_mask,
    reinitialise,
)

from ._old_encoders import OldBiLSTM, OldConvNet, OldMLP


def tokens(pad: int = 0, vocab: int = 30) -> Tensor:
    """``[3, 7]`` right-padded token ids: lengths 5, 7 and 2."""
    x = torch.randint(0, vocab, (3, 7))
    x[x == pad] = (pad + 1) % vocab
    x[0, 5:] = pad
    x[2, 2:] = pad
    return x


def embedding(net: Backbone, which: str) -> nn.Embedding:
    """The token (``"embedding"``) or position (``"position"``) embedding of a sequence encoder."""
    module = net.get_submodule(f"stages.0.{which}")
    assert isinstance(module, nn.Embedding)
    return module


def same_numbers(make_old: Callable[[], nn.Module], make_new: Callable[[], nn.Module], inputs: object,
                 train: bool = False, seed: int = 7, atol: float = 0.0) -> None:
    """Built under one seed, the old and the new encoder hold the same weights and compute the
    same outputs (in train mode too: dropout draws the same masks from the same seed), to ``atol``."""
    torch.manual_seed(seed)
    old = make_old().train(train)
    torch.manual_seed(seed)
    new = make_new().train(train)
    assert [p.shape for p in old.parameters()] == [p.shape for p in new.parameters()]
    for p, q in zip(old.parameters(), new.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)
    torch.manual_seed(seed + 1)
    expected = old(inputs)
    torch.manual_seed(seed + 1)
    torch.testing.assert_close(new(inputs), expected, rtol=0, atol=atol)


# ---- the same numbers as the pre-stage encoders ----------------------------------------------
@pytest.mark.parametrize("options", [
    {"in_features": 5, "hidden": (8, 4)},
    {"in_features": 5, "hidden": (6,)},
    {"in_features": 12, "hidden": (8, 8, 3), "dropout": 0.5},
])
@pytest.mark.parametrize("train", [False, True])
def test_mlp_same_numbers_as_before_stages(options: Mapping[str, Any], train: bool) -> None:
    x = torch.randn(4, options["in_features"])
    same_numbers(lambda: OldMLP(**options), lambda: MLP(**options), x, train)
    same_numbers(lambda: OldMLP(**options), lambda: MLP(**options), x.view(4, 1, -1), train)  # flattened


@pytest.mark.parametrize("options, shape", [
    ({"out_features": 50}, (2, 1, 28, 28)),  # the MultiMNIST suite's encoder
    ({"out_features": 50, "dropout": 0.5}, (2, 1, 28, 28)),
    ({"in_channels": 3, "image_size": 32, "channels": (6, 12), "out_features": 16}, (2, 3, 32, 32)),
])
@pytest.mark.parametrize("train", [False, True])
def test_cnn_same_numbers_as_before_stages(options: Mapping[str, Any], shape: tuple[int, ...], train: bool) -> None:
    same_numbers(lambda: OldConvNet(**options), lambda: ConvNet(**options), torch.randn(shape), train)


@pytest.mark.parametrize("options", [
    {"vocab_size": 30, "embedding_dim": 8, "hidden": 6},
    {"vocab_size": 30, "embedding_dim": 8, "hidden": 6, "layers": 2},
    {"vocab_size": 30, "embedding_dim": 5, "hidden": 3, "layers": 3, "pad_index": 4},
    {"vocab_size": 30, "embedding_dim": 8, "hidden": 6, "layers": 2, "dropout": 0.3},  # eval: no dropout
])
def test_bilstm_same_numbers_as_before_stages(options: Mapping[str, Any]) -> None:
    """To rounding: the old encoder ran one packed bidirectional LSTM, the new one runs each
    direction on padded tensors (another kernel on CPU)."""
    ids = tokens(pad=options.get("pad_index", 0))
    same_numbers(lambda: OldBiLSTM(**options), lambda: BiLSTM(**options), ids, atol=1e-6)
    same_numbers(lambda: OldBiLSTM(**options), lambda: BiLSTM(**options), {"tokens": ids}, atol=1e-6)


def test_bilstm_loads_a_state_dict_saved_with_one_bidirectional_lstm_per_layer() -> None:
    """Checkpoints written before the directions were split (keys ``lstm.weight_ih_l0`` and
    ``lstm.weight_ih_l0_reverse``) load into the two directions and give the same outputs."""
    ids = tokens()
    torch.manual_seed(0)
    saved = BiLSTM(30, 8, 6, layers=2).eval()
    old_keys = {}
    for key, value in saved.state_dict().items():
        for direction, suffix in (("forward_lstm.", ""), ("backward_lstm.", "_reverse")):
            if direction in key:
                key = key.replace(direction, "lstm.") + suffix
        old_keys[key] = value
    assert "stages.1.lstm.weight_hh_l0_reverse" in old_keys and "stages.2.lstm.bias_ih_l0" in old_keys
    torch.manual_seed(1)
    loaded = BiLSTM(30, 8, 6, layers=2).eval()
    loaded.load_state_dict(old_keys)
    torch.testing.assert_close(loaded(ids), saved(ids), rtol=0, atol=0)


def test_bilstm_directions_read_only_the_real_tokens() -> None:
    """A token's features do not depend on the padding after its sentence, in either direction,
    and a sentence of padding only gives zeros."""
    torch.manual_seed(0)
    net = BiLSTM(30, 8, 6, layers=2).eval()
    short = torch.tensor([[5, 6, 7, 0, 0], [0, 0, 0, 0, 0]])
    out = net(short)
    torch.testing.assert_close(out[0, :3], net(short[:1, :3])[0], rtol=0, atol=1e-6)
    assert out[0, 3:].eq(0).all() and out[1].eq(0).all()


def test_bilstm_without_dropout_trains_to_the_same_numbers() -> None:
    """Gradients match too (one SGD step from the same seed gives the same weights)."""
    ids = tokens()
    models = []
    for make in (lambda: OldBiLSTM(30, 8, 6, layers=2), lambda: BiLSTM(30, 8, 6, layers=2)):
        torch.manual_seed(3)
        model = make()
        model(ids).pow(2).sum().backward()
        with torch.no_grad():
            for p in model.parameters():
                assert p.grad is not None
                p.sub_(0.1 * p.grad)
        models.append(model)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-7)


# ---- stages and their FeatureInfo -------------------------------------------------------------
def encoder_cases() -> list[tuple[str, Backbone, object, list[FeatureInfo]]]:
    images = torch.randn(2, 1, 28, 28)
    ids = tokens()[:2]
    return [
        ("mlp", MLP(5, (8, 4)), torch.randn(2, 5), [FeatureInfo(8, "vector"), FeatureInfo(4, "vector")]),
        ("mlp-dropout", MLP(5, (8,), dropout=0.2), torch.randn(2, 5), [FeatureInfo(8, "vector")]),
        ("cnn-maps", ConvNet(), images, [FeatureInfo(10, "map", 2), FeatureInfo(20, "map", 4)]),
        ("cnn-vector", ConvNet(out_features=50), images,
         [FeatureInfo(10, "map", 2), FeatureInfo(20, "map", 4), FeatureInfo(50, "vector")]),
        ("bilstm", BiLSTM(30, 8, 6, layers=2), ids, [FeatureInfo(8, "sequence")] + [FeatureInfo(12, "sequence")] * 2),
        ("bilstm-dict", BiLSTM(30, 8, 6), {"tokens": ids}, [FeatureInfo(8, "sequence"), FeatureInfo(12, "sequence")]),
        ("transformer", Transformer(30, dim=8, heads=2, layers=2, feedforward=16), ids,
         [FeatureInfo(8, "sequence")] * 3),
    ]


@pytest.mark.parametrize("name, encoder, inputs, infos", encoder_cases(), ids=[c[0] for c in encoder_cases()])
def test_stage_outputs_match_their_feature_info(name: str, encoder: Backbone, inputs: object,
                                                infos: list[FeatureInfo]) -> None:
    encoder.eval()
    assert list(encoder.feature_info) == infos
    assert encoder.out_info == infos[-1] and encoder.layout == infos[-1].layout
    assert encoder.out_features == infos[-1].dim
    outputs = encoder.forward_stages(inputs)  # type: ignore[arg-type]
    assert len(outputs) == len(encoder.stages) == len(infos)
    for out, info in zip(outputs, infos):
        if info.layout == "vector":
            assert out.shape == (2, info.dim)
        elif info.layout == "sequence":
            assert out.shape == (2, 7, info.dim)
        else:
            assert out.shape == (2, info.dim, 28 // info.reduction, 28 // info.reduction)
    x = inputs
    for stage, out in zip(encoder.stages, outputs):  # each stage reads the previous one's output
        x = stage(x)
        torch.testing.assert_close(x, out, rtol=0, atol=0)
    torch.testing.assert_close(encoder(inputs), outputs[-1], rtol=0, atol=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("encoder", [BiLSTM(30, 8, 6, layers=2, pad_index=3),
                                     Transformer(30, dim=8, heads=2, layers=2, feedforward=16, pad_index=3)],
                         ids=["bilstm", "transformer"])
def test_padding_rows_are_zero_in_every_stage(encoder: Backbone) -> None:
    ids = tokens(pad=3)
    for out in encoder.forward_stages(ids):
        torch.testing.assert_close(padding_mask(out), ids == 3, rtol=0, atol=0)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_reinitialise_draws_the_weights_of_a_fresh_encoder(name: str) -> None:
    """What ``Independent`` does to each task's copy: with one seed, a reinitialised encoder has
    exactly the weights of a newly built one (scaled embeddings and attention included)."""
    options = {"mlp": {"in_features": 5}, "cnn": {"out_features": 8}, "bilstm": {"vocab_size": 30, "layers": 2},
               "transformer": {"vocab_size": 30, "dim": 8, "heads": 2}}[name]
    torch.manual_seed(0)
    used = create_encoder(name, **options)
    with torch.no_grad():
        for p in used.parameters():
            p.add_(1.0)  # "trained"
    torch.manual_seed(1)
    reinitialise(used)
    torch.manual_seed(1)
    fresh = create_encoder(name, **options)
    for (key, p), q in zip(used.named_parameters(), fresh.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=key)


def test_transformer_embeddings_are_drawn_at_one_scale() -> None:
    torch.manual_seed(0)
    net = Transformer(1000, dim=64, heads=4, max_length=1000)
    token, position = (embedding(net, "embedding").weight, embedding(net, "position").weight)
    assert token.std().item() == pytest.approx(1 / 8, rel=0.05)
    assert position.std().item() == pytest.approx(1 / 8, rel=0.05)
    assert (token[0] == 0).all()  # the padding row


# ---- the transformer ignores padding ----------------------------------------------------------
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_transformer_outputs_at_real_tokens_do_not_depend_on_the_padding(dropout: float) -> None:
    torch.manual_seed(0)
    model = Transformer(30, dim=8, heads=2, layers=2, feedforward=16, dropout=dropout).eval()
    ids = tokens()
    real = ids != 0
    out = model(ids)
    assert (out[~real] == 0).all()  # padding stays zero
    # what the padding embeds to is never read: a nonzero padding row changes nothing
    with torch.no_grad():
        embedding(model, "embedding").weight[0] = torch.randn(8)
    torch.testing.assert_close(model(ids), out, rtol=0, atol=0)
    # another sentence in the batch changes nothing here
    other = ids.clone()
    other[1, :3] = torch.tensor([4, 5, 6])
    torch.testing.assert_close(model(other)[[0, 2]], out[[0, 2]], rtol=0, atol=0)
    # more or less trailing padding changes nothing at the real tokens
    shorter, longer = model(ids[[0, 2], :5]), model(torch.cat([ids, torch.zeros(3, 4, dtype=ids.dtype)], 1))
    torch.testing.assert_close(shorter[real[[0, 2], :5]], out[[0, 2], :5][real[[0, 2], :5]], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(longer[:, :7][real], out[real], rtol=1e-5, atol=1e-6)
    # each sentence alone, unpadded, gives its rows of the padded batch
    for row, length in enumerate(real.sum(1).tolist()):
        alone = model(ids[row: row + 1, :length])
        torch.testing.assert_close(alone[0], out[row, :length], rtol=1e-5, atol=1e-6)


def test_transformer_without_padding_mask_would_differ() -> None:
    """The check above can fail: without the key padding mask, real tokens attend to padding."""
    torch.manual_seed(0)
    model = Transformer(30, dim=8, heads=2, layers=1, feedforward=16).eval()
    ids = tokens()
    layer = model.get_submodule("stages.1.layer")
    unmasked = layer(model.stages[0](ids))
    masked = model(ids)
    assert not torch.allclose(unmasked[0, :5], masked[0, :5])


def test_transformer_gradients_ignore_padding() -> None:
    """Real-token outputs have no gradient w.r.t. the padding positions' features."""
    torch.manual_seed(0)
    model = Transformer(30, dim=8, heads=2, layers=2, feedforward=16)
    ids = tokens()
    x = model.stages[0](ids).detach().requires_grad_()
    out = x
    for stage in model.stages[1:]:
        out = stage(out)
    (grad,) = torch.autograd.grad(out[ids != 0].sum(), x)
    assert (grad[ids == 0] == 0).all() and (grad[ids != 0] != 0).any()


@pytest.mark.parametrize("encoder", [BiLSTM(30, 8, 6, layers=2),
                                     Transformer(30, dim=8, heads=2, layers=2, feedforward=16)],
                         ids=["bilstm", "transformer"])
def test_a_sequence_of_padding_only_gives_zeros_not_nan(encoder: Backbone) -> None:
    ids = tokens()
    ids[1] = 0
    full = encoder(ids)
    for out in encoder.forward_stages(ids):
        assert torch.isfinite(out).all() and (out[1] == 0).all()
    torch.testing.assert_close(full[[0, 2]], encoder(ids[[0, 2]]), rtol=1e-5, atol=1e-6)


def test_sener_koltun_lenet_has_320_features_and_channel_dropout() -> None:
    """Their LeNet: unpadded 5x5 convolutions, 28 -> 24 -> 12 -> 8 -> 4, 20 * 4 * 4 = 320 inputs to
    the linear stage; Dropout2d after the second convolution zeroes whole channels in training."""
    torch.manual_seed(0)
    net = ConvNet(out_features=50, padding=0, channel_dropout=0.5)
    assert net.stages[2][2].in_features == 320
    x = torch.randn(1, 1, 28, 28)
    conv2 = net.stages[1][:2]  # conv, Dropout2d
    dropped = conv2(net.stages[0](x))[0]
    zero_channels = int((dropped.flatten(1) == 0).all(1).sum())
    assert 0 < zero_channels < 20  # whole channels, p = 0.5 of 20
    net.eval()
    torch.testing.assert_close(net(x), net(x))


# ---- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: MLP(5, ()), "'hidden' parameter of MLP must list at least one"),
    (lambda: ConvNet(channels=(10, 20, 30)), "'channels' parameter of ConvNet must give the channels of its two"),
    (lambda: ConvNet(image_size=2, out_features=4), "'image_size' parameter of ConvNet is too small"),
    (lambda: ConvNet(image_size=12, out_features=4, padding=0), "'image_size' parameter of ConvNet is too small"),
    (lambda: ConvNet(padding=1, out_features=4), "'padding' parameter of ConvNet must be 2"),
    (lambda: ConvNet(padding=0), "padding=0 needs out_features"),
    (lambda: BiLSTM(30, layers=0), "'layers' parameter of BiLSTM must be >= 1"),
    (lambda: BiLSTM(30, pad_index=30), r"'pad_index' parameter must be a token id in \[0, vocab_size=30\)"),
    (lambda: Transformer(30, dim=10, heads=4), r"'dim' parameter of Transformer \(10\) must be a multiple of 'heads'"),
    (lambda: Transformer(30, dim=8, heads=2, layers=0), "'layers' and 'max_length' parameters of Transformer"),
])
def test_bad_options_raise(make: Callable[[], nn.Module], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_raise() -> None:
    ids = tokens()
    with pytest.raises(ValueError, match="exceed the transformer's max_length=4; raise max_length"):
        Transformer(30, dim=8, heads=2, max_length=4)(ids)
    with pytest.raises(ValueError, match=r"expects integer token ids \[B, L\]; got a torch.float32 tensor"):
        BiLSTM(30, 8, 6)(ids.float())
    with pytest.raises(KeyError, match="from the key 'tokens'; got keys \\['ids'\\]"):
        Transformer(30, dim=8, heads=2)({"ids": ids})


def test_registered_encoders_are_backbones_with_their_options() -> None:
    assert ENCODERS.names() == ["bilstm", "cnn", "mlp", "transformer"]
    assert isinstance(create_encoder("cnn", out_features=50), ConvNet)
    assert create_encoder("bilstm", vocab_size=30, embedding_dim=64, hidden=64).out_info == FeatureInfo(128, "sequence")
    assert create_encoder("mlp", in_features=3, hidden=[64], dropout=0.1).layout == "vector"
    for name in ENCODERS.names():
        assert issubclass(ENCODERS.get(name).factory, Backbone)  # type: ignore[arg-type]


def test_transformer_inference_fast_path_agrees() -> None:
    """Under ``no_grad`` in eval mode PyTorch runs its fused encoder-layer kernel; padding is
    handled the same way there."""
    torch.manual_seed(0)
    model = Transformer(30, dim=8, heads=2, layers=2, feedforward=16).eval()
    ids = tokens()
    ids[1] = 0
    expected = model(ids)
    with torch.no_grad():
        fast = model(ids)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-6)
    assert (fast[ids == 0] == 0).all()


def _spelling(ids: Tensor, width: int = 5) -> Tensor:
    """Character ids ``[B, L, width]`` for token ids: token ``t`` spelt ``t % 7 + 2`` repeated
    ``t % width + 1`` times; padding tokens unspelt."""
    chars = torch.zeros(*ids.shape, width, dtype=torch.long)
    for (b, i), t in zip(torch.cartesian_prod(torch.arange(ids.shape[0]), torch.arange(ids.shape[1])).tolist(),
                         ids.flatten().tolist()):
        if t:
            chars[b, i, : t % width + 1] = t % 7 + 2
    return chars


def test_character_features_are_a_max_pooled_convolution_of_each_words_spelling() -> None:
    """Ma & Hovy (2016): the first stage is the word embedding next to max over the word's
    characters of a width-3 convolution of their embeddings, computed here by hand for each word."""
    torch.manual_seed(0)
    net = BiLSTM(30, 8, 6, char_dim=4, char_filters=5, char_width=3, char_vocab_size=10).eval()
    ids = tokens()
    chars = _spelling(ids)
    first = net.stages[0]({"tokens": ids, "chars": chars})
    assert net.feature_info[0] == FeatureInfo(13, "sequence") and first.shape == (3, 7, 13)
    torch.testing.assert_close(padding_mask(first), ids == 0, rtol=0, atol=0)
    stage = net.stages[0]
    for b, i in [(0, 0), (1, 6), (2, 1)]:
        n = int(chars[b, i].ne(0).sum())
        x = stage.chars.weight[chars[b, i, :n]].T[None]  # [1, char_dim, n]
        conv = torch.nn.functional.conv1d(x, stage.conv.weight, stage.conv.bias, padding=1)[0]
        torch.testing.assert_close(first[b, i, 8:], conv.max(-1).values)
        torch.testing.assert_close(first[b, i, :8], stage.words.embedding.weight[ids[b, i]])
    out = net({"tokens": ids, "chars": chars})
    assert out.shape == (3, 7, 12)
    with pytest.raises(KeyError, match="keys 'tokens' and 'chars'"):
        net(ids)
    with pytest.raises(ValueError, match="need char_vocab_size >= 2"):
        BiLSTM(30, 8, 6, char_dim=4)


def test_input_dropout_drops_the_first_layers_input_in_training_only() -> None:
    torch.manual_seed(0)
    net = BiLSTM(30, 8, 6, input_dropout=0.5)
    ids = tokens()
    assert not torch.equal(net(ids), net(ids))
    net.eval()
    assert torch.equal(net(ids), net(ids))
