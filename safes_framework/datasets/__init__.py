"""Bundled datasets (Adult, COMPAS, private-pgm's Adult) with the SAFES paper's schemas."""

from __future__ import annotations

import functools
import gzip
import io
from importlib import resources

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..schema import Schema
from ._catalog import CATALOG, DatasetInfo

__all__ = ["DatasetInfo", "info", "load", "names", "schema", "train_test_split"]

#: Test share and seed of the SAFES paper's evaluation split.
PAPER_TEST_SIZE = 0.25
PAPER_RANDOM_STATE = 50


def names() -> tuple[str, ...]:
    """Names of the bundled datasets, in catalogue order."""
    return tuple(CATALOG)


def _resolve(name: object) -> str:
    """The catalogue key of `name`; ConfigError listing the available names otherwise.

    Case and surrounding spaces are ignored, and `_` is accepted for `-` ("adult_full").
    """
    if isinstance(name, str):
        key = name.strip().lower().replace("_", "-")
        if key in CATALOG:
            return key
    raise ConfigError(f"unknown dataset {name!r}; available datasets: {', '.join(names())}")


def info(name: str) -> DatasetInfo:
    """Description, source, terms and row count of a bundled dataset.

    Raises:
        ConfigError: `name` is not a bundled dataset (the message lists the available ones).
    """
    return CATALOG[_resolve(name)][0]


def schema(name: str) -> Schema:
    """The public schema of a bundled dataset, without reading its rows.

    A fresh `Schema` is built on every call, so callers may not affect each other.

    Raises:
        ConfigError: `name` is not a bundled dataset (the message lists the available ones).
    """
    return CATALOG[_resolve(name)][1]()


@functools.cache
def _read(key: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Header and read-only int64 values of the shipped file of dataset `key` (cached)."""
    meta, make_schema = CATALOG[key]
    try:
        data_dir = resources.files(__package__).joinpath("data")
        raw = data_dir.joinpath(meta.filename).read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"dataset {key!r}: the bundled file {meta.filename!r} is missing from the "
            "installation; reinstall safes-framework"
        ) from None
    df = pd.read_csv(io.BytesIO(gzip.decompress(raw)), dtype=np.int64, engine="c")
    expected = make_schema().names
    if tuple(df.columns) != expected or len(df) != meta.rows:
        raise DataError(
            f"dataset {key!r}: the bundled file {meta.filename!r} has columns "
            f"{list(df.columns)} and {len(df)} rows; expected {list(expected)} and "
            f"{meta.rows} rows; reinstall safes-framework"
        )
    values = df.to_numpy(dtype=np.int64, copy=True)
    values.flags.writeable = False
    return expected, values


def load(name: str) -> tuple[pd.DataFrame, Schema]:
    """Load a bundled dataset and its schema; nothing is downloaded.

    Args:
        name: one of `names()`: "adult", "compas" or "adult-full".

    Returns:
        The table (a new DataFrame with int64 columns in schema order and a RangeIndex) and
        its public schema. The values are the integers documented in the schema (for
        `adult`'s age-decade, 0, 10, ..., 70; for every other column, the code itself).

    Raises:
        ConfigError: `name` is not a bundled dataset (the message lists the available ones).
        DataError: the bundled file is missing or damaged.
    """
    key = _resolve(name)
    columns, values = _read(key)
    df = pd.DataFrame(values.copy(), columns=list(columns))
    return df, schema(key)


def train_test_split(
    data: str | pd.DataFrame,
    *,
    test_size: float = PAPER_TEST_SIZE,
    random_state: int = PAPER_RANDOM_STATE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The SAFES paper's evaluation split: 75 % train, 25 % test, seed 50.

    This is exactly `sklearn.model_selection.train_test_split(df, test_size=0.25,
    random_state=50)` (the same rows as the paper's `train_test_split(X, y,
    random_state=50)`), followed by a reset of both indices. On `adult` it gives
    36,631 / 12,211 rows.

    Args:
        data: a bundled dataset name, or a DataFrame to split.
        test_size: share (float in (0, 1)) or number (int) of test rows; the paper uses 0.25.
        random_state: seed of the shuffle; the paper uses 50.

    Returns:
        (train, test), each with a fresh RangeIndex.

    Raises:
        ConfigError: unknown dataset name, or `data` is neither a name nor a DataFrame.
        DataError: the DataFrame has fewer than two rows.
    """
    from sklearn.model_selection import train_test_split as _sk_split

    if isinstance(data, pd.DataFrame):
        df = data
    elif isinstance(data, str):
        df = load(data)[0]
    else:
        raise ConfigError(
            f"train_test_split expects a dataset name or a pandas DataFrame, got "
            f"{type(data).__name__}; available datasets: {', '.join(names())}"
        )
    if len(df) < 2:
        raise DataError(f"cannot split a table of {len(df)} row(s) into train and test")
    try:
        train, test = _sk_split(df, test_size=test_size, random_state=random_state)
    except ValueError as exc:
        raise ConfigError(f"train_test_split: {exc}") from None
    return train.reset_index(drop=True), test.reset_index(drop=True)
