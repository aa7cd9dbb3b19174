"""Write docs/examples/loans.csv: a small synthetic loan table for docs/data.md (no real people).

Every value is drawn from the distributions below with a fixed seed, so the file is the same
on every machine (tests/core/test_example_table.py checks it). Nothing is derived from any real
dataset: the columns, their relations and the group disparity are invented for the example.

    python scripts/make_example_table.py            # rewrites docs/examples/loans.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

ROWS = 2000
SEED = 20241114
OUT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "loans.csv"

GROUPS = ("A", "B", "C")
EDUCATION = ("none", "school", "college", "degree")
JOBS = ("clerk", "driver", "engineer", "nurse", "teacher")


def make_table(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """The example table: group, age, education, job, income, approved."""
    rng = np.random.default_rng(seed)
    group = rng.choice(len(GROUPS), size=rows, p=[0.5, 0.3, 0.2])
    age = np.clip(np.round(rng.normal(42, 12, rows)), 18, 80).astype(np.int64)
    edu = np.clip(rng.binomial(3, 0.35 + 0.1 * (group == 0)), 0, 3)
    job = rng.choice(len(JOBS), size=rows, p=[0.3, 0.2, 0.15, 0.2, 0.15])
    job = np.where((edu == 3) & (rng.random(rows) < 0.4), 2, job)  # graduates: more engineers
    base = 18_000 + 9_000 * edu + 600 * (age - 18) + 12_000 * (job == 2)
    income = np.clip(base * rng.lognormal(0.0, 0.35, rows), 0, 199_999).round(2)
    score = -2.2 + 0.8 * edu + income / 40_000 - 0.7 * (group == 1) - 1.2 * (group == 2)
    approved = rng.random(rows) < 1 / (1 + np.exp(-score))
    return pd.DataFrame(
        {
            "group": np.asarray(GROUPS)[group],
            "age": age,
            "education": np.asarray(EDUCATION)[edu],
            "job": np.asarray(JOBS)[job],
            "income": income,
            "approved": np.where(approved, "yes", "no"),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    make_table().to_csv(args.out, index=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
