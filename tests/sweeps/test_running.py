"""Running sweeps: incremental store, resume after interruption or a torn write, executors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from safes_framework.errors import ConfigError
from safes_framework.evaluation import MetricSpec, Protocol
from safes_framework.sweeps import ResultStore, SweepConfig, read_results, run_sweep

FAST = Protocol(
    synthesizer="fast-independent",
    fairness="flip-labels",
    metrics=(
        MetricSpec("mod", "mean_outcome_difference"),
        MetricSpec("tvd", "tvd", {"orders": [1, 2]}),
    ),
)


def _config(**kw: object) -> SweepConfig:
    base = dict(
        datasets=("compas",),
        epsilons=(0.5, 2.0),
        etas={"compas": (0.001, 0.1)},
        repeats=2,
        seed=3,
        protocol=FAST,
    )
    base.update(kw)
    return SweepConfig(**base)  # type: ignore[arg-type]


def _values(df: pd.DataFrame) -> pd.Series:
    keep = (df["status"] == "ok") & ~df["key"].str.startswith("seconds_")
    return df[keep].set_index(["cell", "metric", "key"])["value"].sort_index()


def test_serial_sweep_stores_every_cell_and_records_failures(
    fast_plugins: None, tmp_path: Path
) -> None:
    config = _config()
    summary = run_sweep(config, tmp_path, executor="serial")
    df = read_results(tmp_path)
    # columns: no DP (Original once, Fair x2), eps 0.5 and 2 (DP, SAFES x2); 2 repeats
    assert df["cell"].nunique() == config.cells() == 1 + 2 * 2 + 2 * 3 * 2
    assert summary.units_done == len(config.units()) and summary.units_lost == 0
    failed = df[df["status"] == "failed"]
    assert set(failed["eta"]) == {0.001}  # flip-labels is infeasible below 0.01
    assert failed["reason"].str.contains("InfeasibleError").all()
    assert summary.cells_failed == failed["cell"].nunique() == 2 + 2 * 2
    assert summary.cells_ok + summary.cells_failed == config.cells()
    manifest = (tmp_path / "sweep.json").read_text()
    assert '"fingerprint"' in manifest and '"fast-independent"' in manifest


def test_rerun_resumes_and_a_wider_grid_runs_only_what_is_new(
    fast_plugins: None, tmp_path: Path
) -> None:
    run_sweep(_config(), tmp_path, executor="serial")
    again = run_sweep(_config(), tmp_path, executor="serial")
    assert again.units_planned == 0 and again.cells_skipped == _config().cells()
    wider = _config(repeats=3, epsilons=(0.5, 2.0, 8.0))
    more = run_sweep(wider, tmp_path, executor="serial")
    assert more.cells_skipped == _config().cells()
    assert more.cells_ok + more.cells_failed == wider.cells() - _config().cells()
    assert read_results(tmp_path)["cell"].nunique() == wider.cells()


def test_an_interrupted_sweep_resumes_to_the_same_results(
    fast_plugins: None, tmp_path: Path
) -> None:
    whole = tmp_path / "whole"
    run_sweep(_config(), whole, executor="serial")
    part = tmp_path / "part"
    seen = []

    def stop_after_two(summary: object, unit: object) -> None:
        seen.append(unit)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(_config(), part, executor="serial", flush_every=1, progress=stop_after_two)
    stored = read_results(part)["cell"].nunique()
    assert 0 < stored < _config().cells()
    resumed = run_sweep(_config(), part, executor="serial")
    assert resumed.cells_skipped == stored
    pd.testing.assert_series_equal(_values(read_results(part)), _values(read_results(whole)))


def test_a_torn_write_and_incomplete_cells_are_repaired(fast_plugins: None, tmp_path: Path) -> None:
    run_sweep(_config(), tmp_path, executor="serial")
    path = tmp_path / "results.csv"
    lines = path.read_text().splitlines(keepends=True)
    victim = lines[-1].split(",", 1)[0]  # the last cell loses its last row ...
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # ... torn mid-line
    assert victim not in ResultStore.open(tmp_path, _config()).completed_cells()
    assert not path.read_text().endswith(lines[-1][: len(lines[-1]) // 2])
    rerun = run_sweep(_config(), tmp_path, executor="serial")
    assert rerun.units_done == 1
    df = read_results(tmp_path, complete_only=False)
    assert df["cell"].nunique() == _config().cells()
    assert (df.groupby("cell").size() == df.groupby("cell")["cell_rows"].first()).all()


def test_resuming_with_another_protocol_is_refused(fast_plugins: None, tmp_path: Path) -> None:
    run_sweep(_config(), tmp_path, executor="serial")
    other = _config(seed=4)
    with pytest.raises(ConfigError, match="different sweep.*seed"):
        run_sweep(other, tmp_path, executor="serial")
    proto = Protocol(
        synthesizer="fast-independent",
        fairness="flip-labels",
        metrics=(MetricSpec("mod", "mean_outcome_difference"),),
    )
    with pytest.raises(ConfigError, match="metrics"):
        run_sweep(_config(protocol=proto), tmp_path, executor="serial")
    fresh = run_sweep(other, tmp_path, executor="serial", fresh=True)
    assert fresh.cells_skipped == 0


def test_parquet_results(fast_plugins: None, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    run_sweep(_config(repeats=1), tmp_path, executor="serial", fmt="parquet", flush_every=2)
    assert len(list((tmp_path / "results.parquet").glob("part-*.parquet"))) >= 2
    df = read_results(tmp_path)
    assert df["cell"].nunique() == _config(repeats=1).cells()
    with pytest.raises(ConfigError, match="already holds results.parquet"):
        ResultStore(tmp_path, "csv")


# -- executors: a grid of Original repeats needs no plugin beyond the built-ins, so it also
# runs in worker processes (the stand-in plugins above exist in this process only).

ORIGINAL_ONLY = SweepConfig(
    datasets=("compas",),
    epsilons=(),
    repeats=1,
    original_repeats=3,
    seed=5,
    protocol=Protocol(
        fairness=None,
        metrics=(
            MetricSpec("model_utility", "model_utility"),
            MetricSpec("mod", "mean_outcome_difference"),
        ),
    ),
)


@pytest.mark.slow
def test_local_process_pool_gives_the_serial_results(tmp_path: Path) -> None:
    run_sweep(ORIGINAL_ONLY, tmp_path / "serial", executor="serial")
    summary = run_sweep(ORIGINAL_ONLY, tmp_path / "local", executor="local", workers=2)
    assert summary.units_done == 3 and summary.units_lost == 0
    pd.testing.assert_series_equal(
        _values(read_results(tmp_path / "local")), _values(read_results(tmp_path / "serial"))
    )


@pytest.mark.slow
def test_dask_local_cluster_gives_the_serial_results(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    run_sweep(ORIGINAL_ONLY, tmp_path / "serial", executor="serial")
    summary = run_sweep(ORIGINAL_ONLY, tmp_path / "dask", executor="dask", workers=2)
    assert summary.units_done == 3 and summary.units_lost == 0
    pd.testing.assert_series_equal(
        _values(read_results(tmp_path / "dask")), _values(read_results(tmp_path / "serial"))
    )


def test_unknown_executor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="executor"):
        run_sweep(ORIGINAL_ONLY, tmp_path, executor="spark")


def test_reweighing_weights_reach_the_metrics(tmp_path: Path) -> None:
    config = SweepConfig.from_dict(
        {
            "sweep": {"datasets": ["compas"], "epsilons": [], "repeats": 1},
            "fairness": {"name": "reweighing", "eta_param": "none"},
            "metrics": {"use": ["mean_outcome_difference", "model_fairness"]},
        }
    )
    run_sweep(config, tmp_path, executor="serial")
    df = read_results(tmp_path)
    fair = df[(df["setting"] == "fair") & (df["metric"] == "mean_outcome_difference")]
    assert fair["value"].abs().max() < 1e-9  # reweighing equalises weighted outcome rates
    assert fair["measured_on"].str.contains("weighted by its sample weights").all()
    assert fair["eta"].isna().all() and (fair["fairness"] == "reweighing").all()


@pytest.mark.slow
def test_dask_runs_on_an_existing_cluster_given_by_address(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        summary = run_sweep(
            ORIGINAL_ONLY, tmp_path, executor="dask", scheduler=cluster.scheduler_address
        )
        assert len(cluster.scheduler.workers) == 1  # the sweep used this cluster, left it up
    assert summary.units_done == 3 and summary.units_lost == 0
    assert read_results(tmp_path)["cell"].nunique() == 3
