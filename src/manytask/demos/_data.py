"""Generated multi-task data with a known shared structure, for the demo, tests and bug reports."""

from __future__ import annotations

import torch

from ..data import DATASETS, MultiTaskData, TensorSource
from ..tasks import BinaryClassification, Classification, Regression

__all__ = ["shared_latent_tasks"]


@DATASETS.register("demo")
def shared_latent_tasks(
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 2000,
    in_features: int = 20,
    latent: int = 4,
    num_classes: int = 8,
    labelled_fraction: float = 0.04,
    noise: float = 0.1,
    seed: int = 0,
) -> MultiTaskData:
    r"""Three tasks read one hidden representation h = tanh(A relu(Bx)).

    ``category`` (``num_classes`` classes, :math:`\arg\max U h`) is labelled on every training sample;
    ``score`` (regression, :math:`v^\top h` + noise) and ``flag`` (binary,
    :math:`[u^\top h > 0]`) only on ``labelled_fraction`` of them (partial labels in one
    source). A single-task model must learn :math:`h` from a few labels; a multi-task model
    learns it from ``category`` and needs only a linear read-out for the others. Validation
    and test sets are fully labelled.
    """
    if not 0 < labelled_fraction <= 1:
        raise ValueError(f"labelled_fraction must be in (0, 1]. Got {labelled_fraction}.")
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(4 * latent, in_features, generator=g) / in_features**0.5
    a = torch.randn(latent, 4 * latent, generator=g) * (2.0 / latent) ** 0.5
    u_cat = torch.randn(num_classes, latent, generator=g)
    v_score = torch.randn(latent, generator=g)
    u_flag = torch.randn(latent, generator=g)
    n = n_train + n_val + n_test
    x = torch.randn(n, in_features, generator=g)
    h = torch.tanh(torch.relu(x @ b.T) @ a.T)
    category = (h @ u_cat.T).argmax(1)
    score = h @ v_score
    score = (score - score.mean()) / score.std() + noise * torch.randn(n, generator=g)
    flag_logit = h @ u_flag
    flag = (flag_logit > flag_logit.median()).float()

    labelled = torch.zeros(n_train, dtype=torch.bool)
    labelled[torch.randperm(n_train, generator=g)[: max(1, round(labelled_fraction * n_train))]] = True
    full = torch.ones(n_train, dtype=torch.bool)

    def source(rows: slice, name: str, partial: bool) -> TensorSource:
        masks = {"category": full, "score": labelled, "flag": labelled} if partial else None
        return TensorSource(
            x[rows], {"category": category[rows], "score": score[rows], "flag": flag[rows]}, masks, name
        )

    tasks = (
        Classification("category", num_classes=num_classes),
        Regression("score"),
        BinaryClassification("flag", metrics=("accuracy", "auroc")),
    )
    return MultiTaskData(
        tasks=tasks,
        train={"train": source(slice(0, n_train), "train", partial=True)},
        val=source(slice(n_train, n_train + n_val), "val", partial=False),
        test=source(slice(n_train + n_val, n), "test", partial=False),
        input_info={"in_features": in_features},
        description=f"shared-latent demo: {n_train} train samples, {labelled.sum()} labelled for score/flag",
    )
