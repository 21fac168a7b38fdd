"""Which tasks help which, on real data: the lookahead affinity (Fifty et al. 2021) and the pair-run
transfer gains (Standley et al. 2020) side by side, their rank correlation, the two groups each
recommends, and the measured Δm of training those groups against one model per task and one
model for all.

    python benchmarks/relatedness.py [--docs] [--only school10|census4]

Each study is a config in benchmarks/relatedness/; ``manytask relate --pairs`` does the
measuring (runs in runs/relatedness/<study>/, reused when present); the recommended groups are
then trained with the same budget. Each task is scored by the chosen group that the matrix
predicts serves it best (Standley et al. Sec. 3.3). Raw results: benchmarks/results/relatedness_<study>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from manytask._utils import atomic_write, write_section
from manytask.config import load_config
from manytask.metrics import delta_m, higher_is_better
from manytask.relatedness import group_value, load_matrices
from manytask.runs import relate, select_tasks, train
from manytask.runs._build import load_data

HERE = Path(__file__).resolve().parent
STUDIES = {
    "school10": "School, its first 10 schools (Argyriou split 1, one mixed source; 600 steps of batch 64 per run; "
                "RMSE)",
    "census4": "Census-income, four binary targets made of its columns (1000 steps of batch 1024 per run; AUROC)",
    "conll3": "CoNLL-2000, chunking, POS and a masked-word task (800 steps of batch 32 per run; chunk F1, POS and "
              "masked-word accuracy)",
}


def _results(run: Path) -> dict[str, float]:
    return {k: (math.nan if v is None else v) for k, v in json.loads((run / "results.json").read_text())["metrics"].items()}


def _run_of(root: Path, group: list[str], order: list[str]) -> Path:
    group = sorted(group, key=order.index)
    if len(group) == 1:
        return root / f"single-{group[0]}"
    if len(group) == len(order):
        return root / "multi"
    if len(group) == 2:
        return root / f"pair-{group[0]}+{group[1]}"
    return root / ("group-" + "+".join(group))


def study(name: str) -> dict:
    config = load_config(HERE / "relatedness" / f"{name}.yaml")
    root = Path(config.run_dir)
    if not (root / "relatedness" / "groups.json").is_file():  # finished runs of an interrupted study are kept
        relate(config, run_dir=root, pairs=True, resume=root.is_dir())
    data = load_data(config)
    tasks = list(select_tasks(config, data))
    order = [t.name for t in tasks]
    keys = {t.name: f"{t.name}/{t.metrics[0]}" for t in tasks}
    matrices = {m.name: m for m in load_matrices(root)}
    groups = json.loads((root / "relatedness" / "groups.json").read_text())["groups"]
    alone = {t: _results(root / f"single-{t}")[keys[t]] for t in order}
    rows = {"one model per task": {t: alone[t] for t in order},
            "one model for all": {t: _results(root / "multi")[keys[t]] for t in order}}
    for source in ("tag_affinity", "transfer_gain"):
        matrix = np.nan_to_num(matrices[source].values, nan=0.0)
        chosen = groups[source]
        for group in chosen:
            run = _run_of(root, group, order)
            if not (run / "results.json").is_file():
                train(config, data=data, only=sorted(group, key=order.index), run_dir=run, report=False)
        served = {}
        for task in order:
            j = order.index(task)
            best = max((g for g in chosen if task in g),
                       key=lambda g: group_value(matrix, tuple(order.index(t) for t in g), j))
            served[task] = _results(_run_of(root, best, order))[keys[task]]
        rows[f"groups from {source}: " + " | ".join(", ".join(g) for g in chosen)] = served
    mains = [t.name for t in tasks if t.role == "main"] or order  # Δm over the main tasks
    directions = {keys[t]: higher_is_better(keys[t].split("/", 1)[1]) for t in mains}
    baseline = {keys[t]: alone[t] for t in mains}
    deltas = {label: delta_m({keys[t]: v[t] for t in mains}, baseline, directions) for label, v in rows.items()}
    rho = json.loads((root / "relatedness" / "groups.json").read_text()).get("rank_correlation")
    return {"name": name, "title": STUDIES[name], "tasks": order, "metric": {t: keys[t] for t in order},
            "rows": rows, "delta_m": deltas, "rank_correlation": rho,
            "tag_affinity": matrices["tag_affinity"].values.tolist(),
            "transfer_gain": matrices["transfer_gain"].values.tolist()}


def _matrix_table(values: list[list[float]], tasks: list[str], scale: float, digits: int) -> list[str]:
    lines = ["| acting \\ affected | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for task, row in zip(tasks, values):
        cells = ["–" if v is None or not math.isfinite(v) else f"{scale * v:+.{digits}f}" for v in row]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: list[dict]) -> str:
    out = ["## Which tasks help which: lookahead affinity vs pair runs", "",
           "Command: `python benchmarks/relatedness.py --docs`. Each study: `manytask relate --pairs` on its config "
           "in `benchmarks/relatedness/` (one multi-task run measuring the lookahead affinity every 10 steps, every "
           "task alone, every pair), then the two groups each matrix recommends trained with the same budget, one "
           "seed (0). Δm % over the main tasks against one model per task (Maninis et al. 2019); each task is "
           "scored by the chosen group the matrix predicts serves it best.", ""]
    for result in results:
        tasks = result["tasks"]
        out += [f"### {result['title']}", ""]
        out += ["Lookahead affinity × 1000 (Fifty et al. 2021, Eq. 3; row: the task stepped on):", ""]
        out += _matrix_table(result["tag_affinity"], tasks, 1000.0, 2) + [""]
        out += ["Transfer gain, % of the affected task's metric (Standley et al. 2020; row: the partner):", ""]
        out += _matrix_table(result["transfer_gain"], tasks, 1.0, 1) + [""]
        rho = result["rank_correlation"]
        out += [f"Spearman rank correlation of the two off the diagonal: {rho:+.2f}." if rho is not None else
                "Rank correlation: undefined.", ""]
        out += ["| training | " + " | ".join(result["metric"][t] for t in tasks) + " | Δm % |",
                "|---|" + "---:|" * (len(tasks) + 1)]
        for label, values in result["rows"].items():
            out.append(f"| {label} | " + " | ".join(f"{values[t]:.4f}" for t in tasks)
                       + f" | {result['delta_m'][label]:+.2f} |")
        out.append("")
    return "\n".join(out).strip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", action="store_true", help="write the section of docs/benchmarks.md")
    parser.add_argument("--only", choices=sorted(STUDIES), action="append")
    args = parser.parse_args()
    results = []
    for name in args.only or list(STUDIES):
        result = study(name)
        atomic_write(HERE / "results" / f"relatedness_{name}.json", json.dumps(result, indent=1))
        results.append(result)
        print(markdown([result]))
    if args.docs:  # every study with results, run now or before
        saved = [HERE / "results" / f"relatedness_{name}.json" for name in STUDIES]
        every = [json.loads(path.read_text()) for path in saved if path.is_file()]
        write_section("relatedness", markdown(every), HERE.parent / "docs" / "benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
