"""CBOW and skip-gram views: the centre word, its window, what is hidden and what is scored."""

from __future__ import annotations

import pytest
import torch

from manytask.views import CBOW, VIEWS, SkipGram

TOKENS = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 0], [20, 21, 0, 0, 0, 0, 0, 0]])


def _centres(view: CBOW | SkipGram, seed: int) -> torch.Tensor:
    out = view(TOKENS, generator=torch.Generator().manual_seed(seed))
    return out.mask if isinstance(view, CBOW) else out.inputs.ne(1) & TOKENS.ne(0)


@pytest.mark.parametrize("seed", range(8))
def test_cbow_reads_the_window_and_scores_the_centre(seed: int) -> None:
    out = CBOW(window=2)(TOKENS, generator=torch.Generator().manual_seed(seed))
    centre = out.mask.int().argmax(1)
    assert out.mask.sum(1).tolist() == [1, 1] and torch.equal(out.target, TOKENS)
    for b, c in enumerate(centre.tolist()):
        for i, token in enumerate(TOKENS[b].tolist()):
            shown = out.inputs[b, i].item()
            if token == 0:
                assert shown == 0  # padding stays padding
            elif i != c and abs(i - c) <= 2:
                assert shown == token  # the window is read
            else:
                assert shown == 1  # the centre and everything outside the window are hidden


@pytest.mark.parametrize("seed", range(8))
def test_skip_gram_reads_the_centre_and_scores_the_window(seed: int) -> None:
    out = SkipGram(window=2)(TOKENS, generator=torch.Generator().manual_seed(seed))
    for b in range(2):
        shown = [i for i, t in enumerate(out.inputs[b].tolist()) if t not in (0, 1)]
        assert len(shown) == 1  # only the centre
        c = shown[0]
        expected = [i for i, t in enumerate(TOKENS[b].tolist()) if t and i != c and abs(i - c) <= 2]
        assert out.mask[b].nonzero().flatten().tolist() == expected


def test_centres_are_drawn_over_the_real_words() -> None:
    seen = {tuple(_centres(CBOW(), s).int().argmax(1).tolist()) for s in range(60)}
    assert {c for c, _ in seen} == set(range(7)) and {c for _, c in seen} == {0, 1}


def test_options_spelling_and_registry() -> None:
    chars = torch.randint(2, 9, (2, 8, 3)).masked_fill((TOKENS == 0)[..., None], 0)
    out = SkipGram(window=1, predict=8)({"tokens": TOKENS, "chars": chars}, generator=torch.Generator())
    hidden = out.inputs["tokens"].eq(1)
    assert torch.equal(out.inputs["chars"][hidden], torch.zeros_like(chars[hidden]))
    assert not (out.mask & (TOKENS >= 8)).any()  # only ids below predict are targets
    assert {"cbow", "skip_gram"} <= set(VIEWS.names())
    with pytest.raises(ValueError, match="window >= 1"):
        CBOW(window=0)
    with pytest.raises(ValueError, match=r"needs token ids \[B, L\]"):
        SkipGram()(torch.rand(2, 3), generator=torch.Generator())
