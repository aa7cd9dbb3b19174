"""A small table with every kind of column (string and integer categories, bounded integers,
binned reals) for tests of reading, encoding and counting."""

from __future__ import annotations

import numpy as np
import pandas as pd

from safes_framework import Schema
from safes_framework.schema import Categorical, Continuous, Integer


def mixed_schema() -> Schema:
    return Schema(
        columns=(
            Categorical("sex", ("F", "M")),
            Categorical("race", (0, 1, 2)),
            Integer("age", 17, 90),
            Continuous("hours", (0.0, 20.0, 40.0, 60.0, 100.0)),
            Categorical("income", (0, 1)),
        ),
        protected=("sex", "race"),
        label="income",
        favorable=1,
        privileged={"sex": ("M",), "race": (0,)},
    )


def mixed_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "sex": rng.choice(["F", "M"], n),
        "race": rng.integers(0, 3, n),
        "age": rng.integers(17, 91, n),
        "hours": np.round(rng.uniform(0, 100, n), 1),
        "income": rng.integers(0, 2, n),
    })
