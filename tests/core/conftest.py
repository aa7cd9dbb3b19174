"""Fixtures for core tests: the toy public schema and a table for it."""

from __future__ import annotations

import pandas as pd
import pytest

from safes_framework import Schema
from safes_framework.testing import toy_schema, toy_table


@pytest.fixture
def schema() -> Schema:
    return toy_schema()


@pytest.fixture
def table() -> pd.DataFrame:
    return toy_table(2000, seed=1)
