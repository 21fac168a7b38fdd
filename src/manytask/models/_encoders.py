"""Encoders (shared trunks) by name, each a :class:`Backbone` with stages: an MLP, a small CNN,
a BiLSTM tagger and a small transformer.

How sequence backbones find the padding: token ids equal to ``pad_index`` mark it, and the
embedding stage turns them into **rows that are exactly zero**; every later stage finds the
padding as the all-zero rows of its input (:func:`padding_mask`) and zeroes those rows of its
output again. Every stage therefore takes and returns one plain tensor ``[B, L, D]``: schemes
can copy, mix (a linear mix of zero rows is zero) and tap stage outputs, and sample-level heads
pool over the real tokens, without the token ids travelling alongside. The price: a real token
whose features are exactly zero in every dimension would count as padding, which the
embeddings (random, plus positions) and the layers' outputs (LSTM states, a LayerNorm with bias)
make a measure-zero event. Padding must be trailing (right-padded sequences), as the BiLSTM
requires.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._registry import Registry
from ._backbone import Backbone, FeatureInfo, padding_mask

__all__ = ["ENCODERS", "MLP", "BiLSTM", "ConvNet", "Transformer", "create_encoder", "padding_mask"]

ENCODERS: Registry[nn.Module] = Registry("encoder")


class _Flatten(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


@ENCODERS.register("mlp", details={"stages": "one per hidden layer", "layout": "vector"})
class MLP(Backbone):
    """Fully connected layers with ReLU: ``[B, in_features] -> [B, hidden[-1]]``.

    One stage per layer, ``Linear -> ReLU (-> Dropout)``, each a vector ``[B, hidden[i]]``
    (the first stage flattens its input).

    Args:
        in_features: Input size (after flattening).
        hidden: Width of each layer.
        dropout: Dropout after each layer (0: none).

    Examples:
        >>> net = MLP(5, (8, 4))
        >>> net.feature_info
        (FeatureInfo(dim=8, layout='vector', reduction=1), FeatureInfo(dim=4, layout='vector', reduction=1))
        >>> tuple(net(torch.randn(2, 5)).shape)
        (2, 4)
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (64, 64), dropout: float = 0.0) -> None:
        if not hidden:
            raise ValueError("The 'hidden' parameter of MLP must list at least one layer width.")
        stages: list[nn.Module] = []
        width = in_features
        for i, h in enumerate(hidden):
            layers: list[nn.Module] = [_Flatten()] if i == 0 else []
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            stages.append(nn.Sequential(*layers))
            width = h
        super().__init__(stages, [FeatureInfo(h, "vector") for h in hidden])
        self.input_size = in_features  # what a gate reading the flattened inputs sees (MMoE)


@ENCODERS.register("cnn", details={"paper": "Sener & Koltun 2018, NeurIPS (MultiMNIST)",
                                   "stages": "2 conv blocks (+ a linear with out_features)",
                                   "layout": "map, or vector with out_features"})
