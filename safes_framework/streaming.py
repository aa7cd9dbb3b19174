"""Streamed releases: sample, decode and write the synthetic table in chunks of rows.

Memory is then bounded by the fitted model and one chunk, not by the number of released rows.
The release file is written in a temporary directory and moved into place with the other two
files (`write_streamed_release` writes into a directory it is given, `save_directory` does the
temporary directory and the move), so an error never leaves a half-written release.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .base import Synthesizer
from .errors import ConfigError, DataError, SafesError
from .release import PrivacyReport, RunInfo, _jsonable
from .schema import Schema

#: Released rows sampled, decoded and written per chunk.
DEFAULT_CHUNK_ROWS = 1 << 20

#: Release table formats and their file names.
OUT_FORMATS = {"csv": "release.csv", "parquet": "release.parquet"}


def release_file(fmt: str) -> str:
    """The release table's file name for output format `fmt` ("csv" or "parquet")."""
    if fmt not in OUT_FORMATS:
        raise ConfigError(f"output format must be one of {sorted(OUT_FORMATS)}, got {fmt!r}")
    return OUT_FORMATS[fmt]


def sample_chunks(
    synthesizer: Synthesizer,
    schema: Schema,
    rows: int,
    rng: np.random.Generator,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    name: str = "",
) -> Iterator[pd.DataFrame]:
    """`rows` synthetic records in chunks of `chunk_rows`, decoded to the schema's labels.

    Each chunk is `synthesizer.sample(k, rng)` with the same generator, so a release of at
    most `chunk_rows` rows is the one `SafesChain.run` draws with the same seed.
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    done = 0
    while done < rows:
        k = min(chunk_rows, rows - done)
        codes = synthesizer.sample(k, rng)
        try:
            codes = schema.check_codes(codes)
        except DataError as exc:
            raise SafesError(
                f"synthesizer {name!r} returned codes outside the schema: {exc}"
            ) from exc
        if codes.shape[0] != k:
            raise SafesError(f"synthesizer {name!r} returned {codes.shape[0]} rows, {k} were "
                             "asked for")
        # Binned values are drawn inside their bins, continuing the sampling stream.
        yield schema.decode(codes, rng)
        done += k


def write_table(path: Path, chunks: Iterable[pd.DataFrame], fmt: str) -> int:
    """Write the chunks one after another into one CSV or Parquet file; returns the rows.

    CSV is written as `DataFrame.to_csv(index=False)` writes the whole table (one header).
    """
    release_file(fmt)
    rows = 0
    if fmt == "csv":
        with open(path, "w", newline="") as fh:
            for k, chunk in enumerate(chunks):
                chunk.to_csv(fh, index=False, header=k == 0)
                rows += len(chunk)
        return rows
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(
            f"Parquet output needs pyarrow (pip install 'safes-framework[scale]'): {exc}"
        ) from None
    writer = None
    try:
        for chunk in chunks:
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    return rows


def write_streamed_release(
    directory: Path,
    chunks: Iterable[pd.DataFrame],
    fmt: str,
    privacy: Mapping[str, Any],
    run_record: Callable[[int], Mapping[str, Any]],
) -> int:
    """Write the release table (streamed), `privacy.json` and `run.json` into `directory`.

    `run_record(rows)` gives run.json's content once the number of written rows is known.
    Returns that number.
    """
    rows = write_table(directory / release_file(fmt), chunks, fmt)
    (directory / "privacy.json").write_text(json.dumps(_jsonable(privacy), indent=2))
    (directory / "run.json").write_text(json.dumps(_jsonable(run_record(rows)), indent=2))
    return rows


def save_directory(
    out: str | os.PathLike[str], write: Callable[[Path], Any], *, overwrite: bool = False
) -> Any:
    """Call `write(tmp)` on a staging directory beside `out`, then move its files in.

    Nothing reaches `out` unless `write` returns; the staging directory is always removed (see
    `outputs.staged_directory`, which `Release.save` uses too).
    """
    from .outputs import staged_directory

    with staged_directory(out, overwrite=overwrite) as tmp:
        result = write(tmp)
    return result


@dataclass(frozen=True)
class StreamedRelease:
    """What `SafesChain.stream` wrote: where, how many rows, and the same records as `Release`.

    Attributes:
        path: the release directory.
        file: the release table's file name in it (`release.csv` or `release.parquet`).
        rows: released rows.
        privacy: the privacy report.
        run: the run's identity and settings.
        schema: the public schema.
        seeds: recorded post-processing seeds (as in `Release`).
        versions: package versions.
        timings: wall seconds per stage (in memory only; not part of the release).
    """

    path: Path
    file: str
    rows: int
    privacy: PrivacyReport
    run: RunInfo
    schema: Schema
    seeds: Mapping[str, Any]
    versions: Mapping[str, str]
    timings: Mapping[str, float] = field(default_factory=dict)
