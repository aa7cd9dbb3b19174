"""Tests of streamed releases and of the same release from every input path and backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mixed_tables import mixed_schema, mixed_table

import safes_framework
from safes_framework import SafesChain
from safes_framework.errors import ConfigError, DomainError, SafesError
from safes_framework.plugins import PluginManager


def _chain(name: str = "mst", seed: int | None = 11, **kw: object) -> SafesChain:
    synth = safes_framework.synthesizer(name, epsilon=1.0, delta=1e-9, **kw)
    return SafesChain(synth, seed=seed, plugin_manager=PluginManager(load_entrypoints=False))


@pytest.fixture
def table() -> pd.DataFrame:
    return mixed_table(4000, seed=2)


@pytest.mark.parametrize("synth", ["mst", "aim"])
def test_file_backed_and_in_memory_runs_give_identical_releases(
    table: pd.DataFrame, tmp_path: Path, synth: str
) -> None:
    import duckdb

    schema = mixed_schema()
    table.to_parquet(tmp_path / "t.parquet", row_group_size=900)
    table.to_csv(tmp_path / "t.csv", index=False)
    params = {"max_model_size": 1.0, "rounds": 12} if synth == "aim" else {}
    base = _chain(synth, **params).run(table, schema)
    for data, backend in [
        (tmp_path / "t.parquet", "memory"),
        (tmp_path / "t.parquet", "duckdb"),
        (str(tmp_path / "t.csv"), "duckdb"),
        (duckdb.connect().from_df(table), "auto"),
    ]:
        other = _chain(synth, **params).run(data, schema, backend=backend, chunk_rows=1000)
        pd.testing.assert_frame_equal(other.data, base.data)
        assert other.privacy.ledger == base.privacy.ledger


def test_streamed_release_equals_run_and_save_when_it_fits_one_chunk(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    schema = mixed_schema()
    release = _chain().run(table, schema)
    release.save(tmp_path / "saved")
    streamed = _chain().stream(table, schema, tmp_path / "streamed")
    assert streamed.rows == len(release.data)
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == [
        "privacy.json", "release.csv", "run.json"
    ]
    assert (tmp_path / "streamed/release.csv").read_bytes() == (
        tmp_path / "saved/release.csv"
    ).read_bytes()
    run = json.loads((tmp_path / "streamed/run.json").read_text())
    assert run["rows"] == streamed.rows and "seed" not in json.dumps(run["seeds"]).lower()


def test_streamed_release_in_many_chunks_has_every_row_in_the_domain(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    schema = mixed_schema()
    chain = SafesChain(
        safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9), seed=3, rows=2345,
        plugin_manager=PluginManager(load_entrypoints=False),
    )
    streamed = chain.stream(table, schema, tmp_path / "out", format="parquet", chunk_rows=500)
    assert streamed.file == "release.parquet" and streamed.rows == 2345
    written = pd.read_parquet(tmp_path / "out/release.parquet")
    assert len(written) == 2345
    schema.validate(written)
    again = chain.stream(table, schema, tmp_path / "again", format="parquet", chunk_rows=500)
    assert again.rows == 2345
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "again/release.parquet"), written)


def test_streamed_release_refuses_stages_that_need_the_whole_table(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    synth = safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9)
    chain = SafesChain(synth, "reweighing", plugin_manager=PluginManager(load_entrypoints=False))
    with pytest.raises(ConfigError, match="fairness"):
        chain.stream(table, mixed_schema(), tmp_path / "out")
    with pytest.raises(ConfigError, match="format"):
        _chain().stream(table, mixed_schema(), tmp_path / "out", format="xlsx")
    assert not (tmp_path / "out").exists()


def test_bad_input_file_fails_before_any_spend_and_writes_nothing(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    table = table.copy()
    table.loc[3999, "age"] = 200
    table.to_parquet(tmp_path / "bad.parquet")
    spent: list[object] = []

    class Spy:
        @safes_framework.hookimpl
        def safes_privacy_spent(self, run: object, entry: object, epsilon: float,
                                delta: float) -> None:
            spent.append(entry)

    pm = PluginManager(load_entrypoints=False)
    pm.register(Spy())
    chain = SafesChain(safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9),
                       plugin_manager=pm)
    for backend in ("memory", "duckdb"):
        with pytest.raises(DomainError, match="row 4,000"):
            chain.stream(tmp_path / "bad.parquet", mixed_schema(), tmp_path / "out",
                         backend=backend)
    assert spent == [] and not (tmp_path / "out").exists()


def test_failed_write_leaves_no_release(
    table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safes_framework.streaming as streaming

    def broken(*args: object, **kwargs: object) -> object:
        raise SafesError("disk full")

    monkeypatch.setattr(streaming, "write_table", broken)
    with pytest.raises(SafesError, match="disk full"):
        _chain().stream(table, mixed_schema(), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".safes-")] == []


def test_metrics_need_the_table_as_a_frame(table: pd.DataFrame, tmp_path: Path) -> None:
    table.to_parquet(tmp_path / "t.parquet")
    synth = safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9)
    chain = SafesChain(synth, metrics=["mean_outcome_difference"],
                       plugin_manager=PluginManager(load_entrypoints=False))
    with pytest.raises(ConfigError, match="DataFrame"):
        chain.run(tmp_path / "t.parquet", mixed_schema())
    assert np.isfinite(chain.run(table, mixed_schema()).privacy.epsilon)
