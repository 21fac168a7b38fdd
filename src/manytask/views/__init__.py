"""Views: inputs transformed into (inputs, target, mask) for self-supervised tasks.

A task that names a view (``Task(view="masked_cells")``) is trained on the view's inputs,
target and mask instead of the batch's. Each view runs once per batch and is shared by every
task that names it; it draws its randomness from the generator the trainer passes (seeded by
the run and stored in checkpoints, so a resumed run sees the same views).
"""

from ._base import VIEWS, View, ViewBatch, create_view
from ._contains_words import ContainsWords
from ._decolourise import Decolourise
from ._low_resolution import LowResolution
from ._masked_cells import MaskedCells
from ._masked_words import MaskedWords
from ._neighbour_word import NeighbourWord, PreviousWord
from ._next_sentence import NextSentence
from ._reconstruct import Reconstruct
from ._region import Region
from ._rotation import Rotation
from ._word2vec import CBOW, SkipGram

__all__ = ["CBOW", "VIEWS", "ContainsWords", "Decolourise", "LowResolution", "MaskedCells", "MaskedWords",
           "NeighbourWord", "NextSentence", "PreviousWord", "Reconstruct", "Region", "Rotation", "SkipGram", "View",
           "ViewBatch", "create_view"]
