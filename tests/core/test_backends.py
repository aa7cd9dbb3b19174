"""Tests of the count sources beyond memory (DuckDB, Dask) and the choice between them."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mixed_tables import mixed_schema, mixed_table

from safes_framework import backends
from safes_framework.access import InMemorySource, fetch_marginals
from safes_framework.backends.duckdb import DuckDBSource
from safes_framework.errors import DomainError, DtypeError, EmptyDataError, MissingColumnError
from safes_framework.ingest import encode_table

CLIQUES = [
    *[(c,) for c in mixed_schema().names],
    *itertools.combinations(mixed_schema().names, 2),
    ("income", "sex", "age"),
    ("age", "sex"),
    (),
]


@pytest.fixture
def table() -> pd.DataFrame:
    return mixed_table(3000, seed=4)


@pytest.fixture
def reference(table: pd.DataFrame) -> InMemorySource:
    schema = mixed_schema()
    return InMemorySource(list(encode_table(table, schema).arrays), schema.sizes)


def _inputs(table: pd.DataFrame, tmp_path: Path) -> dict[str, object]:
    import pyarrow as pa

    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet", row_group_size=1000)
    return {"csv": str(tmp_path / "t.csv"), "parquet": tmp_path / "t.parquet",
            "arrow": pa.Table.from_pandas(table), "frame": table}


@pytest.mark.parametrize("kind", ["csv", "parquet", "arrow", "frame"])
def test_duckdb_counts_equal_in_memory_counts(
    table: pd.DataFrame, reference: InMemorySource, tmp_path: Path, kind: str
) -> None:
    source = DuckDBSource(_inputs(table, tmp_path)[kind], mixed_schema())
    assert source.num_rows() == len(table)
    got = source.marginals(CLIQUES)
    for clique in CLIQUES:
        assert got[clique].dtype == np.int64
        np.testing.assert_array_equal(got[clique], reference.marginal(clique), err_msg=clique)


def test_duckdb_batch_is_one_scan_and_answers_are_cached(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    table.to_parquet(tmp_path / "t.parquet")
    source = DuckDBSource(tmp_path / "t.parquet", mixed_schema())
    assert source.scans == 1  # validation, which also counts the one-way marginals
    pairs = list(itertools.combinations(mixed_schema().names, 2))
    fetch_marginals(source, pairs)
    assert source.scans == 2
    fetch_marginals(source, pairs[:3] + [(mixed_schema().names[0],)])
    assert source.scans == 2


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_duckdb_domain_error_names_column_first_bad_value_and_row(
    table: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    table = table.copy()
    table.loc[2500, "race"] = 7
    table.loc[2900, "race"] = 9
    path = tmp_path / f"bad.{suffix}"
    table.to_csv(path, index=False) if suffix == "csv" else table.to_parquet(path)
    with pytest.raises(DomainError, match=r"'race'.*7.*row 2,501 of") as info:
        DuckDBSource(path, mixed_schema())
    assert info.value.column == "race"


def test_duckdb_missing_values_and_bins(table: pd.DataFrame, tmp_path: Path) -> None:
    table = table.astype({"hours": float})
    table.loc[10, "hours"] = np.nan
    table.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DomainError, match="'hours'.*row 11"):
        DuckDBSource(tmp_path / "t.parquet", mixed_schema())
    table.loc[10, "hours"] = 100.0  # the top edge belongs to the last bin
    table.loc[11, "hours"] = 0.0
    table.to_parquet(tmp_path / "t.parquet")
    source = DuckDBSource(tmp_path / "t.parquet", mixed_schema())
    expected = mixed_schema().encode_array(table)[:, 3]
    np.testing.assert_array_equal(source.marginal(("hours",)), np.bincount(expected, minlength=4))


def test_duckdb_schema_problems_before_any_count(table: pd.DataFrame, tmp_path: Path) -> None:
    table.drop(columns="age").to_parquet(tmp_path / "a.parquet")
    with pytest.raises(MissingColumnError, match="'age'"):
        DuckDBSource(tmp_path / "a.parquet", mixed_schema())
    table.assign(sex=1).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DtypeError, match="'sex'"):
        DuckDBSource(tmp_path / "b.parquet", mixed_schema())
    table.iloc[:0].to_parquet(tmp_path / "c.parquet")
    with pytest.raises(EmptyDataError):
        DuckDBSource(tmp_path / "c.parquet", mixed_schema())


def test_auto_keeps_small_tables_in_memory_and_counts_relations_in_place(
    table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    schema = mixed_schema()
    table.to_parquet(tmp_path / "t.parquet")
    assert backends.choose_backend(table, schema) == "memory"
    assert backends.choose_backend(tmp_path / "t.parquet", schema) == "memory"
    assert backends.choose_backend(duckdb.connect().from_df(table), schema) == "duckdb"
    monkeypatch.setattr(backends, "available_memory", lambda: 1000)
    assert backends.choose_backend(tmp_path / "t.parquet", schema) == "duckdb"
    assert backends.choose_backend(tmp_path / "t.parquet", schema, "memory") == "memory"


@pytest.mark.slow
def test_dask_counts_on_a_local_cluster_equal_in_memory_counts(
    table: pd.DataFrame, reference: InMemorySource
) -> None:
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    from safes_framework.backends.dask import DaskSource

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster, Client(
        cluster
    ):
        frame = dd.from_pandas(table, npartitions=5)
        source = DaskSource(frame, mixed_schema(), fan_in=2)
        assert backends.choose_backend(frame, mixed_schema()) == "dask"
        got = source.marginals(CLIQUES)
        assert source.passes == 2
        for clique in CLIQUES:
            np.testing.assert_array_equal(got[clique], reference.marginal(clique))
        bad = table.copy()
        bad.loc[2999, "age"] = 5
        with pytest.raises(DomainError, match="'age'.*5"):
            DaskSource(dd.from_pandas(bad, npartitions=5), mixed_schema())


def test_duckdb_splits_batches_wider_than_grouping_allows(
    table: pd.DataFrame, reference: InMemorySource, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import safes_framework.backends.duckdb as duck

    monkeypatch.setattr(duck, "MAX_GROUPING_COLUMNS", 2)
    source = DuckDBSource(_inputs(table, tmp_path)["parquet"], mixed_schema())
    assert source.scans == 3  # five one-way marginals, two columns a query
    got = source.marginals(CLIQUES)
    for clique in CLIQUES:
        np.testing.assert_array_equal(got[clique], reference.marginal(clique))
