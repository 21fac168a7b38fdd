"""PyTorch Lightning: a manytask model, its tasks and balancer trained by a Lightning ``Trainer``
(``pip install "manytask[lightning]"``)."""

from ._module import MultiTaskModule, StepLoader

__all__ = ["MultiTaskModule", "StepLoader"]
