"""Tests of read_table: CSV and Parquet by suffix, string categories, clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from safes_framework import Categorical, Integer, Schema
from safes_framework.errors import ConfigError
from safes_framework.io import check_table_path, read_table

SCHEMA = Schema(
    (Categorical("code", ("007", "12")), Integer("n", 0, 9), Categorical("y", (0, 1))),
    protected=("code",), label="y", favorable=1,
)
TABLE = pd.DataFrame({"code": ["007", "12", "007"], "n": [1, 2, 3], "y": [0, 1, 1]})


def test_csv_and_parquet_give_the_same_table(tmp_path: Path) -> None:
    TABLE.to_csv(tmp_path / "t.csv", index=False)
    TABLE.to_parquet(tmp_path / "t.parquet")
    a = read_table(tmp_path / "t.csv", schema=SCHEMA)
    b = read_table(tmp_path / "t.parquet")
    assert a["code"].tolist() == b["code"].tolist() == ["007", "12", "007"]
    assert a["n"].tolist() == b["n"].tolist() == [1, 2, 3]
    SCHEMA.validate(a)
    SCHEMA.validate(b)


def test_without_a_schema_csv_reads_numeric_looking_categories_as_numbers(
    tmp_path: Path,
) -> None:
    TABLE.to_csv(tmp_path / "t.csv", index=False)
    assert read_table(tmp_path / "t.csv")["code"].tolist() == [7, 12, 7]


def test_unknown_suffix_missing_file_and_directory_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ConfigError, match=r"unknown file type; expected \.csv"):
        read_table(tmp_path / "t.xlsx")
    with pytest.raises(ConfigError, match="does not exist"):
        read_table(tmp_path / "none.csv")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        check_table_path(tmp_path / "d.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ConfigError, match="cannot read input table"):
        read_table(tmp_path / "bad.parquet")
