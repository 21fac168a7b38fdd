"""Encoders (shared trunks) by name, each a :class:`Backbone` with stages: an MLP, a small CNN,
a BiLSTM tagger and a small transformer.

Sequence backbones keep one invariant that lets every stage find the padding without extra
inputs: **padding positions are exactly zero** in every stage's output (the embedding of the
padding index is the zero vector, and each later stage zeroes them again).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .._registry import Registry
from ._backbone import Backbone, FeatureInfo

__all__ = ["ENCODERS", "MLP", "BiLSTM", "ConvNet", "Transformer", "create_encoder", "padding_mask"]

ENCODERS: Registry[nn.Module] = Registry("encoder")


def padding_mask(features: Tensor) -> Tensor:
    """``[B, L]`` True at the padding positions of sequence features ``[B, L, D]`` (all-zero rows)."""
    return features.detach().eq(0).all(dim=-1)


class _Flatten(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


@ENCODERS.register("mlp")
class MLP(Backbone):
    """Fully connected layers with ReLU: ``[B, in_features] -> [B, hidden[-1]]``; one stage per layer."""

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


@ENCODERS.register("cnn")
class ConvNet(Backbone):
    """A LeNet-style CNN (as in Sener & Koltun 2018's MultiMNIST model): two conv blocks
    ``[B, C, H, W] -> [B, c1, H/2, W/2] -> [B, c2, H/4, W/4]`` (map stages), and with
    ``out_features`` a third stage ``flatten -> dropout -> linear -> ReLU`` to ``[B, out_features]``.

    Without ``out_features`` the last stage is the map: sample-level heads pool it, pixel-level
    heads upsample it back to the input resolution.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, channels: Sequence[int] = (10, 20),
                 out_features: int | None = None, dropout: float = 0.0) -> None:
        c1, c2 = channels
        stages: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(in_channels, c1, 5, padding=2), nn.MaxPool2d(2), nn.ReLU()),
            nn.Sequential(nn.Conv2d(c1, c2, 5, padding=2), nn.MaxPool2d(2), nn.ReLU()),
        ]
        info = [FeatureInfo(c1, "map", 2), FeatureInfo(c2, "map", 4)]
        if out_features is not None:
            side = image_size // 4
            stages.append(nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * side * side, out_features),
                                        nn.ReLU()))
            info.append(FeatureInfo(out_features, "vector"))
        super().__init__(stages, info)


class _TokenEmbedding(nn.Module):
    """Token ids ``[B, L]`` (or ``{"tokens": ...}``) -> ``[B, L, D]``; padding rows are zero."""

    def __init__(self, vocab_size: int, dim: int, pad_index: int, max_len: int = 0) -> None:
        super().__init__()
        self.pad_index = pad_index
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_index)
        self.position = nn.Embedding(max_len, dim) if max_len else None

    def forward(self, tokens: Tensor | Mapping[str, Tensor]) -> Tensor:
        if isinstance(tokens, Mapping):
            tokens = tokens["tokens"]
        x = self.embedding(tokens)
        if self.position is not None:
            if tokens.shape[1] > self.position.num_embeddings:
                raise ValueError(f"Sequences of length {tokens.shape[1]} exceed the transformer's max_len="
                                 f"{self.position.num_embeddings}; raise max_len.")
            x = x + self.position(torch.arange(tokens.shape[1], device=tokens.device))
            x = x.masked_fill((tokens == self.pad_index)[..., None], 0.0)
        return x


class _BiLSTMLayer(nn.Module):
    """One bidirectional LSTM layer over the non-padding positions (packed)."""

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.lstm = nn.LSTM(in_features, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor) -> Tensor:
        lengths = (~padding_mask(x)).sum(1).clamp(min=1).cpu()
        if self.dropout is not None:
            x = self.dropout(x)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out  # padding rows come out as zeros


@ENCODERS.register("bilstm")
class BiLSTM(Backbone):
    """Embedding + bidirectional LSTM: token ids ``[B, L] -> [B, L, 2*hidden]`` per-token features.

    Stages: the embedding (sequence ``[B, L, embedding_dim]``), then one bidirectional layer each
    (``[B, L, 2*hidden]``, dropout between layers). Inputs are token ids with ``pad_index`` on
    padding (or a dict with key ``"tokens"``).
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden: int = 64, layers: int = 1,
                 pad_index: int = 0, dropout: float = 0.0) -> None:
        if layers < 1:
            raise ValueError(f"The 'layers' parameter of BiLSTM must be >= 1. Got {layers!r} instead.")
        stages: list[nn.Module] = [_TokenEmbedding(vocab_size, embedding_dim, pad_index)]
        stages += [_BiLSTMLayer(embedding_dim if i == 0 else 2 * hidden, hidden, dropout if i else 0.0)
                   for i in range(layers)]
        info = [FeatureInfo(embedding_dim, "sequence")] + [FeatureInfo(2 * hidden, "sequence")] * layers
        super().__init__(stages, info)
        self.pad_index = pad_index


class _EncoderLayer(nn.Module):
    """A transformer encoder layer that ignores and keeps zero the padding positions."""

    def __init__(self, dim: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(dim, heads, feedforward, dropout, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        pad = padding_mask(x)
        pad = pad & ~pad.all(dim=1, keepdim=True)  # a row of padding only attends to itself
        return self.layer(x, src_key_padding_mask=pad).masked_fill(pad[..., None], 0.0)


@ENCODERS.register("transformer")
class Transformer(Backbone):
    """A small transformer encoder (`Vaswani et al. (2017), "Attention Is All You Need"
    <https://arxiv.org/abs/1706.03762>`_, Sec. 3.1, post-norm): token ids ``[B, L] -> [B, L, dim]``.

    Stages: token + learned position embeddings, then one stage per encoder layer, all sequence
    layout. Padding tokens (``pad_index``) are masked out of attention and stay zero, so they
    change nothing at the real tokens.

    Args:
        vocab_size: Number of token ids.
        dim: Model width.
        heads: Attention heads (``dim`` must be a multiple).
        layers: Encoder layers.
        feedforward: Width of each layer's feed-forward block.
        max_len: Longest sequence (learned positions).
        pad_index: The padding token id.
        dropout: Dropout inside the layers.
    """

    def __init__(self, vocab_size: int, dim: int = 64, heads: int = 4, layers: int = 2, feedforward: int = 128,
                 max_len: int = 512, pad_index: int = 0, dropout: float = 0.0) -> None:
        if dim % heads:
            raise ValueError(f"The 'dim' parameter of Transformer ({dim}) must be a multiple of 'heads' ({heads}).")
        embedding = _TokenEmbedding(vocab_size, dim, pad_index, max_len)
        with torch.no_grad():  # token embeddings at the positional scale (std 1/sqrt(dim))
            embedding.embedding.weight.mul_(1 / math.sqrt(dim))
        stages: list[nn.Module] = [embedding, *(_EncoderLayer(dim, heads, feedforward, dropout) for _ in range(layers))]
        super().__init__(stages, [FeatureInfo(dim, "sequence")] * (layers + 1))
        self.pad_index = pad_index


def create_encoder(name: str, **options: object) -> nn.Module:
    """Build a registered encoder by name."""
    return ENCODERS.create(name, **options)
