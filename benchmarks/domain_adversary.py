"""Does gradient reversal remove the domain from the features? MNIST in two domains.

`mnist_domains` shows half of the MNIST digits inverted (domain 1). Each seed trains the same CNN
twice on the digit task: alone, and with the domain as an adversarial task (gradient reversal,
Ganin & Lempitsky 2015, on their schedule). Afterwards a *separate* probe — logistic regression
(scikit-learn) on the frozen shared features — learns the domain on the validation images and is
scored on the test images: near 100 % means the features still say which domain an image came
from, near 50 % that they do not. The digit accuracy on the test images sits beside it.

    OMP_NUM_THREADS=1 python benchmarks/domain_adversary.py --docs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import environment, write_section  # noqa: E402

from manytask.config import parse_config  # noqa: E402
from manytask.runs import train  # noqa: E402
from manytask.runs._build import build_experiment  # noqa: E402


def config(adversary: bool, seed: int, steps: int, train_size: int, root: str) -> dict[str, Any]:
    tasks: dict[str, Any] = {"domain": {"role": "adversarial", "reversal": 1.0, "head_hidden": 32}} if adversary else {}
    return {
        "seed": seed,
        "data": {"name": "mnist_domains", "root": root, "seed": seed, "train_size": train_size, "batch_size": 128,
                 "eval_batch_size": 1000},
        "include_tasks": ["digit", "domain"] if adversary else ["digit"],
        "tasks": tasks,
        "model": {"name": "hps", "encoder": {"name": "cnn", "out_features": 50}},
        "optimizer": {"name": "adam", "lr": 0.001},
        "training": {"steps": steps, "eval_every": max(1, steps // 4), "progress": False, "monitor": "digit/accuracy"},
    }


@torch.no_grad()
def features(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model.features(images[i:i + 1000]) for i in range(0, len(images), 1000)])  # type: ignore[operator]


def probe(raw: dict[str, Any], run_dir: Path) -> tuple[float, float, float]:
    """(test digit accuracy, domain probe accuracy on the test images, the adversary head's own
    test AUROC, NaN without one) of one run, trained unless ``run_dir`` holds a finished one."""
    finished = run_dir / "results.json"
    metrics = json.loads(finished.read_text())["metrics"] if finished.is_file() else \
        train(parse_config(raw), run_dir=run_dir).test
    experiment = build_experiment(parse_config(raw), run_dir=run_dir)
    experiment.trainer.load_best()
    val, test = experiment.data.val, experiment.data.test
    assert val is not None and test is not None
    fit = val.batch(torch.arange(len(val)))
    held = test.batch(torch.arange(len(test)))
    assert isinstance(fit.inputs, torch.Tensor) and isinstance(held.inputs, torch.Tensor)
    classifier = LogisticRegression(max_iter=2000)
    classifier.fit(features(experiment.model, fit.inputs).numpy(), fit.targets["domain"].numpy())
    score = classifier.score(features(experiment.model, held.inputs).numpy(), held.targets["domain"].numpy())
    return metrics["digit/accuracy"], float(score), metrics.get("domain/auroc", math.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/domain_adversary"))
    parser.add_argument("--docs", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[tuple[float, float, float]]] = {"digit alone": [], "digit + domain adversary": []}
    for seed in args.seeds:
        for label, adversary in (("digit alone", False), ("digit + domain adversary", True)):
            raw = config(adversary, seed, args.steps, args.train_size, args.root)
            rows[label].append(probe(raw, args.runs_dir / f"{'adversary' if adversary else 'alone'}-seed{seed}"))
            print(label, seed, rows[label][-1], flush=True)
    lines = ["| model | digit accuracy (test) | domain probe accuracy (test) | the adversary's own AUROC (test) |",
             "|---|---|---|---|"]
    for label, values in rows.items():
        cells = []
        for column in range(3):
            xs = [v[column] for v in values]
            if any(math.isnan(x) for x in xs):
                cells.append("–")
                continue
            cells.append(f"{statistics.mean(xs):.4f}" + (f" ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.docs:
        write_section("domain_adversary", "\n".join([
            "## Domain-adversarial training: does the reversal remove the domain from the features?",
            "",
            f"Command: `python benchmarks/domain_adversary.py --docs` (seeds {', '.join(map(str, args.seeds))}; "
            f"{args.steps} steps of batch 128 on {args.train_size} training images; {environment()}). MNIST with a "
            "seeded half of the digits inverted (`mnist_domains`); the MultiMNIST CNN (50 shared features). "
            "The adversary is the domain task with role `adversarial` (a 32-unit hidden layer, reversal 1.0 on "
            "Ganin & Lempitsky's schedule). The probe is a logistic regression fitted on the frozen features of "
            "the validation images and scored on the test images (50 % = the features keep no linear trace of "
            "the domain). The adversary's own AUROC is its head's, on the test images: near 0.5 it is fooled, near "
            "0 the features flipped the domain's direction against it. Mean ± std over seeds.",
            "",
            *lines,
        ]))


if __name__ == "__main__":
    main()
