"""Write ``examples/data/school.csv`` (one row per student) for ``examples/linear_school.yaml``.

Usage: ``python examples/make_school_csv.py [--root DATA_ROOT]`` (default root:
``$MANYTASK_DATA``, else ``./data``, as for every loader).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from manytask.data.datasets._school import load_school

COLUMNS = [
    "year_1985",
    "year_1986",
    "year_1987",
    "pct_free_meals",
    "pct_vr1_band",
    "male",
    "female",
    "vr1",
    "vr2",
    "vr3",
    "eth_eswi",
    "eth_african",
    "eth_arab",
    "eth_bangladeshi",
    "eth_caribbean",
    "eth_greek",
    "eth_indian",
    "eth_pakistani",
    "eth_se_asian",
    "eth_turkish",
    "eth_other",
    "school_mixed",
    "school_male",
    "school_female",
    "denom_maintained",
    "denom_church_of_england",
    "denom_roman_catholic",
]


def main() -> None:
    """Build the CSV from the Argyriou copy of School (all 15,362 students)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "school.csv")
    args = parser.parse_args()
    s = load_school(args.root, "argyriou", 1)
    X = np.vstack([s.X_train, s.X_test])[:, : len(COLUMNS)]  # drop the bias column
    y = np.r_[s.y_train, s.y_test]
    task = np.r_[s.task_train, s.task_test]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(",".join(["school", "score", *COLUMNS]) + "\n")
        for t, target, row in zip(task, y, X, strict=True):
            fh.write(f"school_{t + 1:03d},{target:g}," + ",".join(f"{v:g}" for v in row) + "\n")
    print(f"wrote {len(y)} rows to {args.out}")


if __name__ == "__main__":
    main()
