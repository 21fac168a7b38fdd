"""Kill a run at random moments and resume it: does it survive, stay uncorrupted, and end where an
uninterrupted run ends, bitwise?

For one process (``python -m manytask train``) and two ranks (``torchrun --nproc_per_node=2``):
start the run, SIGKILL it (the whole process group) after a random delay — at any moment: while
starting, loading, training, evaluating or writing — then ``--resume latest`` (or start afresh
while there is no checkpoint yet), ``--kills`` times; then let it finish. After every kill every
file of the run directory is read back (each checkpoint's sha256, ``metrics.csv``,
``config.yaml``, ``results.json``). Finally the last checkpoint's tensors are compared with an
uninterrupted run's.

Usage: python benchmarks/kill_resume.py [--kills 30] [--seed 0] [--docs]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, write_section  # noqa: E402

from manytask.training import CheckpointManager  # noqa: E402

CONFIG = {
    "seed": 0,
    "data": {"name": "demo", "n_train": 2000, "n_val": 200, "n_test": 200, "labelled_fraction": 0.3, "batch_size": 64},
    "model": {"encoder": {"hidden": [128, 128]}},
    "balancer": {"name": "mgda"},
    "optimizer": {"name": "adam", "lr": 0.001},
    "training": {"steps": 1500, "eval_every": 100, "checkpoint_every": 25, "progress": False, "device": "cpu"},
}


def _command(config: Path, run_dir: Path, ranks: int, resume: bool) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "manytask"] \
        if ranks == 2 else [sys.executable, "-m", "manytask"]
    return [*launcher, "train", str(config), "--run-dir", str(run_dir),
            *(["--resume", "latest"] if resume else ["--overwrite"])]


def _has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").glob("step-*.safetensors"))


def _corrupt_files(run_dir: Path) -> list[str]:
    """The run directory's files that cannot be read back whole."""
    bad = []
    for path in sorted((run_dir / "checkpoints").glob("*.safetensors")) if (run_dir / "checkpoints").is_dir() else []:
        try:
            CheckpointManager.load(path)
        except Exception as error:  # any failure to read back is corruption
            bad.append(f"{path.name}: {error}")
    readers = {"metrics.csv": lambda p: list(csv.DictReader(p.open())), "config.yaml": lambda p: yaml.safe_load(p.read_text()),
               "results.json": lambda p: json.loads(p.read_text())}
    for name, read in readers.items():
        if (run_dir / name).is_file():
            try:
                read(run_dir / name)
            except Exception as error:
                bad.append(f"{name}: {error}")
    return bad


def _leftovers(run_dir: Path) -> int:
    """Temporary files a killed write left behind (``.<name>.*.tmp``; litter, not corruption)."""
    return sum(1 for _ in run_dir.rglob(".*.tmp"))


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def _final(run_dir: Path) -> dict[str, torch.Tensor]:
    last = CheckpointManager(run_dir / "checkpoints").latest()
    assert last is not None, f"{run_dir} has no checkpoint"
    return CheckpointManager.load(last)["model"]


def torture(config: Path, run_dir: Path, ranks: int, kills: int, rng: random.Random) -> dict[str, object]:
    """Kill the run ``kills`` times at random moments, resuming each time; then finish it."""
    corrupt: list[str] = []
    done = 0
    launches = 0
    while done < kills:
        process = subprocess.Popen(_command(config, run_dir, ranks, _has_checkpoint(run_dir)),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        launches += 1
        time.sleep(rng.uniform(1.0, 8.0 if ranks == 2 else 6.0))
        if process.poll() is not None:  # it finished (or failed) before the kill
            _, err = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"A launch failed on its own (exit {process.returncode}):\n{err.decode()[-2000:]}")
            break
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        done += 1
        corrupt += _corrupt_files(run_dir)
    finished = _run(_command(config, run_dir, ranks, _has_checkpoint(run_dir)))
    if finished.returncode != 0:
        said = [line for line in finished.stderr.splitlines() if line.startswith("error:")]
        raise RuntimeError(f"The final launch failed: {said or finished.stderr[-2000:]}")
    corrupt += _corrupt_files(run_dir)
    return {"kills": done, "launches": launches + 1, "corrupt": corrupt, "leftovers": _leftovers(run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs", action="store_true", help="write the table to docs/reliability.md")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(CONFIG))
        for ranks in (1, 2):
            start = time.perf_counter()
            straight = Path(tmp) / f"straight-{ranks}"
            done = _run(_command(config, straight, ranks, False))
            if done.returncode != 0:
                raise RuntimeError(f"The uninterrupted run failed:\n{done.stderr[-2000:]}")
            killed = Path(tmp) / f"killed-{ranks}"
            report = torture(config, killed, ranks, args.kills, rng)
            a, b = _final(straight), _final(killed)
            equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            rows.append((ranks, report, equal, time.perf_counter() - start))
            print(f"{ranks} rank(s): {report['kills']} kills, {len(report['corrupt'])} corrupt file(s), "  # type: ignore[arg-type]
                  f"final parameters bitwise equal: {equal}", flush=True)
    lines = ["| processes | kills survived | launches | corrupt files found | temporary files left | "
             "final parameters = uninterrupted run (bitwise) |", "|---|---|---|---|---|---|"]
    for ranks, report, equal, _ in rows:
        label = "1 (`python -m manytask train`)" if ranks == 1 else "2 ranks (`torchrun --nproc_per_node=2`)"
        lines.append(f"| {label} | {report['kills']} | {report['launches']} | {len(report['corrupt'])} "  # type: ignore[arg-type]
                     f"| {report['leftovers']} | {'yes' if equal else 'no'} |")
    corrupt = [c for _, r, _, _ in rows for c in r["corrupt"]]  # type: ignore[attr-defined]
    text = "\n".join([
        "## Killed at random moments", "",
        f"Command: `python benchmarks/kill_resume.py --kills {args.kills} --seed {args.seed}` ({environment()}). "
        f"A {CONFIG['training']['steps']}-step MGDA run of the demo data (checkpoint every "  # type: ignore[index]
        f"{CONFIG['training']['checkpoint_every']} steps) is SIGKILLed (its whole process group) at a "  # type: ignore[index]
        "random moment 1-8 s after each launch (starting, loading, training, evaluating or writing), then "
        "resumed with `--resume latest`, until it has been killed that many times; then it finishes. "
        "After every kill each checkpoint is loaded (sha256 checked), and `metrics.csv`, `config.yaml` and "
        "`results.json` are parsed. The last checkpoint is compared tensor by tensor with an uninterrupted run's.",
        "", *lines, "", *(f"- corrupt: {c}" for c in corrupt), ""])
    print(text)
    if args.docs:
        write_section("kill_resume", text, Path(__file__).resolve().parents[1] / "docs" / "reliability.md")


if __name__ == "__main__":
    main()
