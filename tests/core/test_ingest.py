"""Tests of chunked input: CSV, Parquet, Arrow and DuckDB tables encoded to compact codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mixed_tables import mixed_schema, mixed_table

from safes_framework.access import InMemorySource
from safes_framework.errors import ConfigError, DomainError, EmptyDataError, MissingColumnError
from safes_framework.ingest import code_dtype, encode_table, file_format


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    df = mixed_table(2500)
    paths = {"csv": tmp_path / "t.csv", "parquet": tmp_path / "t.parquet",
             "gz": tmp_path / "t.csv.gz"}
    df.to_csv(paths["csv"], index=False)
    df.to_csv(paths["gz"], index=False)
    df.to_parquet(paths["parquet"], row_group_size=700)
    return paths


def test_code_dtype_is_the_smallest_that_holds_the_domain() -> None:
    assert code_dtype(1) == np.uint8 and code_dtype(256) == np.uint8
    assert code_dtype(257) == np.uint16 and code_dtype(65_537) == np.uint32


def test_file_format_from_suffix_and_unknown_suffix_is_a_config_error() -> None:
    assert file_format("a.csv") == "csv" and file_format("a.CSV.gz") == "csv"
    assert file_format("a.parquet") == "parquet"
    with pytest.raises(ConfigError, match="cannot tell the format"):
        file_format("a.xlsx")


@pytest.mark.parametrize("kind", ["csv", "parquet", "gz"])
def test_files_read_in_chunks_give_the_codes_of_the_whole_table(
    files: dict[str, Path], kind: str
) -> None:
    schema = mixed_schema()
    expected = schema.encode_array(mixed_table(2500))
    codes = encode_table(files[kind], schema, chunk_rows=300)
    assert codes.rows == 2500
    assert all(a.dtype == np.uint8 for a in codes.arrays)
    np.testing.assert_array_equal(codes.matrix(), expected)


def test_arrow_table_and_duckdb_relation_are_read_like_a_frame() -> None:
    import duckdb
    import pyarrow as pa

    schema, df = mixed_schema(), mixed_table(900)
    expected = schema.encode_array(df)
    table = pa.Table.from_pandas(df)
    np.testing.assert_array_equal(encode_table(table, schema, chunk_rows=100).matrix(), expected)
    con = duckdb.connect()
    relation = con.from_df(df)
    np.testing.assert_array_equal(
        encode_table(relation, schema, chunk_rows=100).matrix(), expected
    )


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_domain_error_in_a_late_chunk_names_column_value_and_row(
    tmp_path: Path, kind: str
) -> None:
    df = mixed_table(3000)
    df.loc[2718, "age"] = 130
    path = tmp_path / f"bad.{kind}"
    df.to_csv(path, index=False) if kind == "csv" else df.to_parquet(path)
    with pytest.raises(DomainError, match=r"'age'.*130.*row 2,719 of") as info:
        encode_table(path, mixed_schema(), chunk_rows=500)
    assert info.value.column == "age" and info.value.value == 130


def test_string_category_outside_the_domain_in_a_late_chunk(tmp_path: Path) -> None:
    df = mixed_table(1200)
    df.loc[1100, "sex"] = "X"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DomainError, match=r"'sex'.*'X'.*row 1,101"):
        encode_table(path, mixed_schema(), chunk_rows=256)


def test_missing_column_is_found_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    mixed_table(10).drop(columns="hours").to_parquet(path)
    with pytest.raises(MissingColumnError, match="'hours'"):
        encode_table(path, mixed_schema())


def test_empty_file_is_an_empty_data_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    mixed_table(0).to_csv(path, index=False)
    with pytest.raises(EmptyDataError):
        encode_table(path, mixed_schema())


def test_unreadable_input_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="cannot read"):
        encode_table(path, mixed_schema())
    with pytest.raises(ConfigError, match="data must be"):
        encode_table(42, mixed_schema())


def test_compact_columns_count_like_an_int64_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    import safes_framework.access as access

    monkeypatch.setattr(access, "COUNT_BLOCK_ROWS", 97)  # many blocks, a ragged last one
    schema, df = mixed_schema(), mixed_table(1000)
    codes = encode_table(df, schema)
    compact = InMemorySource(list(codes.arrays), schema.sizes)
    wide = InMemorySource(schema.encode_array(df), schema.sizes)
    cliques = [("sex",), ("race", "age"), ("age", "race"), ("sex", "hours", "income"), ()]
    for clique in cliques:
        np.testing.assert_array_equal(compact.marginal(clique), wide.marginal(clique))
        assert compact.marginal(clique).dtype == np.int64
    np.testing.assert_array_equal(compact.rows(), wide.rows())
