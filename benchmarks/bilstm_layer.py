"""Time of one BiLSTM layer (forward and backward) as manytask runs it, relative to the packed
bidirectional ``nn.LSTM`` it replaces (measured in one run, alternating pairs of batches, median ratio).

manytask runs each direction as a unidirectional LSTM on the padded batch (the backward one on
each sentence reversed within its length), which on CPU uses oneDNN's fused kernel; the packed
call loops over time steps. Shapes of the CoNLL-2000 tagger in benchmarks/conll2000_crf.yaml:
inputs of 150 features (100-dim words + 50 character filters), 128 units per direction, batches
of 32 sentences whose lengths are drawn from the training sentences' lengths.

Usage: python benchmarks/bilstm_layer.py [--steps 20] [--repeats 7] [--threads 1] [--docs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, pin_malloc, protocol, ratio, shared_data, write_section  # noqa: E402

from manytask.data import TensorSource  # noqa: E402
from manytask.data.datasets import conll2000  # noqa: E402
from manytask.models import BiLSTM  # noqa: E402


def sentence_lengths() -> Tensor:
    """The lengths of the CoNLL-2000 training sentences (in tokens)."""
    source = conll2000(root=str(shared_data())).train["conll2000"]
    assert isinstance(source, TensorSource) and isinstance(source.inputs, Tensor)
    return source.inputs.ne(0).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="pairs of batches timed = steps x repeats")
    parser.add_argument("--repeats", type=int, default=7, help="pairs of batches timed = steps x repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--docs", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pin_malloc()
    torch.manual_seed(0)

    lengths = sentence_lengths()
    batch, features, hidden = 32, 150, 128
    layer = BiLSTM(10, embedding_dim=features, hidden=hidden).stages[1]  # the first bidirectional layer
    packed = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
    generator = torch.Generator().manual_seed(0)

    def draw() -> tuple[Tensor, Tensor]:
        length = lengths[torch.randint(len(lengths), (batch,), generator=generator)]
        steps = torch.arange(int(length.max()))
        x = torch.randn(batch, len(steps), features, generator=generator)
        return x.masked_fill((steps >= length[:, None])[..., None], 0.0).requires_grad_(), length

    def ours() -> None:
        x, _ = draw()
        layer(x).sum().backward()

    def reference() -> None:
        x, length = draw()
        out, _ = packed(nn.utils.rnn.pack_padded_sequence(x, length, batch_first=True, enforce_sorted=False))
        nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0].sum().backward()

    value = ratio(ours, reference, args.steps, args.repeats)
    line = (f"| manytask BiLSTM layer / packed bidirectional `nn.LSTM`, forward + backward — batch {batch}, "
            f"CoNLL-2000 sentence lengths, {features} → 2×{hidden} | {value:.2f} |")
    print(line)
    if args.docs:
        write_section("bilstm_layer", "\n".join([
            "## BiLSTM layer",
            "",
            f"Command: `python benchmarks/bilstm_layer.py --docs --threads {args.threads}` "
            f"({protocol(args.steps, args.repeats, 1)}; {environment()}). Each direction runs "
            "as a unidirectional LSTM on the padded batch (oneDNN's fused kernel on CPU) instead of one packed "
            "bidirectional call; the outputs at real tokens are the same to rounding (tests/models/test_encoders.py).",
            "",
            "| measurement | ratio |",
            "|---|---:|",
            line,
        ]))


if __name__ == "__main__":
    main()
