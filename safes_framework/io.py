"""Reading a table from a file: CSV or Parquet, chosen by the file's suffix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .errors import ConfigError

if TYPE_CHECKING:
    from .schema import Schema

#: Suffixes `read_table` reads, and the reader each one takes.
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | os.PathLike[str], *, schema: Schema | None = None) -> pd.DataFrame:
    """The table in `path`: CSV (`.csv`, `.csv.gz`) or Parquet (`.parquet`, `.pq`).

    With a `schema`, CSV columns it declares categorical with string categories are read as
    strings (so that a category such as "007" is not read as the number 7); Parquet keeps
    the types it stores. A CSV header that names a column twice is refused (pandas would
    silently rename the second one `name.1`).

    Raises:
        ConfigError: unknown suffix, missing or unreadable file, or no Parquet engine.
        DataError: a column name appears twice in the header.
    """
    from .schema import check_unique_columns

    path = check_table_path(path)
    name = path.name.lower()
    try:
        if name.endswith(CSV_SUFFIXES):
            check_unique_columns(csv_header(path), source=f"the header of {path}")
            dtype = None
            if schema is not None:
                from .schema import Categorical

                dtype = {
                    c.name: str
                    for c in schema.columns
                    if isinstance(c, Categorical) and any(isinstance(v, str) for v in c.categories)
                }
            return pd.read_csv(path, dtype=dtype)
        if name.endswith(PARQUET_SUFFIXES):
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise ConfigError(
                    f"reading {str(path)!r} needs a Parquet engine: pip install "
                    "'safes-framework[parquet]' (pyarrow)"
                ) from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read input table {str(path)!r}: {exc}") from None
    raise AssertionError("unreachable: check_table_path accepts known suffixes only")


def csv_header(path: Path) -> list[str]:
    """The raw column names of a CSV file (gzip-compressed or not), as written."""
    import csv
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as fh:  # type: ignore[operator]
        return next(csv.reader(fh), [])


def check_table_path(path: str | os.PathLike[str]) -> Path:
    """`path` as a `Path` if it is a file `read_table` can read, without opening it.

    Raises:
        ConfigError: it does not exist, is a directory, or has an unknown suffix.
    """
    path = Path(path)
    if not path.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        raise ConfigError(
            f"input table {str(path)!r}: unknown file type; expected "
            f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
        )
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"input table {str(path)!r} {what}")
    return path
