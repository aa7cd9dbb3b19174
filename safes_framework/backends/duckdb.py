"""A `CountSource` on DuckDB: each batch of marginals is one GROUP BY GROUPING SETS scan.

DuckDB (PyPI `duckdb`) is an embedded database: no server, it scans Parquet and CSV files
in place, in parallel and out of core, and one query with GROUPING SETS computes many
group-by counts in a single pass over the data. The table is never loaded: its values are
encoded to schema codes inside the query (SQL `CASE` expressions built from the public
schema), and only the exact counts (BIGINT, as int64) come back to Python.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..access import CachedCounts, Clique
from ..errors import (
    ConfigError,
    DataError,
    DomainError,
    DtypeError,
    EmptyDataError,
    MissingColumnError,
)
from ..ingest import file_format
from ..schema import Categorical, Column, Continuous, Integer, Schema

logger = logging.getLogger(__name__)

#: Default memory limit of the DuckDB connection this source opens (it spills beyond it).
DEFAULT_MEMORY_LIMIT = "2GB"

#: Columns one GROUPING SETS query may involve (DuckDB's GROUPING() is a 64-bit mask).
MAX_GROUPING_COLUMNS = 60

_INPUT = "safes_input"
_CODES = "safes_codes"
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")
_CODE_TYPES = ((256, "UTINYINT"), (65536, "USMALLINT"), (2**32, "UINTEGER"))


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise ConfigError(
            f"the duckdb backend needs duckdb (pip install 'safes-framework[scale]'): {exc}"
        ) from None
    return duckdb


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _code_type(size: int) -> str:
    return next((t for limit, t in _CODE_TYPES if size <= limit), "UBIGINT")


def _batches(cliques: Sequence[Clique], limit: int) -> list[list[Clique]]:
    """The cliques in consecutive batches whose columns together number at most `limit`."""
    out: list[list[Clique]] = [[]]
    columns: set[str] = set()
    for c in cliques:
        if out[-1] and len(columns | set(c)) > limit:
            out.append([])
            columns = set()
        out[-1].append(c)
        columns |= set(c)
    return out


def code_expression(col: Column, sql_type: str, *, text: bool) -> str:
    """SQL for the code of `col` (NULL when the value is outside the domain or missing).

    Args:
        col: the schema column.
        sql_type: DuckDB type of the input column.
        text: the input holds text (a CSV read as VARCHAR): numbers are parsed with TRY_CAST.

    Raises:
        DtypeError: a typed input column cannot hold the column's values.
    """
    x = _quote(col.name)
    base = sql_type.split("(")[0].upper()
    numeric_input = base in _NUMERIC
    if isinstance(col, Categorical) and all(isinstance(c, str) for c in col.categories):
        if not text and base != "VARCHAR":
            raise DtypeError(
                f"column {col.name!r}: declared categories are strings, the input column is "
                f"{sql_type} (value type vs declared categories; check dtypes)",
                column=col.name,
            )
        whens = " ".join(f"WHEN {_literal(c)} THEN {i}" for i, c in enumerate(col.categories))
        return f"CAST(CASE {x} {whens} END AS {_code_type(col.size)})"
    if isinstance(col, Categorical) and all(isinstance(c, bool) for c in col.categories):
        v = f"TRY_CAST({x} AS BOOLEAN)" if text or base != "BOOLEAN" else x
        whens = " ".join(f"WHEN {_literal(c)} THEN {i}" for i, c in enumerate(col.categories))
        return f"CAST(CASE {v} {whens} END AS {_code_type(col.size)})"
    if not text and not numeric_input and base != "BOOLEAN":
        raise DtypeError(
            f"column {col.name!r}: the input column is {sql_type}, which cannot hold numbers",
            column=col.name,
        )
    v = f"TRY_CAST({x} AS DOUBLE)"
    ct = _code_type(col.size)
    if isinstance(col, Categorical):
        cats = list(col.categories)
        ints = [c for c in cats if isinstance(c, int) and not isinstance(c, bool)]
        if len(ints) == len(cats) and ints == list(range(ints[0], ints[0] + len(ints))):
            lo, hi = cats[0], cats[-1]
            return (f"CAST(CASE WHEN {v} = floor({v}) AND {v} BETWEEN {lo} AND {hi} "
                    f"THEN {v} - {lo} END AS {ct})")
        whens = " ".join(f"WHEN {_literal(float(c))} THEN {i}" for i, c in enumerate(cats))
        return f"CAST(CASE {v} {whens} END AS {ct})"
    if isinstance(col, Integer):
        return (f"CAST(CASE WHEN {v} = floor({v}) AND {v} BETWEEN {col.low} AND {col.high} "
                f"THEN {v} - {col.low} END AS {ct})")
    assert isinstance(col, Continuous)
    e = col.edges
    whens = " ".join(f"WHEN {v} < {_literal(e[i + 1])} THEN {i}" for i in range(col.size - 1))
    return (f"CAST(CASE WHEN {v} IS NULL OR isnan({v}) OR {v} < {_literal(e[0])} "
            f"OR {v} > {_literal(e[-1])} THEN NULL {whens} ELSE {col.size - 1} END AS {ct})")


class DuckDBSource(CachedCounts):
    """Exact marginal counts of a table that DuckDB scans in place.

    The table's values are checked against the schema when the source is built (one scan,
    which also counts the one-way marginals), so a domain error is raised before any DP
    primitive runs: `DomainError` naming the column, the first bad value in file order and,
    for Parquet, its row. `marginals` answers a batch of cliques with one
    `GROUP BY GROUPING SETS` query; every answer is cached.

    Args:
        data: a CSV or Parquet path, a DuckDB relation, a pyarrow Table, or a pandas
            DataFrame (DuckDB scans it where it is).
        schema: the public schema (domains come from here, never from the data).
        memory_limit: DuckDB's memory limit, for a connection this source opens (a relation
            keeps its own connection's settings).
        threads: DuckDB threads (default: DuckDB's, all cores).
        connection: an existing DuckDB connection to use for paths and Arrow tables.
    """

    def __init__(
        self,
        data: Any,
        schema: Schema,
        *,
        memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
        threads: int | None = None,
        connection: Any = None,
    ) -> None:
        duckdb = _duckdb()
        self._duckdb = duckdb
        self.schema = schema
        self._sizes = dict(schema.sizes)
        self._alias = {c.name: f"c{j}" for j, c in enumerate(schema.columns)}
        self._cache: dict[Clique, np.ndarray] = {}
        self._scans = 0
        text = False
        self._row_numbers = False
        if isinstance(data, (str, os.PathLike)):
            path = os.fspath(data)
            fmt = file_format(path)
            if not os.path.exists(path):
                raise ConfigError(f"cannot read {path!r}: no such file")
            self._con = connection or duckdb.connect(config=self._config(memory_limit, threads))
            self._con.execute("SET preserve_insertion_order = true")
            if fmt == "parquet":
                src = f"read_parquet({_literal(path)}, file_row_number = true)"
                self._row_numbers = True
            else:
                src = f"read_csv({_literal(path)}, header = true, all_varchar = true)"
                text = True
            self.description = repr(path)
            base = self._run(lambda: self._con.sql(f"SELECT * FROM {src}"))
        elif type(data).__module__.startswith("pyarrow"):
            self._con = connection or duckdb.connect(config=self._config(memory_limit, threads))
            base = self._con.from_arrow(data)
            self.description = "the Arrow table"
        elif isinstance(data, pd.DataFrame):
            self._con = connection or duckdb.connect(config=self._config(memory_limit, threads))
            base = self._con.from_df(data)
            self.description = "the DataFrame"
        elif hasattr(data, "query") and hasattr(data, "types"):
            base = data
            self._con = None
            self.description = "the DuckDB relation"
        else:
            raise ConfigError(
                "the duckdb backend reads a CSV or Parquet path, a DuckDB relation or a pyarrow "
                f"Table; got {type(data).__name__}"
            )
        self._base = base
        types = dict(zip(base.columns, [str(t) for t in base.types], strict=True))
        missing = [n for n in schema.names if n not in types]
        if missing:
            raise MissingColumnError(
                f"column {missing[0]!r} is declared in the schema but missing from "
                f"{self.description} (it has {list(base.columns)})",
                column=missing[0],
            )
        exprs = [
            f"{code_expression(c, types[c.name], text=text)} AS {self._alias[c.name]}"
            for c in schema.columns
        ]
        self._select = ", ".join(exprs)
        self._rows = self._validate()

    @staticmethod
    def _config(memory_limit: str | None, threads: int | None) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        if threads is not None:
            config["threads"] = int(threads)
        return config

    def _run(self, thunk: Any) -> Any:
        try:
            return thunk()
        except self._duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"DuckDB could not read {self.description}: {first}") from None

    def _query(self, body: str) -> dict[str, np.ndarray]:
        """Run `body`, in which `safes_codes` is the table of codes, and fetch it as numpy."""
        sql = f"WITH {_CODES} AS (SELECT {self._select} FROM {_INPUT}) {body}"
        self._scans += 1
        return self._run(lambda: self._base.query(_INPUT, sql).fetchnumpy())

    @property
    def scans(self) -> int:
        """How many queries this source has run over the table (for benchmarks and tests)."""
        return self._scans

    # -- validation ----------------------------------------------------------------------------

    def _validate(self) -> int:
        """Count the rows and the one-way marginals in one scan; raise on a bad value."""
        names = list(self.schema.names)
        counts: dict[Clique, np.ndarray] = {}
        nulls: dict[str, int] = {}
        total = 0
        for batch in _batches([(n,) for n in names], MAX_GROUPING_COLUMNS):
            part, total, part_nulls = self._grouping_sets(batch, allow_null=True)
            counts.update(part)
            nulls.update(part_nulls)
        if total == 0:
            raise EmptyDataError(f"{self.description} has no rows")
        bad = [n for n in names if nulls.get(n, 0) > 0]
        if bad:
            self._raise_bad(bad)
        self._store(counts)
        return total

    def _raise_bad(self, bad: Sequence[str]) -> None:
        conditions = " OR ".join(f"{self._alias[n]} IS NULL" for n in bad)
        raw = ", ".join(_quote(n) for n in bad)
        codes = ", ".join(self._alias[n] for n in bad)
        # Parquet gives each row's position in the file; elsewhere (CSV, relations) the
        # position is numbered in scan order, which DuckDB keeps (preserve_insertion_order).
        number = "file_row_number" if self._row_numbers else "row_number() OVER () - 1"
        sql = (f"SELECT {raw}, {codes}, safes_row FROM (SELECT *, {self._select}, "
               f"{number} AS safes_row FROM {_INPUT}) WHERE {conditions} "
               f"ORDER BY safes_row LIMIT 1")
        self._scans += 1
        row = self._run(lambda: self._base.query(_INPUT, sql).fetchall())[0]
        k = len(bad)
        col = next(bad[j] for j in range(k) if row[k + j] is None)
        value = row[list(bad).index(col)]
        where = f" (row {int(row[-1]) + 1:,} of {self.description})"
        column = self.schema[col]
        if isinstance(column, Categorical):
            what = f"is not one of the declared categories {list(column.categories)!r}"
        elif isinstance(column, Integer):
            what = f"is not an integer within the declared bounds [{column.low}, {column.high}]"
        else:
            assert isinstance(column, Continuous)
            what = (f"is outside the declared bin range [{column.edges[0]}, "
                    f"{column.edges[-1]}]")
        raise DomainError(f"column {col!r}: value {value!r} {what}{where}", column=col,
                          value=value)

    # -- counting ------------------------------------------------------------------------------

    def _grouping_sets(
        self, cliques: Sequence[Clique], *, allow_null: bool = False
    ) -> tuple[dict[Clique, np.ndarray], int, dict[str, int]]:
        """Counts of every clique in one GROUPING SETS query, with the row count.

        Returns the counts (flat in C order of each clique's own column order), the number of
        rows, and with `allow_null` the number of rows whose code is NULL (a value outside
        the domain) for each one-column clique.
        """
        sets: dict[frozenset[str], None] = dict.fromkeys(frozenset(c) for c in cliques if c)
        involved = [n for n in self.schema.names if any(n in s for s in sets)]
        if not involved:
            result = self._query(f"SELECT count(*) AS n FROM {_CODES}")
            rows = int(result["n"][0])
            return {(): np.array([rows], dtype=np.int64)}, rows, {}
        cols = [self._alias[n] for n in involved]
        spec = ", ".join(
            "(" + ", ".join(self._alias[a] for a in involved if a in s) + ")" for s in sets
        )
        sql = (f"SELECT {', '.join(cols)}, GROUPING({', '.join(cols)}) AS g, count(*) AS n "
               f"FROM {_CODES} GROUP BY GROUPING SETS ({spec}, ())")
        result = self._query(sql)
        g = np.asarray(result["g"], dtype=np.int64)
        n = np.asarray(result["n"], dtype=np.int64)
        width = len(involved)
        total = int(n[g == (1 << width) - 1].sum())
        out: dict[Clique, np.ndarray] = {}
        nulls_of: dict[str, int] = {}
        for clique in dict.fromkeys(tuple(c) for c in cliques):
            if not clique:
                out[clique] = np.array([total], dtype=np.int64)
                continue
            # GROUPING() sets bit (width - 1 - j) for every involved column j not grouped.
            mask = sum(1 << (width - 1 - j) for j, a in enumerate(involved) if a not in clique)
            rows = g == mask
            values = [result[self._alias[a]][rows] for a in clique]
            null = np.zeros(int(rows.sum()), dtype=bool)
            for v in values:
                null |= np.ma.getmaskarray(v)
            if allow_null and len(clique) == 1:
                nulls_of[clique[0]] = int(n[rows][null].sum())
            shape = tuple(self._sizes[a] for a in clique)
            keep = ~null
            flat = np.ravel_multi_index(
                tuple(np.asarray(np.ma.getdata(v))[keep].astype(np.int64) for v in values), shape
            )
            counts = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
            np.add.at(counts, flat, n[rows][keep])
            out[clique] = counts
        return out, total, nulls_of

    def _count_missing(self, cliques: Sequence[Clique]) -> dict[Clique, np.ndarray]:
        logger.info("duckdb: counting %d marginals in one scan of %s", len(cliques),
                    self.description)
        out: dict[Clique, np.ndarray] = {}
        for batch in _batches(cliques, MAX_GROUPING_COLUMNS):
            found, _, _ = self._grouping_sets(batch)
            out.update((c, found[c]) for c in batch)
        return out

    def num_rows(self) -> int:
        return self._rows

    def rows(self) -> np.ndarray:
        """Every row's codes as an (n, d) matrix (for mechanisms that declared their events)."""
        cols = ", ".join(self._alias[n] for n in self.schema.names)
        result = self._query(f"SELECT {cols} FROM {_CODES}")
        out = np.empty((self._rows, len(self.schema.names)), dtype=np.int64)
        for j, n in enumerate(self.schema.names):
            out[:, j] = np.asarray(result[self._alias[n]])
        out.setflags(write=False)
        return out
