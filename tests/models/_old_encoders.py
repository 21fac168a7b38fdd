"""The encoders as they were before they had stages (``git show 57ad91f:src/manytask/models/_encoders.py``,
copied verbatim but for the class names and the registry decorators): the staged encoders must
compute the same numbers from the same seed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

__all__ = ["OldBiLSTM", "OldConvNet", "OldMLP"]


class OldMLP(nn.Module):
    """Fully connected layers with ReLU: ``[B, in_features] -> [B, hidden[-1]]``."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (64, 64), dropout: float = 0.0) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("The 'hidden' parameter of MLP must list at least one layer width.")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        self.net = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class OldConvNet(nn.Module):
    """A LeNet-style CNN: ``[B, C, H, W] -> [B, out_features]`` (two conv blocks + a linear)."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, channels: Sequence[int] = (10, 20),
                 out_features: int = 50, dropout: float = 0.0) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(c1, c2, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        )
        side = image_size // 4
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * side * side, out_features), nn.ReLU())
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x))


class OldBiLSTM(nn.Module):
    """Embedding + bidirectional LSTM: token ids ``[B, L] -> [B, L, 2*hidden]`` per-token features.

    Inputs are token ids with ``pad_index`` on padding (or a dict with key ``"tokens"``).
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden: int = 64, layers: int = 1,
                 pad_index: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.pad_index = pad_index
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.lstm = nn.LSTM(embedding_dim, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.out_features = 2 * hidden

    def forward(self, tokens: Tensor | Mapping[str, Tensor]) -> Tensor:
        if isinstance(tokens, Mapping):
            tokens = tokens["tokens"]
        lengths = (tokens != self.pad_index).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
        return out
