"""A small configurable run for training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, Temperature
from manytask.demos import shared_latent_tasks
from manytask.models import MLP, create_model
from manytask.training import Checkpointing, Evaluation, Trainer, build_optimizer, build_scheduler


def make_trainer(run_dir: Path | None, steps: int, balancer: str = "ew", eval_every: int = 7, scheme: str = "hps",
                 model_options: dict[str, Any] | None = None, hidden: tuple[int, ...] = (16,), **options: Any) -> Trainer:
    torch.manual_seed(0)
    data = shared_latent_tasks(n_train=300, n_val=60, n_test=60, labelled_fraction=0.3)
    tasks = list(data.tasks)
    model = create_model(scheme, encoder=MLP(20, hidden, dropout=0.2), tasks=tasks, **(model_options or {}))
    bal = create_balancer(balancer, tasks, **options)
    optimizer = build_optimizer(model, bal, lr=1e-2, task_lr={"score": 5e-3})
    scheduler = build_scheduler(optimizer, "cosine", steps, warmup_steps=3)
    source = data.train["train"]
    sources = {"many": source.only(["category"]), "few": source.only(["score", "flag"])}
    loader = MultiSourceLoader(sources, 16, sampler=Temperature(2.0), seed=0)
    return Trainer(model, tasks, bal, optimizer, loader, steps=steps,
                   evaluation=Evaluation(data.val, every=eval_every), checkpoints=Checkpointing(run_dir),
                   progress=False, scheduler=scheduler)
