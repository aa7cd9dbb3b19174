"""Write large tables for the scale benchmark: adult-full rows resampled to n rows, as Parquet.

Rows are drawn with replacement from the bundled `adult-full` (48,842 rows) by a seeded
generator, in row groups of 2^20 rows, so a table of any size takes a few MB of memory to
write and the same command always writes the same file. Columns keep adult-full's values
(int64), as a data steward's export would hold them. The schema goes beside the table as JSON.

Usage:
    python benchmarks/make_large_tables.py --rows 10000000 --out /data/adult-1e7.parquet
    python benchmarks/make_large_tables.py --rows 1000000 --out /data/adult-1e6.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from safes_framework import datasets

ROW_GROUP = 1 << 20


def write_table(rows: int, out: Path, seed: int = 0) -> None:
    """Write `rows` resampled adult-full rows to `out` (.parquet or .csv) and its schema."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    df, schema = datasets.load("adult-full")
    base = {c: df[c].to_numpy(dtype=np.int64) for c in schema.names}
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrow_schema = pa.schema([(c, pa.int64()) for c in schema.names])
    parquet = out.suffix == ".parquet"
    writer = (pq.ParquetWriter(out, arrow_schema) if parquet
              else pacsv.CSVWriter(out, arrow_schema))
    try:
        done = 0
        while done < rows:
            k = min(ROW_GROUP, rows - done)
            idx = rng.integers(0, len(df), size=k)
            writer.write_table(pa.table({c: base[c][idx] for c in schema.names},
                                        schema=arrow_schema))
            done += k
    finally:
        writer.close()
    out.with_name(out.name.split(".")[0] + ".schema.json").write_text(schema.to_json(indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help=".parquet or .csv file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    write_table(args.rows, args.out, args.seed)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({args.rows:,} rows, {size / 2**20:.1f} MiB) in "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
