"""Fixtures of the metric tests: a small schema with a 3-valued protected attribute, and tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safes_framework import Categorical, Integer, Schema


def make_schema() -> Schema:
    """sex (2 values, privileged 1), region (3 values, privileged 0 and 1), age, label y (fav 1)."""
    return Schema(
        columns=(
            Categorical("sex", (0, 1)),
            Categorical("region", ("north", "south", "east")),
            Integer("age", 0, 4),
            Categorical("y", (0, 1)),
        ),
        protected=("sex", "region"),
        label="y",
        favorable=1,
        privileged={"sex": (1,), "region": ("north", "south")},
    )


def make_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    age = rng.integers(0, 5, n)
    logit = -1.0 + 1.2 * sex + 0.8 * (region != "east") + 0.4 * age
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"sex": sex, "region": region, "age": age, "y": y})


@pytest.fixture
def schema() -> Schema:
    return make_schema()


@pytest.fixture
def train() -> pd.DataFrame:
    return make_table(3000, seed=1)


@pytest.fixture
def test_table() -> pd.DataFrame:
    return make_table(1500, seed=2)


@pytest.fixture
def release() -> pd.DataFrame:
    return make_table(2500, seed=3)