class ConvNet(Backbone):
    """A LeNet-style CNN: images ``[B, C, H, W]`` to maps, or to a vector with ``out_features``.

    The MultiMNIST model of Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective
    Optimization" (with ``out_features=50``). Stages: two conv blocks
    ``conv 5x5 -> max-pool 2 -> ReLU``, maps ``[B, c1, H/2, W/2]`` (reduction 2) and
    ``[B, c2, H/4, W/4]`` (reduction 4); with ``out_features`` a third stage
    ``flatten -> dropout -> linear -> ReLU`` to a vector ``[B, out_features]``. Without
    ``out_features`` the last stage is the map: sample-level heads pool it, pixel-level heads
    upsample it back to the input resolution (exactly when ``image_size`` is a multiple of 4).

    Args:
        in_channels: Image channels.
        image_size: Image side (the linear stage's input size depends on it).
        channels: Channels of the two conv blocks.
        out_features: Size of the final vector stage; ``None``: no vector stage.
        dropout: Dropout before the linear stage.
        padding: Zero padding of the 5x5 convolutions: 2 keeps the maps at ``image_size / 2`` and
            ``/ 4``; 0 is Sener & Koltun's exact LeNet (28 -> 12 -> 4, so ``20 * 4 * 4 = 320``
            inputs to the linear stage), and needs ``out_features`` (its maps are not an exact
            reduction of the image, which pixel-level heads need).
        channel_dropout: Channel dropout (``nn.Dropout2d``) after the second convolution, before
            its pooling, as in Sener & Koltun's code.

    Examples:
        >>> [tuple(f.shape) for f in ConvNet(out_features=50).forward_stages(torch.randn(2, 1, 28, 28))]
        [(2, 10, 14, 14), (2, 20, 7, 7), (2, 50)]
        >>> [tuple(f.shape) for f in ConvNet(out_features=50, padding=0).forward_stages(torch.randn(2, 1, 28, 28))]
        [(2, 10, 12, 12), (2, 20, 4, 4), (2, 50)]
        >>> ConvNet().layout
        'map'
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, channels: Sequence[int] = (10, 20),
                 out_features: int | None = None, dropout: float = 0.0, padding: int = 2,
                 channel_dropout: float = 0.0) -> None:
        if len(channels) != 2:
            raise ValueError(f"The 'channels' parameter of ConvNet must give the channels of its two conv "
                             f"blocks, e.g. [10, 20]. Got {list(channels)!r} instead.")
        if padding not in (0, 2):
            raise ValueError(f"The 'padding' parameter of ConvNet must be 2 (maps at 1/2 and 1/4 of the image) or "
                             f"0 (Sener & Koltun's LeNet). Got {padding!r} instead.")
        if padding == 0 and out_features is None:
            raise ValueError("ConvNet with padding=0 needs out_features: its maps are not an exact reduction of the "
                             "image, so no map-level head can read them; use padding=2 for map features.")
        sides = [image_size]
        for _ in range(2):
            sides.append((sides[-1] + 2 * padding - 4) // 2)
        if out_features is not None and sides[-1] < 1:
            raise ValueError(f"The 'image_size' parameter of ConvNet is too small for two conv blocks with padding "
                             f"{padding}. Got {image_size!r} instead.")
        c1, c2 = channels
        first = nn.Sequential(nn.Conv2d(in_channels, c1, 5, padding=padding), nn.MaxPool2d(2), nn.ReLU())
        second = nn.Sequential(nn.Conv2d(c1, c2, 5, padding=padding), nn.MaxPool2d(2), nn.ReLU())
        if channel_dropout:
            second.insert(1, nn.Dropout2d(channel_dropout))
        stages: list[nn.Module] = [first, second]
        info = [FeatureInfo(c1, "map", 2), FeatureInfo(c2, "map", 4)]
        if out_features is not None:
            stages.append(nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * sides[-1] ** 2, out_features),
                                        nn.ReLU()))
            info.append(FeatureInfo(out_features, "vector"))
        super().__init__(stages, info)
        self.input_size = in_channels * image_size**2  # the flattened image (MMoE's gates)


class _TokenEmbedding(nn.Module):
    """Token ids ``[B, L]`` (or ``{"tokens": ...}``) -> ``[B, L, D]``, padding rows exactly zero.

    Token embeddings plus, with ``max_length``, learned position embeddings; both drawn from
    ``N(0, scale**2)``, so that neither swamps the other.
    """

    def __init__(self, vocab_size: int, dim: int, pad_index: int, max_length: int = 0, scale: float = 1.0) -> None:
        super().__init__()
        if not 0 <= pad_index < vocab_size:
            raise ValueError(f"The 'pad_index' parameter must be a token id in [0, vocab_size={vocab_size}). "
                             f"Got {pad_index!r} instead.")
        self.pad_index = pad_index
        self.scale = scale
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_index)
        self.position = nn.Embedding(max_length, dim) if max_length else None
        self._scale_embedding()

    def _scale_embedding(self) -> None:
        if self.scale != 1.0:
            with torch.no_grad():
                self.embedding.weight.mul_(self.scale)
                if self.position is not None:
                    self.position.weight.mul_(self.scale)

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        if self.position is not None:
            self.position.reset_parameters()
        self._scale_embedding()

    def forward(self, tokens: Tensor | Mapping[str, Tensor]) -> Tensor:
        if isinstance(tokens, Mapping):
            if "tokens" not in tokens:
                raise KeyError(f"A sequence encoder reads dict inputs from the key 'tokens'; "
                               f"got keys {sorted(tokens)}.")
            tokens = tokens["tokens"]
        if tokens.ndim != 2 or tokens.is_floating_point() or tokens.is_complex():
            raise ValueError(f"A sequence encoder expects integer token ids [B, L]; got a {tokens.dtype} tensor "
                             f"of shape {list(tokens.shape)}.")
        x = self.embedding(tokens)
        if self.position is not None:
            if tokens.shape[1] > self.position.num_embeddings:
                raise ValueError(f"Sequences of length {tokens.shape[1]} exceed the transformer's max_length="
                                 f"{self.position.num_embeddings}; raise max_length.")
            x = x + self.position(torch.arange(tokens.shape[1], device=tokens.device))
        # zero even if the padding row of the embedding is not (e.g. loaded pretrained vectors)
        return x.masked_fill((tokens == self.pad_index)[..., None], 0.0)


class _WordAndCharacters(nn.Module):
    """Word embeddings ``[B, L, D]`` next to character features ``[B, L, F]`` of each word's
    spelling (``{"tokens": [B, L], "chars": [B, L, W]}``): character embeddings, a convolution
    of width ``k`` over them and the maximum over the word's characters (Ma & Hovy 2016, Sec. 2.1);
    padding rows exactly zero."""

    def __init__(self, words: _TokenEmbedding, char_vocab_size: int, char_dim: int, filters: int,
                 width: int) -> None:
        super().__init__()
        self.words = words
        self.chars = nn.Embedding(char_vocab_size, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, filters, width, padding=width // 2)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        if not isinstance(inputs, Mapping) or "chars" not in inputs:
            raise KeyError("An encoder with character features (char_dim > 0) reads dict inputs with keys 'tokens' "
                           "and 'chars' [B, L, W]; load the data with its characters option (conll2000: "
                           "characters: 20).")
        words, chars, tokens = self.words(inputs), inputs["chars"], inputs["tokens"]
        b, length, width = chars.shape
        real = (tokens != self.words.pad_index).flatten().nonzero().squeeze(1)  # only real tokens are spelt
        spelt = chars.reshape(b * length, width)[real]
        features = self.conv(self.chars(spelt).transpose(1, 2))[..., :width]  # [N, F, W]
        features = features.masked_fill((spelt == 0)[:, None, :], float("-inf")).max(-1).values
        features = features.masked_fill(torch.isinf(features), 0.0)  # a word with no known character
        pooled = features.new_zeros(b * length, features.shape[-1]).index_copy(0, real, features)
        return torch.cat([words, pooled.view(b, length, -1)], dim=-1)


class _BiLSTMLayer(nn.Module):
    """One bidirectional LSTM layer over the real tokens; padding rows stay zero.

    The two directions are two unidirectional LSTMs on padded tensors: the forward one reads each
    sentence from its start (the trailing padding comes after every real token), the backward one
    reads it reversed within its length (the padding stays at the end). The outputs at real tokens
    are those of a packed bidirectional ``nn.LSTM``, and on CPU the padded call runs oneDNN's fused
    kernel, faster than the packed loop (0.73-0.81x its time on CoNLL-2000's batches:
    benchmarks/bilstm_layer.py). Parameters are drawn in ``nn.LSTM``'s order
    (forward, then reverse); a state dict saved with a bidirectional ``lstm`` still loads.
    """

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.forward_lstm = nn.LSTM(in_features, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(in_features, hidden, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        pad = padding_mask(x)
        if self.dropout is not None:
            x = self.dropout(x)
        lengths = (~pad).sum(1, keepdim=True)
        steps = torch.arange(x.shape[1], device=x.device)
        reverse = torch.where(steps < lengths, lengths - 1 - steps, steps)[..., None]  # its own inverse
        ahead, _ = self.forward_lstm(x)
        behind, _ = self.backward_lstm(x.gather(1, reverse.expand(-1, -1, x.shape[-1])))
        behind = behind.gather(1, reverse.expand(-1, -1, behind.shape[-1]))
        return torch.cat([ahead, behind], dim=-1).masked_fill(pad[..., None], 0.0)

    def layer_weights(self) -> list[nn.Parameter]:
        """Both directions' weight matrices: the layer GradNorm measures at (:func:`last_weights`)."""
        return [p for lstm in (self.forward_lstm, self.backward_lstm) for p in lstm.parameters() if p.ndim >= 2]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Rename the keys of a bidirectional ``lstm`` (``weight_ih_l0``, ``weight_ih_l0_reverse``)."""
        for key in [k for k in state_dict if k.startswith(prefix + "lstm.")]:
            name = key[len(prefix) + len("lstm."):]
            direction = "backward_lstm." if name.endswith("_reverse") else "forward_lstm."
            state_dict[prefix + direction + name.removesuffix("_reverse")] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args)


@ENCODERS.register("bilstm", details={"stages": "embedding, then one per layer", "layout": "sequence"})
class BiLSTM(Backbone):
    """Embedding + bidirectional LSTM: token ids ``[B, L] -> [B, L, 2*hidden]`` per-token features.

    Stages: the embedding (``[B, L, embedding_dim]``), then one bidirectional layer each
    (``[B, L, 2*hidden]``, dropout on the input of every layer but the first, as ``nn.LSTM``'s
    ``dropout`` between layers); all sequence layout. Inputs are right-padded token ids with
    ``pad_index`` on padding (or a dict with key ``"tokens"``); padding rows are zero in every
    stage's output (see the module's notes).

    Args:
        vocab_size: Number of token ids.
        embedding_dim: Embedding size.
        hidden: LSTM state size per direction.
        layers: Number of bidirectional layers.
        pad_index: The padding token id.
        dropout: Dropout between layers.
        input_dropout: Dropout on the first layer's input (the embeddings).
        char_dim: With ``> 0``, the first stage adds character features of each word
            (``char_filters`` of a width-``char_width`` convolution over ``char_dim``-dimensional
            character embeddings, max-pooled over the word; Ma & Hovy 2016) to its embedding;
            inputs are then ``{"tokens": [B, L], "chars": [B, L, W]}``.
        char_filters: Character features per word.
        char_width: Width of the character convolution.
        char_vocab_size: Number of character ids (``0`` is padding); filled in from the data.

    Examples:
        >>> net = BiLSTM(30, embedding_dim=8, hidden=6, layers=2)
        >>> [tuple(f.shape) for f in net.forward_stages(torch.tensor([[3, 4, 0]]))]
        [(1, 3, 8), (1, 3, 12), (1, 3, 12)]
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden: int = 64, layers: int = 1,
                 pad_index: int = 0, dropout: float = 0.0, input_dropout: float = 0.0, char_dim: int = 0,
                 char_filters: int = 30, char_width: int = 3, char_vocab_size: int = 0) -> None:
        if layers < 1:
            raise ValueError(f"The 'layers' parameter of BiLSTM must be >= 1. Got {layers!r} instead.")
        if char_dim and (char_vocab_size < 2 or char_filters < 1 or char_width < 1):
            raise ValueError(f"BiLSTM character features (char_dim={char_dim}) need char_vocab_size >= 2 (from data "
                             "loaded with its characters option), char_filters >= 1 and char_width >= 1. Got "
                             f"{char_vocab_size}, {char_filters}, {char_width}.")
        words = _TokenEmbedding(vocab_size, embedding_dim, pad_index)
        first: nn.Module = words
        width = embedding_dim
        if char_dim:
            first = _WordAndCharacters(words, char_vocab_size, char_dim, char_filters, char_width)
            width += char_filters
        stages: list[nn.Module] = [first]
        stages += [_BiLSTMLayer(width if i == 0 else 2 * hidden, hidden, dropout if i else input_dropout)
                   for i in range(layers)]
        info = [FeatureInfo(width, "sequence")] + [FeatureInfo(2 * hidden, "sequence")] * layers
        super().__init__(stages, info)
        self.pad_index = pad_index


