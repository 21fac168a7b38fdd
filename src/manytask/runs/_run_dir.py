"""A run directory belongs to one run: fresh runs claim it, resumes must match its config."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..config import Config

__all__ = ["RESUMABLE_KEYS", "RUN_ARTEFACTS", "RunDirError", "check_resume", "claim", "config_changes"]

#: What a run writes into its directory (``compare`` adds its tables and sub-runs), and what
#: ``predict``, ``evaluate`` and ``export`` write there by default: ``--overwrite`` deletes them all.
RUN_ARTEFACTS = ("config.yaml", "metrics.csv", "results.json", "checkpoints", "comparison.md", "comparison.csv",
                 "tasks.json", "preprocessing.json", "report.html", "coef.csv", "search.csv", "relatedness",
                 "structure.txt", "tensorboard", "predictions.csv", "evaluation.csv", "model.pt2")

#: Config keys a resume may change: they alter neither what was trained so far nor the data split
#: (a resume reads its weights from its own checkpoint, never from ``training.init_from``).
RESUMABLE_KEYS = frozenset({
    "run_dir", "training.steps", "training.eval_every", "training.checkpoint_every", "training.patience",
    "training.progress", "training.init_from", "data.eval_batch_size",
})


class RunDirError(ValueError):
    """A run directory that holds another run, or a resume whose config changes that run."""


def _artefacts(run_dir: Path) -> list[Path]:
    if not run_dir.is_dir():
        return []
    found = [run_dir / name for name in RUN_ARTEFACTS if (run_dir / name).exists()]
    return found + sorted(p for p in run_dir.iterdir() if p.is_dir() and _is_sub_run(p))


def _is_sub_run(path: Path) -> bool:
    named = path.name == "multi" or path.name.startswith(("single-", "pair-", "linear-"))
    return named and (path / "config.yaml").exists()


def claim(run_dir: Path, *, overwrite: bool, resume: str | None = "--resume latest", delete: bool = True) -> None:
    """Make ``run_dir`` ready for a fresh run: refuse if it holds a run, unless ``overwrite``,
    which deletes that run's files (and only those). ``resume``: the command's option that
    continues the run, offered as a way out (None: it has none). ``delete=False`` only checks:
    a command calls that first, and deletes once its config has been checked, so that a
    mistake found in between leaves the old run in place."""
    found = _artefacts(run_dir)
    if not found:
        return
    if not overwrite:
        names = ", ".join(p.name for p in found)
        ways = f"Continue it with {resume}, write" if resume else "Write"
        raise RunDirError(
            f"Run directory {run_dir} already holds a run ({names}). {ways} to another directory "
            "(--run-dir ...), or pass --overwrite to delete that run first."
        )
    if not delete:
        return
    for path in found:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: value}


def config_changes(path: Path, config: Config, allowed: frozenset[str]) -> list[str]:
    """``"key: old -> new"`` for each flattened key whose value in ``config`` differs from the
    saved ``path`` (a run's config.yaml), but for the ``allowed`` keys. A key a later manytask
    added reads, in an older run, as its default."""
    old = _flatten(yaml.safe_load(path.read_text()) or {})
    new = _flatten(config.model_dump(mode="json"))
    defaults = _flatten(Config().model_dump(mode="json"))
    for key, value in new.items():
        if key not in old and key in defaults and value == defaults[key]:
            old[key] = value
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k) and k not in allowed]


def check_resume(run_dir: Path, config: Config) -> None:
    """Refuse to resume ``run_dir`` with a config that changes what it trained or how its data
    was split; name each changed key with its old and new value. Writes nothing."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"Nothing to resume in {run_dir}: it has no config.yaml. Train without --resume.")
    changed = config_changes(path, config, RESUMABLE_KEYS)
    if changed:
        lines = "\n  ".join(changed)
        raise RunDirError(
            f"Cannot resume {run_dir} with a different config; these keys change what was trained or how "
            f"the data was split:\n  {lines}\nResume with the run's own config ({path}), changing only "
            f"{', '.join(sorted(RESUMABLE_KEYS - {'run_dir'}))}; or start a new run in another directory."
        )