class _EncoderLayer(nn.Module):
    """One ``nn.TransformerEncoderLayer`` whose attention ignores the padding (the all-zero rows of
    its input) and whose output keeps them zero."""

    def __init__(self, dim: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(dim, heads, feedforward, dropout, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        pad = padding_mask(x)
        # a sequence of padding only would leave its queries nothing to attend to (NaN): leave its
        # keys unmasked; its output rows are zeroed with the others
        keys = pad & ~pad.all(dim=1, keepdim=True)
        return self.layer(x, src_key_padding_mask=keys).masked_fill(pad[..., None], 0.0)


@ENCODERS.register("transformer", details={"paper": "Vaswani et al. 2017, Sec. 3.1",
                                           "stages": "embedding, then one per layer", "layout": "sequence"})
class Transformer(Backbone):
    """A small transformer encoder: token ids ``[B, L] -> [B, L, dim]`` per-token features.

    `Vaswani et al. (2017), "Attention Is All You Need" <https://arxiv.org/abs/1706.03762>`_,
    Sec. 3.1 (post-norm layers), with learned position embeddings.

    Stages: token + position embeddings (both drawn with std ``1/sqrt(dim)``), then one stage
    per ``nn.TransformerEncoderLayer(batch_first=True)``; all sequence layout ``[B, L, dim]``.
    Padding tokens (``pad_index``; sequences right-padded) are masked out of attention: the
    embedding stage makes their rows exactly zero, and each layer stage reads its key padding
    mask from those zero rows and zeroes them in its output (see the module's notes), so padding
    changes nothing at the real tokens.

    Args:
        vocab_size: Number of token ids.
        dim: Model width.
        heads: Attention heads (``dim`` must be a multiple).
        layers: Encoder layers.
        feedforward: Width of each layer's feed-forward block.
        max_length: Longest sequence (learned positions); filled from the data's ``max_length``
            when a run builds the encoder from a config.
        pad_index: The padding token id.
        dropout: Dropout inside the layers.

    Examples:
        >>> net = Transformer(30, dim=8, heads=2, layers=2, feedforward=16)
        >>> [tuple(f.shape) for f in net.forward_stages(torch.tensor([[3, 4, 0]]))]
        [(1, 3, 8), (1, 3, 8), (1, 3, 8)]
        >>> net(torch.tensor([[3, 4, 0]]))[0, 2]  # the padding position
        tensor([0., 0., 0., 0., 0., 0., 0., 0.], grad_fn=<SelectBackward0>)
    """

    def __init__(self, vocab_size: int, dim: int = 64, heads: int = 4, layers: int = 2, feedforward: int = 128,
                 max_length: int = 512, pad_index: int = 0, dropout: float = 0.0) -> None:
        if dim % heads:
            raise ValueError(f"The 'dim' parameter of Transformer ({dim}) must be a multiple of 'heads' ({heads}).")
        if layers < 1 or max_length < 1:
            raise ValueError(f"The 'layers' and 'max_length' parameters of Transformer must be >= 1. "
                             f"Got layers={layers!r}, max_length={max_length!r} instead.")
        embedding = _TokenEmbedding(vocab_size, dim, pad_index, max_length, scale=1 / math.sqrt(dim))
        stages: list[nn.Module] = [embedding, *(_EncoderLayer(dim, heads, feedforward, dropout) for _ in range(layers))]
        super().__init__(stages, [FeatureInfo(dim, "sequence")] * (layers + 1))
        self.pad_index = pad_index


def create_encoder(name: str, **options: object) -> nn.Module:
    """Build a registered encoder by name.

    Examples:
        >>> create_encoder("cnn", out_features=50).out_info
        FeatureInfo(dim=50, layout='vector', reduction=1)
    """
    return ENCODERS.create(name, **options)
